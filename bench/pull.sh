#!/usr/bin/env bash
# Benchmark, in one run, from a local docker-registry (Debian's, on 127.0.0.1):
#  1. pull of a ~100 MB five-layer image (random content, gzip): stack vs
#     `skopeo copy` into a dir, and `docker pull` / `podman pull` where they run;
#  2. unpack throughput: `stack image load` of the OCI layout vs `tar -xzf` of
#     the same layers, in MB/s of layer content;
#  3. interop: an archive saved by stack loads and runs in docker and podman,
#     and theirs load and run in stack.
# Usage (as root): bench/pull.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
for t in hyperfine docker-registry skopeo umoci busybox; do
  command -v $t >/dev/null || { echo "needs $t (apt-get install hyperfine docker-registry skopeo umoci busybox-static)"; exit 1; }
done
work=$(mktemp -d)
regpid=
docker_ok=false; docker info >/dev/null 2>&1 && docker_ok=true
podman_ok=false; command -v podman >/dev/null && podman info >/dev/null 2>&1 && podman_ok=true
cleanup() {
  [ -n "$regpid" ] && kill "$regpid" 2>/dev/null || true
  if $docker_ok; then docker rmi -f "$ref" stack-bench/bb:1 >/dev/null 2>&1 || true; fi
  if $podman_ok; then podman rmi -f "$ref" stack-bench/bb:1 >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
cargo build --release --quiet -p stack-cli
stack=$PWD/target/release/stack
export STACK_ROOT=$work/root

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
regpid=$!
ref=127.0.0.1:$port/bench/big:v1

echo "== making a five-layer image of 5 x 20 MB random content"
(cd "$work" && umoci init --layout oci && umoci new --image oci:big
 for i in 1 2 3 4 5; do
   mkdir -p "l$i/data" && head -c 20M /dev/urandom >"l$i/data/file$i"
   tar -C "l$i" -cf "l$i.tar" data && umoci raw add-layer --image oci:big "l$i.tar"
 done
 umoci config --image oci:big --config.cmd /bin/true)
skopeo copy -q --dest-tls-verify=false "oci:$work/oci:big" "docker://$ref"
bytes=$(du -cb "$work"/l*/data | tail -1 | cut -f1)

echo "== pull from 127.0.0.1:$port ($runs runs each)"
cmds=(--prepare "rm -rf $work/root" -n stack "$stack image pull -q $ref"
      --prepare "rm -rf $work/skopeo" -n "skopeo copy" "skopeo copy -q --src-tls-verify=false docker://$ref dir:$work/skopeo")
if $docker_ok; then cmds+=(--prepare "docker rmi -f $ref >/dev/null 2>&1 || true" -n "docker pull" "docker pull -q $ref"); fi
if $podman_ok; then cmds+=(--prepare "podman rmi -f $ref >/dev/null 2>&1 || true" -n "podman pull" "podman pull -q --tls-verify=false $ref"); fi
hyperfine --runs "$runs" --export-json "$work/pull.json" "${cmds[@]}"

echo "== unpack of the same layers"
layers=$(python3 - "$work/oci" <<'PY'
import json, sys
d = sys.argv[1]
idx = json.load(open(f"{d}/index.json"))
m = json.load(open(f"{d}/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
print(" ".join(f"{d}/blobs/sha256/" + l["digest"][7:] for l in m["layers"]))
PY
)
hyperfine --runs "$runs" --export-json "$work/unpack.json" \
  --prepare "rm -rf $work/root" -n "stack image load" "$stack image load -i $work/oci" \
  --prepare "rm -rf $work/x && mkdir $work/x" -n "tar -xzf" "for l in $layers; do tar -xzf \$l -C $work/x; done"
python3 - "$work/unpack.json" "$bytes" <<'PY'
import json, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
mb = int(sys.argv[2]) / 1e6
for k, v in r.items():
    print(f"{k:>18}: {mb / v:7.1f} MB/s")
print(f"ratio stack/tar: {r['tar -xzf'] / r['stack image load']:.2f}x the throughput")
PY

echo "== interop"
rootfs=$work/bb
mkdir -p "$rootfs/bin"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
ln -s busybox "$rootfs/bin/sh"; ln -s busybox "$rootfs/bin/echo"
tar -C "$rootfs" -cf "$work/bb.tar" .
$stack image import "$work/bb.tar" stack-bench/bb:1 >/dev/null
$stack image save stack-bench/bb:1 -o "$work/ours.tar"
check() { if out=$("$@" 2>&1) && [ "$(echo "$out" | tail -1)" = ok ]; then echo "OK   $*"; else echo "FAIL $*: $out"; fi; }
for engine in docker podman; do
  ok=${engine}_ok
  if ${!ok}; then
    $engine rmi -f stack-bench/bb:1 >/dev/null 2>&1 || true
    $engine load -q -i "$work/ours.tar" >/dev/null
    # podman's default ulimits exceed this sandbox's hard limits.
    limits=(); [ $engine = podman ] && limits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
    check $engine run --rm "${limits[@]}" stack-bench/bb:1 sh -c 'echo ok'
    $engine save -o "$work/$engine.tar" stack-bench/bb:1
    $stack image rm stack-bench/bb:1 >/dev/null
    # podman names it localhost/stack-bench/bb:1
    name=$($stack image load -i "$work/$engine.tar" | sed -n 's/^Loaded image: //p' | head -1)
    check $stack container run --rm "$name" sh -c 'echo ok'
    [ "$name" = stack-bench/bb:1 ] || $stack image tag "$name" stack-bench/bb:1 >/dev/null
  else
    echo "SKIP $engine (not running here)"
  fi
done
