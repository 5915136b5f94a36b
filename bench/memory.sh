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
docker_ok=false
docker info >/dev/null 2>&1 && command -v docker-compose >/dev/null && docker_ok=true
podman_ok=false
command -v podman-compose >/dev/null && podman info >/dev/null 2>&1 && podman_ok=true
work=$(mktemp -d)
export STACK_ROOT=$work/root STACK_DNS_UPSTREAM=none
cargo build --release --quiet -p stack-cli
stack=$PWD/target/release/stack
cleanup() {
  (cd "$work/p" 2>/dev/null && "$stack" down >/dev/null 2>&1) || true
  if $docker_ok; then (cd "$work/p" 2>/dev/null && docker-compose down -t 0 >/dev/null 2>&1) || true; fi
  if $podman_ok; then (cd "$work/podman" 2>/dev/null && podman-compose down -t 0 >/dev/null 2>&1) || true; fi
  if $docker_ok; then docker rmi -f stack-bench/busybox:1 >/dev/null 2>&1 || true; fi
  if $podman_ok; then podman rmi -f localhost/stack-bench/busybox:1 >/dev/null 2>&1 || true; fi
  kill "$(cat "$STACK_ROOT/engine.pid" 2>/dev/null)" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/www" "$work/p" "$work/podman"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in sh httpd; do ln -s busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo hi >"$rootfs/www/index.html"
tar -C "$rootfs" -cf "$work/bb.tar" .
"$stack" image import "$work/bb.tar" stack-bench/busybox:1 >/dev/null
$docker_ok && docker import "$work/bb.tar" stack-bench/busybox:1 >/dev/null
$podman_ok && podman import "$work/bb.tar" localhost/stack-bench/busybox:1 >/dev/null
if $podman_ok && ! podman run --rm localhost/stack-bench/busybox:1 sh -c : >/dev/null 2>"$work/podman.err"; then
  echo "podman-compose left out: podman cannot start a container here: $(grep -m1 Error "$work/podman.err")"
  podman_ok=false
fi
{
  echo "services:"
  for i in $(seq 1 "$n"); do
    echo "  s$i:"
    echo "    image: stack-bench/busybox:1"
    echo "    command: httpd -f -p 80 -h /www"
  done
} >"$work/p/compose.yaml"
sed 's|image: stack-bench/|image: localhost/stack-bench/|' "$work/p/compose.yaml" >"$work/podman/compose.yaml"

# The PSS, in KiB, of the processes named by pid on the command line and
# of all their descendants.
pss() {
  python3 - "$@" <<'EOF'
import os, sys
children = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(p))
seen, todo = set(), [int(a) for a in sys.argv[1:] if a.isdigit()]
while todo:
    p = todo.pop()
    if p not in seen:
        seen.add(p)
        todo.extend(children.get(p, []))
total = 0
for p in seen:
    try:
        for line in open(f"/proc/{p}/smaps_rollup"):
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    except OSError:
        pass
print(total)
EOF
}

per() { python3 -c "print(f'{$1 / 1024 / $n:.2f}')"; }
declare -A mib

(cd "$work/p" && "$stack" up -d >/dev/null 2>&1)
sleep 2
mib[stack]=$(per "$(pss "$(cat "$STACK_ROOT/engine.pid")" $(pgrep -f __stack- || true))")
(cd "$work/p" && "$stack" down >/dev/null 2>&1)

if $docker_ok; then
  (cd "$work/p" && docker-compose up -d >/dev/null 2>&1)
  sleep 2
  mib[docker-compose]=$(per "$(pss $(pgrep -x dockerd) $(pgrep -x containerd) $(pgrep -f containerd-shim))")
  (cd "$work/p" && docker-compose down -t 0 >/dev/null 2>&1)
fi
if $podman_ok; then
  (cd "$work/podman" && podman-compose up -d >/dev/null 2>&1)
  sleep 2
  mib[podman-compose]=$(per "$(pss $(pgrep -x conmon) $(pgrep -x aardvark-dns || true))")
  (cd "$work/podman" && podman-compose down -t 0 >/dev/null 2>&1)
fi

echo "== host memory per running container, engine included ($n busybox httpd services)"
for tool in stack docker-compose podman-compose; do
  [ -n "${mib[$tool]:-}" ] || continue
  ratio=$(python3 -c "print(f'{${mib[$tool]} / ${mib[stack]}:.1f}')")
  printf '%-16s %8s MiB   %sx stack\n' "$tool" "${mib[$tool]}" "$ratio"
done
