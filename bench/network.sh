#!/usr/bin/env bash
# Benchmark, in one run (as root):
#  1. a /bin/true container with a network (netns, veth on a bridge, address,
#     route, DNS record, nft reload; then all of it taken down) against the
#     same container without one: the difference is our wiring per container.
#     Side by side: the same wiring done with `ip` commands, and
#     `docker run --rm --network NET busybox true` where Docker runs.
#  2. requests per second through a published port to busybox httpd
#     (ab -k, 127.0.0.1): stack's DNAT against Docker's docker-proxy path.
# Traffic stays on loopback and inside the namespaces made here.
# Usage: bench/network.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
for t in hyperfine ab busybox ip; do
  command -v $t >/dev/null || { echo "needs $t (apt-get install hyperfine apache2-utils busybox-static iproute2)"; exit 1; }
done
work=$(mktemp -d)
export STACK_ROOT=$work/root STACK_DNS_UPSTREAM=none
docker_ok=false; docker info >/dev/null 2>&1 && docker_ok=true
cargo build --release --quiet -p stack-cli
stack=$PWD/target/release/stack
cleanup() {
  "$stack" container rm -f web >/dev/null 2>&1 || true
  "$stack" network rm benchnet >/dev/null 2>&1 || true
  ip netns del stackbench 2>/dev/null || true; ip link del stkbench 2>/dev/null || true
  if $docker_ok; then docker rm -f stack-bench-web >/dev/null 2>&1 || true; docker network rm stack-bench >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/www"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in sh true httpd; do ln -s busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
head -c 1024 /dev/urandom | base64 >"$rootfs/www/index.html"

"$stack" network create benchnet >/dev/null
# The same wiring with ip(8): a bridge exists; per container a netns, a veth
# pair, an address, a route, then teardown.
ip link add stkbench type bridge && ip addr add 10.211.0.1/24 dev stkbench && ip link set stkbench up
cat >"$work/ip-wiring.sh" <<'EOF'
ip netns add stackbench
ip link add vbench0 type veth peer name vbench1
ip link set vbench0 master stkbench up
ip link set vbench1 netns stackbench
ip -n stackbench link set vbench1 name eth0
ip -n stackbench addr add 10.211.0.2/24 dev eth0
ip -n stackbench link set eth0 up
ip -n stackbench link set lo up
ip -n stackbench route add default via 10.211.0.1
ip netns del stackbench
ip link del vbench0 2>/dev/null || true
EOF

cmds=(-n "stack, no network" "$stack container run --rm --rootfs $rootfs /bin/true"
      -n "stack, on a network" "$stack container run --rm --network benchnet --rootfs $rootfs /bin/true"
      -n "ip commands (wiring only)" "sh $work/ip-wiring.sh")
if $docker_ok; then
  tar -C "$rootfs" -c . | docker import - stack-bench/busybox:1 >/dev/null
  docker network create stack-bench >/dev/null
  cmds+=(-n "docker, on a network" "docker run --rm --network stack-bench stack-bench/busybox:1 /bin/true")
fi
echo "== a container with and without a network ($runs runs)"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/setup.json" "${cmds[@]}" >/dev/null
python3 - "$work/setup.json" <<'PY'
import json, sys
r = {x["command"]: x["mean"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
for k, v in r.items():
    print(f"{k:<28} {v:8.2f} ms")
ours = r["stack, on a network"] - r["stack, no network"]
print(f"{'stack wiring per container':<28} {ours:8.2f} ms (the difference)")
ipw = r["ip commands (wiring only)"]
print(f"ip commands / stack wiring: {ipw / ours:.2f}x")
if "docker, on a network" in r:
    print(f"docker on a network / stack on a network: {r['docker, on a network'] / r['stack, on a network']:.2f}x")
PY

echo "== requests/s through a published port (ab -k -c 8 -n 20000)"
sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$stack" container run -d --name web --network benchnet -p "127.0.0.1:$sport:80" --rootfs "$rootfs" httpd -f -p 80 -h /www >/dev/null
sleep 0.5
rps() { ab -q -k -c 8 -n 20000 "$1" 2>/dev/null | awk '/Requests per second/ {print $4}'; }
s=$(rps "http://127.0.0.1:$sport/index.html")
echo "stack  (nft DNAT):      $s req/s"
if $docker_ok; then
  dport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  docker run -d --name stack-bench-web --network stack-bench -p "127.0.0.1:$dport:80" stack-bench/busybox:1 httpd -f -p 80 -h /www >/dev/null
  sleep 0.5
  d=$(rps "http://127.0.0.1:$dport/index.html")
  echo "docker (docker-proxy):  $d req/s"
  python3 -c "print(f'stack / docker: {$s / $d:.2f}x the requests per second')"
  docker rmi -f stack-bench/busybox:1 >/dev/null 2>&1 || true
fi
