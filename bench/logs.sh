#!/usr/bin/env bash
# Benchmark (as root): `logs --tail 2` of a service whose log is SIZE MB
# (one line of 1000 bytes at a time), side by side: stack, and
# docker-compose 1.29 on Docker Engine where it runs; also `STACK_OTHER`,
# another stack binary (an earlier build, say), on a root of its own.
# Prints the times (hyperfine) and the peak memory (VmHWM) of each engine
# process afterwards: stack's engine, dockerd.
# Usage: bench/logs.sh [SIZE_MB]   (STACK_OTHER=/path/to/stack bench/logs.sh 200)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-200}
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)"; exit 1; }
. bench/lib.sh
start_bench
# The other build's project goes first: put_away deletes $work.
put_away_all() {
  if [ -n "${STACK_OTHER:-}" ]; then
    (cd "$work/p" && STACK_ROOT=$work/other "$STACK_OTHER" down >/dev/null 2>&1) || true
    kill "$(cat "$work/other/engine.pid" 2>/dev/null)" 2>/dev/null || true
  fi
  put_away "$work/p"
}
trap put_away_all EXIT
mkdir -p "$work/p"
import_busybox "$work"
lines=$((size * 1000))
cat >"$work/p/compose.yaml" <<EOF
services:
  chatty:
    image: stack-bench/busybox:1
    command: ["sh", "-c", "l=\$\$(busybox printf '%01000d' 0); i=0; while [ \$\$i -lt $lines ]; do echo \$\$l; i=\$\$((i+1)); done | busybox head -c ${size}000000; echo last-line; exec busybox sleep 100000"]
EOF

# Brings the project up with one tool and waits until its last line is logged.
up_and_wait() { # NAME, then the command that prints the logs' tail
  local name=$1; shift
  echo "$name: writing ${size} MB of log"
  for _ in $(seq 1 600); do
    "$@" 2>/dev/null | grep -q last-line && return 0
    sleep 1
  done
  echo "$name: the log never ended" >&2; exit 1
}

cmds=()
(cd "$work/p" && "$stack" up -d >/dev/null)
up_and_wait stack sh -c "cd $work/p && $stack logs --tail 2"
cmds+=(-n stack "sh -c 'cd $work/p && $stack logs --tail 2 >/dev/null'")
if [ -n "${STACK_OTHER:-}" ]; then
  (cd "$work/p" && STACK_ROOT=$work/other "$STACK_OTHER" image import "$work/bb.tar" stack-bench/busybox:1 >/dev/null)
  (cd "$work/p" && STACK_ROOT=$work/other "$STACK_OTHER" up -d >/dev/null)
  up_and_wait other sh -c "cd $work/p && STACK_ROOT=$work/other $STACK_OTHER logs --tail 2"
  cmds+=(-n "stack (STACK_OTHER)" "sh -c 'cd $work/p && STACK_ROOT=$work/other $STACK_OTHER logs --tail 2 >/dev/null'")
fi
if $docker_ok; then
  (cd "$work/p" && docker-compose up -d >/dev/null 2>&1)
  up_and_wait docker-compose sh -c "cd $work/p && docker-compose logs --tail 2"
  cmds+=(-n docker-compose "sh -c 'cd $work/p && docker-compose logs --tail 2 >/dev/null'")
fi
hyperfine -w 1 -r 10 "${cmds[@]}"
hwm() { grep VmHWM "/proc/$1/status" | awk '{printf "%.0f MiB\n", $2/1024}'; }
echo "peak memory of the engine afterwards: stack $(hwm "$(cat "$STACK_ROOT/engine.pid")")"
if [ -n "${STACK_OTHER:-}" ]; then echo "  stack (STACK_OTHER) $(hwm "$(cat "$work/other/engine.pid")")"; fi
if $docker_ok; then echo "  dockerd $(hwm "$(pidof dockerd)")"; fi
