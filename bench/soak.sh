#!/usr/bin/env bash
# Soak test (as root): containers crash-loop under restart policies for a
# long while (an hour by default) while clients follow logs and events;
# the engine's memory (RSS and PSS) and open file descriptors are sampled
# every minute and must stay flat.
# Usage: bench/soak.sh [SECONDS] [SAMPLE-EVERY-SECONDS]
# Prints one line per sample and a summary (first, last and peak).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-3600}
every=${2:-60}
. bench/lib.sh
start_bench
trap 'kill $(jobs -p) 2>/dev/null || true; put_away "$work/p"' EXIT
mkdir -p "$work/p"
import_busybox "$work"
# Crashing at once (restarts slow down to the one-minute back-off), after
# a stable run of 11 s (back-off resets: a restart every 11 s), on failure
# with a retry bound, unless stopped; one that logs a line every 10 ms.
cat >"$work/p/compose.yaml" <<'EOF'
services:
  fast:
    image: stack-bench/busybox:1
    command: sh -c 'echo crash; exit 3'
    restart: always
  steady1:
    image: stack-bench/busybox:1
    command: sh -c 'echo up; sleep 11; echo down; exit 1'
    restart: always
  steady2:
    image: stack-bench/busybox:1
    command: sh -c 'echo up; sleep 11; exit 2'
    restart: unless-stopped
  bounded:
    image: stack-bench/busybox:1
    command: sh -c 'sleep 11; exit 4'
    restart: on-failure:1000
  chatty:
    image: stack-bench/busybox:1
    command: sh -c 'i=0; while [ $$i -lt 1200 ]; do echo line $$i; i=$$((i+1)); sleep 0.01; done; exit 5'
    restart: always
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
  web:
    image: stack-bench/busybox:1
    command: httpd -f -p 80 -h /www
    healthcheck:
      test: ["CMD-SHELL", "wget -qO- http://127.0.0.1/ >/dev/null"]
      interval: 2s
EOF
cd "$work/p"
"$stack" up -d >/dev/null
engine=$(cat "$STACK_ROOT/engine.pid")
# Clients: two log followers and an event stream, for the whole run.
"$stack" logs -f >/dev/null 2>&1 &
"$stack" logs -f chatty >/dev/null 2>&1 &
"$stack" events >/dev/null 2>&1 &

sample() {
  local rss pss fds threads
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$engine/status")
  pss=$(awk '/^Pss:/ {print $2}' "/proc/$engine/smaps_rollup")
  fds=$(ls "/proc/$engine/fd" | wc -l)
  threads=$(awk '/^Threads/ {print $2}' "/proc/$engine/status")
  echo "$1 $rss $pss $fds $threads"
}
echo "seconds rss_kib pss_kib fds threads restarts"
samples=$work/samples
start=$(date +%s)
while :; do
  now=$(( $(date +%s) - start ))
  restarts=$("$stack" ps -a --format json 2>/dev/null | python3 -c '
import json, sys
print(sum(json.loads(l).get("RestartCount", 0) for l in sys.stdin if l.strip()))' 2>/dev/null || echo "?")
  line="$(sample "$now") $restarts"
  echo "$line" | tee -a "$samples"
  [ "$now" -ge "$duration" ] && break
  sleep "$every"
done
kill -0 "$engine"
python3 - "$samples" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1])]
cols = ["rss_kib", "pss_kib", "fds", "threads"]
first, last = rows[1] if len(rows) > 1 else rows[0], rows[-1]
for i, c in enumerate(cols, start=1):
    vals = [int(r[i]) for r in rows[1:]] or [int(rows[0][i])]
    print(f"{c}: after warm-up {first[i]}, at the end {last[i]}, peak {max(vals)}")
print(f"restarts counted by the engine: {last[5]}")
EOF
