#!/usr/bin/env bash
# Benchmark, in one run (as root): the latency from a file edit on the host
# to the new contents inside the container.
#  - stack: `stack up -d --watch`, a develop.watch `sync` rule (./src -> /app);
#  - Docker: `docker compose watch` is not available here (Debian ships
#    docker-compose 1.29, which has no watch, and no compose v2 plugin). The
#    stand-in is what compose watch does underneath, without its own
#    batching delay: on each inotify event, `docker cp` of the file into the
#    container through the Engine API. A lower bound for compose watch.
# Both are observed the same way: a host process polls the file through
# /proc/PID/root every 0.5 ms after writing it.
# Usage: bench/watch.sh [EDITS]
set -euo pipefail
cd "$(dirname "$0")/.."
edits=${1:-50}
command -v inotifywait >/dev/null || { echo "needs inotifywait (apt-get install inotify-tools)"; exit 1; }
docker_ok=false
docker info >/dev/null 2>&1 && docker_ok=true
work=$(mktemp -d)
export STACK_ROOT=$work/root STACK_DNS_UPSTREAM=none
cargo build --release --quiet -p stack-cli
stack=$PWD/target/release/stack
watcher=
cleanup() {
  [ -n "$watcher" ] && kill "$watcher" 2>/dev/null || true
  pkill -f "inotifywait -m -q -e close_write $work" 2>/dev/null || true
  (cd "$work/stack" 2>/dev/null && "$stack" down -t 0 >/dev/null 2>&1) || true
  if $docker_ok; then
    docker rm -f stack-bench-watch >/dev/null 2>&1 || true
    docker rmi -f stack-bench/busybox:1 >/dev/null 2>&1 || true
  fi
  kill "$(cat "$STACK_ROOT/engine.pid" 2>/dev/null)" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/app"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in sh sleep; do ln -s busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
tar -C "$rootfs" -cf "$work/bb.tar" .
"$stack" image import "$work/bb.tar" stack-bench/busybox:1 >/dev/null

# Writes EDITS versions of SRC/index.html, each once the last is seen in
# the container (PID's root, FILE), and prints the latencies' summary.
measure() {
  python3 - "$1" "$2" "$3" "$edits" <<'PY'
import os, sys, time, statistics
src, pid, target, edits = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
inside = f"/proc/{pid}/root{target}"
lat = []
for i in range(edits):
    token = f"edit {i} {time.time_ns()}\n"
    t0 = time.perf_counter()
    with open(os.path.join(src, "index.html"), "w") as f:
        f.write(token)
    while True:
        try:
            with open(inside) as f:
                if f.read() == token:
                    break
        except OSError:
            pass
        if time.perf_counter() - t0 > 5:
            sys.exit(f"edit {i} not seen in 5 s")
        time.sleep(0.0005)
    lat.append((time.perf_counter() - t0) * 1000)
    time.sleep(0.2)
lat.sort()
print(f"median {statistics.median(lat):.1f} ms  p90 {lat[int(len(lat) * 0.9) - 1]:.1f} ms  "
      f"mean {statistics.mean(lat):.1f} ms  (n={len(lat)})")
print(f"MEDIAN {statistics.median(lat):.3f}")
PY
}

mkdir -p "$work/stack/src"
echo start >"$work/stack/src/index.html"
cat >"$work/stack/compose.yaml" <<YAML
services:
  web:
    image: stack-bench/busybox:1
    command: sleep 100000
    develop:
      watch:
        - {path: ./src, target: /app, action: sync}
YAML
(cd "$work/stack" && "$stack" up -d --watch >/dev/null 2>&1)
pid=$("$stack" container inspect stack-web-1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
echo "stack watch (sync rule):"
ours=$(measure "$work/stack/src" "$pid" /app/index.html)
echo "$ours" | head -1
ours_median=$(echo "$ours" | sed -n 's/^MEDIAN //p')

if $docker_ok; then
  docker import "$work/bb.tar" stack-bench/busybox:1 >/dev/null
  mkdir -p "$work/docker/src"
  echo start >"$work/docker/src/index.html"
  docker run -d --name stack-bench-watch stack-bench/busybox:1 sleep 100000 >/dev/null
  dpid=$(docker inspect -f '{{.State.Pid}}' stack-bench-watch)
  inotifywait -m -q -e close_write "$work/docker/src" --format '%w%f' |
    while read -r f; do docker cp "$f" "stack-bench-watch:/app/$(basename "$f")" >/dev/null; done &
  watcher=$!
  sleep 0.5
  echo "docker: inotify + docker cp (compose watch's mechanism, no batching delay):"
  theirs=$(measure "$work/docker/src" "$dpid" /app/index.html)
  echo "$theirs" | head -1
  theirs_median=$(echo "$theirs" | sed -n 's/^MEDIAN //p')
  python3 -c "print(f'ratio (median): {$theirs_median / $ours_median:.2f}x')"
else
  echo "docker: not running (start dockerd for the side-by-side figure)"
fi
