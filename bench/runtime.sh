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
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet -p stack-cli
stack=$PWD/target/release/stack

rootfs=$work/bundle/rootfs
mkdir -p "$rootfs/bin" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/etc" "$rootfs/tmp"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in sh true sleep; do ln -s busybox "$rootfs/bin/$a"; done

export STACK_ROOT=$work/root
cmds=(-n stack "$stack container run --rm --rootfs $rootfs /bin/true")
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

# Host-side memory of one idle detached container: every host process that
# exists only because it runs (its monitor and our init), not the app itself.
# Private memory is RssAnon; the sealed copy of our binary is a memfd shared
# by the two (RssShmem, counted once: the larger of the two).
id=$("$stack" container run -d --rootfs "$rootfs" sleep 30)
sleep 0.5
state=$STACK_ROOT/containers/$id/state.json
monitor=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["monitor_pid"])' "$state")
init=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$state")
anon=0; shm=0
for p in "$monitor" "$init"; do
  a=$(awk '/^RssAnon/ {print $2}' /proc/$p/status)
  s=$(awk '/^RssShmem/ {print $2}' /proc/$p/status)
  printf '%-8s pid %-7s VmRSS %6s kB (anon %5s kB, shmem %5s kB)\n' "$( [ "$p" = "$monitor" ] && echo monitor || echo init)" "$p" "$(awk '/^VmRSS/ {print $2}' /proc/$p/status)" "$a" "$s"
  anon=$((anon + a)); [ "$s" -gt "$shm" ] && shm=$s
done
echo "per idle container: ${anon} kB private + ${shm} kB of the sealed binary copy = $((anon + shm)) kB"
"$stack" container rm -f "$id" >/dev/null
