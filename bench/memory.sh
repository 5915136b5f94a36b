#!/usr/bin/env bash
# Benchmark (as root): host memory per running container, engine included.
# N busybox-httpd services are brought up by stack, by docker-compose 1.29
# on Docker Engine and by podman-compose on podman (each where it runs);
# then the proportional set size (PSS: shared pages split between their
# users) of every process each one keeps on the host is summed:
#   stack:  the engine's process tree (monitors, containers, DNS server)
#   docker: dockerd, containerd and the containerd-shims with their trees
#   podman: the conmons with their trees, aardvark-dns
# and divided by N. Printed as MiB per container, with the ratios.
# Usage: bench/memory.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
. bench/lib.sh
start_bench
trap 'put_away "$work/p"' EXIT
mkdir -p "$work/p" "$work/podman-p"
import_busybox "$work"
{
  echo "services:"
  for i in $(seq 1 "$n"); do
    echo "  s$i:"
    echo "    image: stack-bench/busybox:1"
    echo "    command: httpd -f -p 80 -h /www"
  done
} >"$work/p/compose.yaml"
for_podman "$work/p/compose.yaml" >"$work/podman-p/compose.yaml"

per() { python3 -c "print(f'{$1 / 1024 / $n:.2f}')"; }
declare -A mib

(cd "$work/p" && "$stack" up -d >/dev/null 2>&1)
sleep 2
# This root's processes only (another root's containers on the host are not
# this engine's).
ours() {
  for p in $(pgrep -f __stack- || true); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "STACK_ROOT=$STACK_ROOT"; then echo "$p"; fi
  done
}
mib[stack]=$(per "$(pss "$(cat "$STACK_ROOT/engine.pid")" $(ours))")
(cd "$work/p" && "$stack" down >/dev/null 2>&1)

if $docker_ok; then
  (cd "$work/p" && docker-compose up -d >/dev/null 2>&1)
  sleep 2
  mib[docker-compose]=$(per "$(pss $(pgrep -x dockerd) $(pgrep -x containerd) $(pgrep -f containerd-shim))")
  (cd "$work/p" && docker-compose down -t 0 >/dev/null 2>&1)
fi
if $podman_ok; then
  (cd "$work/podman-p" && podman-compose up -d >/dev/null 2>&1)
  sleep 2
  mib[podman-compose]=$(per "$(pss $(pgrep -x conmon) $(pgrep -x aardvark-dns || true))")
  (cd "$work/podman-p" && podman-compose down -t 0 >/dev/null 2>&1)
fi

echo "== host memory per running container, engine included ($n busybox httpd services)"
for tool in stack docker-compose podman-compose; do
  [ -n "${mib[$tool]:-}" ] || continue
  ratio=$(python3 -c "print(f'{${mib[$tool]} / ${mib[stack]}:.1f}')")
  printf '%-16s %8s MiB   %sx stack\n' "$tool" "${mib[$tool]}" "$ratio"
done
