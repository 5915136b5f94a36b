#!/usr/bin/env bash
# Builds tests/build-compare/context with Docker (BuildKit) and with stack on
# the same busybox base, and compares them layer by layer (each entry's
# kind, mode, owner, size and link), the image config and the history.
# `--update` writes Docker's side as tests/build-compare/docker.txt, which
# tests/build.rs checks stack's build against (so CI needs no Docker).
# As root, with dockerd running and a docker CLI that has BuildKit.
set -euo pipefail
cd "$(dirname "$0")/.."
stack=${STACK:-${CARGO_TARGET_DIR:-$PWD/target}/release/stack}
docker=${DOCKER:-docker}
[ -x "$stack" ] || cargo build --release --quiet -p stack-cli
work=$(mktemp -d)
export STACK_ROOT=$work/root
trap '$docker rmi -f stack-compare/built:1 stack-compare/busybox:1 >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# The base, as tests/common/mod.rs's busybox_image makes it.
rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/www"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in sh httpd wget nslookup sleep cat echo; do ln -s busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo 'hello from web' >"$rootfs/www/index.html"
tar -C "$rootfs" -cf "$work/base.tar" .
"$stack" image import "$work/base.tar" local/busybox:1 >/dev/null
$docker import "$work/base.tar" local/busybox:1 >/dev/null

context=tests/build-compare/context
DOCKER_BUILDKIT=1 $docker build -q --no-cache -t stack-compare/built:1 "$context" >/dev/null
$docker save stack-compare/built:1 -o "$work/docker.tar"
"$stack" image build -q --no-cache -t stack-compare/built:1 "$context" >/dev/null
"$stack" image save stack-compare/built:1 -o "$work/stack.tar"

describe() {
  python3 - "$1" <<'PY'
import io, json, sys, tarfile
t = tarfile.open(sys.argv[1])
m = json.load(t.extractfile("manifest.json"))[0]
for i, layer in enumerate(m["Layers"][1:]):
    print(f"layer {i + 1}")
    rows = []
    for e in tarfile.open(fileobj=io.BytesIO(t.extractfile(layer).read())).getmembers():
        kind = "d" if e.isdir() else "l" if e.issym() else "h" if e.islnk() else "f"
        link = e.linkname if kind in "lh" else ""
        size = e.size if kind == "f" else 0
        rows.append(f"/{e.name.lstrip('./').rstrip('/')} {kind} {e.mode & 0o7777:o} {e.uid}:{e.gid} {size} {link}".rstrip())
    for r in sorted(rows):
        print("  " + r)
config = json.load(t.extractfile(m["Config"]))
print("config")
for k in ["Cmd", "Entrypoint", "Env", "ExposedPorts", "Healthcheck", "Labels", "OnBuild", "StopSignal", "User", "Volumes", "WorkingDir"]:
    v = config["config"].get(k)
    if v is not None:
        print(f"  {k}={json.dumps(v, sort_keys=True, separators=(',', ':'))}")
print("history")
for h in config.get("history", []):
    if h.get("created_by"):
        print(f"  {str(h.get('empty_layer', False)).lower()} {h['created_by']}")
PY
}
describe "$work/docker.tar" >"$work/docker.txt"
describe "$work/stack.tar" >"$work/stack.txt"
if [ "${1:-}" = --update ]; then
  cp "$work/docker.txt" tests/build-compare/docker.txt
  echo "wrote tests/build-compare/docker.txt"
fi
if diff -u "$work/docker.txt" "$work/stack.txt"; then
  echo "stack's build is Docker's: the same layers, config and history"
else
  echo "differences above (- docker, + stack)"
  exit 1
fi
