#!/usr/bin/env bash
# Benchmark, in one run (as root): the Docker Engine API of stack's engine
# against dockerd's, driven by the same clients on the same image (one
# busybox tar imported into both as stack-bench/busybox:1; nothing pulled):
#  1. `docker run --rm stack-bench/busybox:1 true` (hyperfine, the docker
#     CLI pointed at each socket by DOCKER_HOST);
#  2. docker-py creating and removing 50 containers (`create`, then
#     `remove(force=True)`, one after another; wall time of the whole).
# Medians and the ratio docker/stack (> 1: stack is faster) at the end.
# dockerd is started for the run if it is not running (and stopped after).
# Usage (as root): bench/docker-api.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
for t in hyperfine busybox python3 docker; do
  command -v $t >/dev/null || { echo "needs $t (apt-get install hyperfine busybox-static python3 docker.io)"; exit 1; }
done
py=${STACK_TEST_PYTHON:-$PWD/target/docker-venv/bin/python}
[ -x "$py" ] || { echo "needs docker-py: python3 -m venv target/docker-venv && target/docker-venv/bin/pip install docker"; exit 1; }
work=$(mktemp -d)
export STACK_ROOT=$work/root STACK_DNS_UPSTREAM=none
cargo build --release --quiet -p stack-cli
stack=${CARGO_TARGET_DIR:-$PWD/target}/release/stack
docker=$(command -v /usr/local/bin/docker || command -v docker)
ours=unix://$STACK_ROOT/docker.sock
theirs=unix:///var/run/docker.sock

started_dockerd=
if ! DOCKER_HOST=$theirs "$docker" info >/dev/null 2>&1; then
  dockerd >"$work/dockerd.log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 1 100); do DOCKER_HOST=$theirs "$docker" info >/dev/null 2>&1 && break; sleep 0.2; done
fi
cleanup() {
  DOCKER_HOST=$theirs "$docker" rmi -f stack-bench/busybox:1 >/dev/null 2>&1 || true
  if [ -n "$started_dockerd" ]; then kill "$started_dockerd"; wait "$started_dockerd" 2>/dev/null || true; fi
  "$stack" container ls -aq 2>/dev/null | xargs -r "$stack" container rm -f >/dev/null 2>&1 || true
  # (the network the Docker API made for `bridge`, with its rules)
  "$stack" network rm bridge >/dev/null 2>&1 || true
  kill "$(cat "$STACK_ROOT/engine.pid" 2>/dev/null)" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in sh true sleep; do ln -s busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
tar -C "$rootfs" -cf "$work/bb.tar" .
"$stack" image import "$work/bb.tar" stack-bench/busybox:1 >/dev/null
DOCKER_HOST=$theirs "$docker" import "$work/bb.tar" stack-bench/busybox:1 >/dev/null
# The engine, started as the CLI starts it; its Docker socket.
"$stack" ls >/dev/null
for _ in $(seq 1 100); do [ -S "$STACK_ROOT/docker.sock" ] && break; sleep 0.05; done

echo "== docker run --rm true, $runs runs each"
hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/run.json" \
  -n stack "env DOCKER_HOST=$ours $docker run --rm stack-bench/busybox:1 true" \
  -n docker "env DOCKER_HOST=$theirs $docker run --rm stack-bench/busybox:1 true" 2>&1 | grep -E 'Benchmark|Time'

echo "== docker-py: create and remove 50 containers"
cat >"$work/churn.py" <<'PY'
import sys, time, docker
c = docker.DockerClient(base_url=sys.argv[1])
t = time.perf_counter()
for i in range(50):
    x = c.containers.create("stack-bench/busybox:1", ["sleep", "1"])
    x.remove(force=True)
print(time.perf_counter() - t)
PY
for who in stack docker; do
  url=$ours; [ $who = docker ] && url=$theirs
  for i in 1 2 3; do "$py" "$work/churn.py" "$url"; done | sort -n | sed -n 2p >"$work/churn-$who"
  echo "$who: $(cat "$work/churn-$who")s (median of 3)"
done

echo "== medians (ratio docker/stack, > 1: stack faster)"
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
r = {x["command"]: x["median"] for x in json.load(open(f"{w}/run.json"))["results"]}
s, d = r["stack"], r["docker"]
print(f'docker run --rm true   stack {s*1000:7.0f}ms  docker {d*1000:7.0f}ms  {d/s:6.2f}x')
s, d = (float(open(f"{w}/churn-{k}").read()) for k in ("stack", "docker"))
print(f'docker-py 50 create+rm stack {s:7.2f}s   docker {d:7.2f}s   {d/s:6.2f}x')
PY
