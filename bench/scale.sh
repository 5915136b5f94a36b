#!/usr/bin/env bash
# Benchmark (as root): how stack grows with the number of containers, and
# the largest size against docker-compose 1.29 on Docker Engine.
# One service of busybox httpd (it ignores SIGTERM as PID 1), scaled to N
# with `up -d --scale web=N`, on a /20 network (both tools: room for 500).
# For each N (SIZES, default 10 100 500), stack's figures:
#   up       time of `up -d --scale web=N` from nothing
#   no-op    time of the same `up` again (nothing to do)
#   ps       time of `ps`
#   engine   the engine's PSS (the process alone)
#   tree     PSS of the engine's whole process tree (monitors, PID 1s, the
#            DNS server, the services) per container
#   down     time of `down`
# Then at the largest N, docker-compose's up, down and memory per container
# (dockerd, containerd and the shims with their trees), and the ratios.
# Usage: bench/scale.sh [N ...]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 100 500)
. bench/lib.sh
start_bench
trap 'put_away "$work/p"' EXIT
import_busybox "$work"
mkdir -p "$work/p"
cat >"$work/p/compose.yaml" <<'EOF'
services:
  web:
    image: stack-bench/busybox:1
    command: httpd -f -p 80 -h /www
networks:
  default:
    ipam:
      config:
        - subnet: 10.231.0.0/20
EOF
# Milliseconds a command took (a failure is said on stderr, the time kept).
ms() { python3 -c "import time,subprocess,sys; t=time.monotonic(); r=subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE); r.returncode and print(sys.argv[1], 'failed:', r.stderr.decode()[-300:], file=sys.stderr); print(round((time.monotonic()-t)*1000))" "$@"; }
kib_per() { python3 -c "print(f'{$1 / $2:.0f}')"; }
in_p() { (cd "$work/p" && "$@"); }

printf '%6s %9s %9s %8s %11s %16s %9s\n' N up no-op ps engine "tree/container" down
for n in "${sizes[@]}"; do
  up=$(in_p ms "$stack" up -d --scale "web=$n")
  sleep 2
  noop=$(in_p ms "$stack" up -d --scale "web=$n")
  ps=$(in_p ms "$stack" ps)
  engine=$(awk '$1 == "Pss:" {print $2}' "/proc/$(cat "$STACK_ROOT/engine.pid")/smaps_rollup")
  tree=$(pss "$(cat "$STACK_ROOT/engine.pid")" $(pgrep -f __stack- || true))
  running=$(in_p "$stack" ps -q | wc -l)
  [ "$running" = "$n" ] || { echo "stack: $running of $n containers running"; exit 1; }
  down=$(in_p ms "$stack" down)
  printf '%6s %7s ms %7s ms %5s ms %8s kB %13s kB %7s ms\n' "$n" "$up" "$noop" "$ps" "$engine" "$(kib_per "$tree" "$n")" "$down"
  stack_up=$up stack_down=$down stack_tree=$tree
done

if $docker_ok; then
  n=${sizes[-1]}
  up=$(in_p ms docker-compose up -d --scale "web=$n")
  sleep 2
  tree=$(pss $(pgrep -x dockerd) $(pgrep -x containerd) $(pgrep -f containerd-shim))
  down=$(in_p ms docker-compose down)
  echo "== $n containers: docker-compose / stack"
  python3 - "$up" "$stack_up" "$down" "$stack_down" "$tree" "$stack_tree" "$n" <<'EOF'
import sys
up, sup, down, sdown, tree, stree, n = map(float, sys.argv[1:])
print(f"up -d   docker-compose {up/1000:7.2f} s   stack {sup/1000:6.2f} s   {up/sup:5.1f}x")
print(f"down    docker-compose {down/1000:7.2f} s   stack {sdown/1000:6.2f} s   {down/sdown:5.1f}x")
print(f"memory  docker-compose {tree/n/1024:7.2f} MiB/container   stack {stree/n/1024:5.2f} MiB/container   {tree/stree:5.1f}x")
EOF
fi
