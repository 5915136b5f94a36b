#!/usr/bin/env bash
# Benchmark: start-to-exit time of `/bin/true` in a fresh container, in one
# run, side by side: stack, runc (Debian's, same rootfs), and the floor
# `unshare -mpnuif --fork chroot`; docker and podman when they run here.
# Then the host-side memory of one idle container.
# docker/podman need a `busybox` image: tar a busybox rootfs and `docker import` / `podman import` it.
# podman gets explicit nofile/nproc ulimits: its defaults exceed the hard limits of this sandbox.
# Usage (as root): bench/runtime.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)"; exit 1; }
work=$(mktemp -d)
trap 'umount "$work/tmpfs" 2>/dev/null; rm -rf "$work"' EXIT
cargo build --release --quiet -p stack-cli
stack=$PWD/target/release/stack

rootfs=$work/bundle/rootfs
mkdir -p "$rootfs/bin" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/etc" "$rootfs/tmp"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in sh true sleep; do ln -s busybox "$rootfs/bin/$a"; done

export STACK_ROOT=$work/root
cmds=(-n stack "$stack container run --rm --rootfs $rootfs /bin/true")
# The same with the store on a tmpfs: what the file system under the store
# costs a start (runc keeps its state in /run, a tmpfs; the rootfs is
# given). On a root file system without a journal each new inode is found
# past the recently deleted ones, so this gap grows with churn.
mkdir -p "$work/tmpfs" && mount -t tmpfs tmpfs "$work/tmpfs"
cmds+=(-n "stack, store on tmpfs" "env STACK_ROOT=$work/tmpfs/root $stack container run --rm --rootfs $rootfs /bin/true")
if command -v runc >/dev/null; then
  (cd "$work/bundle" && runc spec && python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
c["root"]["readonly"] = False
json.dump(c, open("config.json", "w"))
PY
  )
  cmds+=(-n runc "runc run --bundle $work/bundle bench-$$")
fi
cmds+=(-n "unshare+chroot (floor)" "unshare -mpnuif --fork chroot $rootfs /bin/true")
if docker info >/dev/null 2>&1 && docker image inspect busybox >/dev/null 2>&1; then cmds+=(-n docker "docker run --rm busybox true"); fi
if command -v podman >/dev/null && podman image exists busybox 2>/dev/null; then cmds+=(-n podman "podman run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 busybox true"); fi

hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/h.json" "${cmds[@]}" >/dev/null
python3 - "$work/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base = r[0]["mean"]
for x in r:
    print(f'{x["command"]:<24} mean {x["mean"]*1000:7.2f} ms  ± {x["stddev"]*1000:5.2f}   {x["mean"]/base:5.2f}x of stack')
PY

# Host-side memory per idle container, as the engine runs them: N replicas
# of one service. What each container costs is the proportional set size
# (Pss: each page divided among the processes that share it) of its two
# host-side processes, its monitor and our init, summed over all N and
# divided by N. They run stack-init (the runtime's small binary) through
# one read-only view for every container of the engine, so its pages are
# shared N ways. The app itself
# (`sleep`) is not counted; the engine is once per host.
n=10
tar -C "$rootfs" -cf "$work/rootfs.tar" .
"$stack" image import "$work/rootfs.tar" bench/idle:1 >/dev/null
mkdir -p "$work/idle"
printf 'services:\n  idle:\n    image: bench/idle:1\n    command: sleep 600\n    network_mode: none\n    deploy:\n      replicas: %s\n' "$n" > "$work/idle/compose.yaml"
trap '"$stack" --project-directory "$work/idle" down >/dev/null 2>&1; kill "$(cat "$STACK_ROOT/engine.pid" 2>/dev/null)" 2>/dev/null; umount "$work/tmpfs" 2>/dev/null; rm -rf "$work"' EXIT
"$stack" --project-directory "$work/idle" up -d 2>/dev/null
sleep 0.5
pss() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$2/smaps_rollup"; }
json() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
total=0; anon=0; shmem=0; exes=()
for state in "$STACK_ROOT"/containers/*/state.json; do
  monitor=$(json "$state" monitor_pid)
  for p in "$monitor" "$(json "$state" pid)"; do
    total=$((total + $(pss Pss "$p"))); anon=$((anon + $(pss Pss_Anon "$p"))); shmem=$((shmem + $(pss Pss_Shmem "$p")))
  done
  exes+=("$(stat -L -c %d:%i "/proc/$monitor/exe")")
done
copies=$(printf '%s\n' "${exes[@]}" | sort -u | wc -l)
echo "$n idle containers (monitor + init each, Pss): ${total} kB; the sealed binary: ${copies} copy for all"
echo "per idle container: $((total / n)) kB (private anon $((anon / n)) kB, binary share $((shmem / n)) kB, the rest shared libraries)"
echo "the engine itself (once per host): Pss $(pss Pss "$(cat "$STACK_ROOT/engine.pid")") kB"
