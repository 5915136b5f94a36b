#!/usr/bin/env bash
# Benchmark: start-to-exit time of `/bin/true` in a fresh container, in one
# run, side by side: stack, runc (Debian's, same rootfs), and the floor
# `unshare -mpnuif --fork chroot`; docker and podman when they run here.
# Then the host-side memory of one idle container.
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
if docker info >/dev/null 2>&1; then cmds+=(-n docker "docker run --rm busybox true"); fi
if command -v podman >/dev/null && podman info >/dev/null 2>&1; then cmds+=(-n podman "podman run --rm busybox true"); fi

hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/h.json" "${cmds[@]}" >/dev/null
python3 - "$work/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base = r[0]["mean"]
for x in r:
    print(f'{x["command"]:<24} mean {x["mean"]*1000:7.2f} ms  ± {x["stddev"]*1000:5.2f}   {x["mean"]/base:5.2f}x of stack')
PY

# Host-side memory of one idle container: every host process that exists
# only because it runs (the waiting CLI, the namespace parent, our init),
# not the app itself.
STACK_ROOT=$work/root "$stack" container run --rm --rootfs "$rootfs" sleep 30 &
cli=$!
sleep 1
stage1=$(pgrep -P "$cli" | head -1)
init=$(pgrep -P "$stage1" | head -1)
total=0
for p in "$cli" "$stage1" "$init"; do
  rss=$(awk '/^VmRSS/ {print $2}' /proc/$p/status)
  shm=$(awk '/^RssShmem/ {print $2}' /proc/$p/status)
  anon=$(awk '/^RssAnon/ {print $2}' /proc/$p/status)
  printf '%-8s pid %-7s VmRSS %6s kB (anon %5s kB, shmem %5s kB)\n' "$(tr '\0' ' ' </proc/$p/cmdline | cut -c1-20)" "$p" "$rss" "$anon" "$shm"
  total=$((total + anon))
done
echo "private (anon) memory per idle container: $total kB"
kill "$cli" 2>/dev/null || true
pkill -P "$init" sleep 2>/dev/null || true
wait 2>/dev/null || true
