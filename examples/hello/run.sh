#!/usr/bin/env bash
# The main job: make the example's image from Debian's busybox-static (no
# registry needed), bring the stack up, ask it for something, show it.
# As root. `stack down` in this directory takes it away again.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v busybox >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq busybox-static nftables >/dev/null
fi
cargo build --release --quiet -p stack-cli
stack=../../target/release/stack
export STACK_DNS_UPSTREAM=${STACK_DNS_UPSTREAM:-none}
if ! $stack image inspect example/busybox:1 >/dev/null 2>&1; then
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs/bin" "$rootfs/etc"
  cp "$(command -v busybox)" "$rootfs/bin/busybox"
  for a in sh httpd wget echo cat; do ln -s busybox "$rootfs/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
  tar -C "$rootfs" -cf "$rootfs.tar" . && rm -rf "$rootfs"
  $stack image import "$rootfs.tar" example/busybox:1 >/dev/null && rm -f "$rootfs.tar"
fi
$stack up -d
$stack ps
for _ in $(seq 50); do
  out=$(wget -qO- "http://127.0.0.1:${WEB_PORT:-8080}/cgi-bin/index" 2>/dev/null || busybox wget -qO- "http://127.0.0.1:${WEB_PORT:-8080}/cgi-bin/index" 2>/dev/null || true)
  [ -n "$out" ] && break
  sleep 0.1
done
echo "--- http://127.0.0.1:${WEB_PORT:-8080}/cgi-bin/index"
echo "$out"
echo "--- take it down with: (cd $(pwd) && $stack down)"
