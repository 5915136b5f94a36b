#!/usr/bin/env bash
# Benchmark, in one run (as root), stack side by side with docker-compose
# 1.29 on Docker Engine:
#  - from `up` to every service healthy, for N services with health checks
#    (every 200 ms) in a service_healthy chain (s2 waits for s1 healthy, ...);
#    stack: `up --wait`; docker-compose (no --wait in 1.29): `up -d`, then
#    polling `docker inspect` until all are healthy;
#  - scaling one service 1 -> 50 -> 1 (`up -d --scale web=N` for both).
# Usage: bench/health.sh [N] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
runs=${2:-3}
command -v hyperfine >/dev/null || { echo "needs hyperfine"; exit 1; }
docker_ok=false
docker info >/dev/null 2>&1 && command -v docker-compose >/dev/null && docker_ok=true
work=$(mktemp -d)
export STACK_ROOT=$work/root STACK_DNS_UPSTREAM=none
cargo build --release --quiet -p stack-cli
stack=$PWD/target/release/stack
cleanup() {
  for p in chain scale; do
    (cd "$work/$p" 2>/dev/null && "$stack" down -t 0 >/dev/null 2>&1) || true
    if $docker_ok; then (cd "$work/$p" 2>/dev/null && docker-compose down -t 0 >/dev/null 2>&1) || true; fi
  done
  if $docker_ok; then docker rmi -f stack-bench/busybox:1 >/dev/null 2>&1 || true; fi
  kill "$(cat "$STACK_ROOT/engine.pid" 2>/dev/null)" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/www"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in sh httpd test; do ln -s busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo hi >"$rootfs/www/index.html"
tar -C "$rootfs" -cf "$work/bb.tar" .
"$stack" image import "$work/bb.tar" stack-bench/busybox:1 >/dev/null
$docker_ok && docker import "$work/bb.tar" stack-bench/busybox:1 >/dev/null

mkdir -p "$work/chain" "$work/scale"
{
  echo "version: '2.4'"
  echo "services:"
  for i in $(seq 1 "$n"); do
    echo "  s$i:"
    echo "    image: stack-bench/busybox:1"
    echo "    command: httpd -f -p 80 -h /www"
    echo "    healthcheck: {test: [CMD, test, -f, /www/index.html], interval: 200ms, timeout: 1s, retries: 3}"
    if [ "$i" -gt 1 ]; then echo "    depends_on: {s$((i - 1)): {condition: service_healthy}}"; fi
  done
} >"$work/chain/compose.yaml"
cat >"$work/scale/compose.yaml" <<YAML
version: '2.4'
services:
  web:
    image: stack-bench/busybox:1
    command: httpd -f -p 80 -h /www
YAML

# Until every container of the docker-compose project in $1 is healthy.
cat >"$work/docker-healthy.sh" <<'SH'
cd "$1" && docker-compose up -d >/dev/null 2>&1
while :; do
  ids=$(docker-compose ps -q)
  states=$(docker inspect -f '{{.State.Health.Status}}' $ids)
  echo "$states" | grep -qv healthy || exit 0
  sleep 0.05
done
SH

echo "== $n services in a service_healthy chain: up until all healthy"
cmds=(--prepare "cd $work/chain && $stack down -t 0 >/dev/null 2>&1 || true" -n "stack up --wait" "cd $work/chain && $stack up --wait")
if $docker_ok; then
  cmds+=(--prepare "cd $work/chain && docker-compose down -t 0 >/dev/null 2>&1 || true" -n "docker-compose up -d + poll healthy" "bash $work/docker-healthy.sh $work/chain")
fi
hyperfine --runs "$runs" "${cmds[@]}" 2>/dev/null | grep -E 'Benchmark|Time|faster' || true

echo "== scale 1 -> 50 -> 1"
cmds=(--prepare "cd $work/scale && $stack up -d --scale web=1 >/dev/null 2>&1" -n "stack scale 1->50->1" "cd $work/scale && $stack up -d --scale web=50 && $stack up -d --scale web=1")
if $docker_ok; then
  cmds+=(--prepare "cd $work/scale && docker-compose up -d --scale web=1 >/dev/null 2>&1" -n "docker-compose scale 1->50->1" "cd $work/scale && docker-compose up -d --scale web=50 && docker-compose up -d -t 0 --scale web=1")
fi
hyperfine --runs "$runs" "${cmds[@]}" 2>/dev/null | grep -E 'Benchmark|Time|faster' || true
