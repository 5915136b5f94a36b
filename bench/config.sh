#!/usr/bin/env bash
# Benchmark: `stack config` against `docker-compose config` (Debian's
# docker-compose 1.29) on a generated 1,000-service stack, in one run.
# Prints mean wall time of each, the ratio, and peak RSS.
# Usage: bench/config.sh [SERVICES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
runs=${2:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet -p stack-cli
stack=$PWD/target/release/stack
python3 bench/gen_stack.py "$n" "$work/stack"
cd "$work/stack"

peak() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
mean() {
  local start end
  start=$(date +%s%N)
  for _ in $(seq "$runs"); do "$@" >/dev/null 2>&1; done
  end=$(date +%s%N)
  echo $(( (end - start) / runs / 1000 ))
}

"$stack" config >/dev/null
echo "stack file: $n services, $(wc -l < docker-compose.yml) + $(wc -l < docker-compose.override.yml) lines; $runs runs each"
s_us=$(mean "$stack" config)
s_kb=$(peak "$stack" config)
printf '%-28s mean %8.1f ms   peak RSS %7.1f MiB\n' "stack config" "$(echo "$s_us/1000" | bc -l)" "$(echo "$s_kb/1024" | bc -l)"
if command -v docker-compose >/dev/null; then
  docker-compose config >/dev/null 2>&1 || { echo "docker-compose config failed on the stack:"; docker-compose config 2>&1 | tail -3; exit 1; }
  d_us=$(mean docker-compose config)
  d_kb=$(peak docker-compose config)
  printf '%-28s mean %8.1f ms   peak RSS %7.1f MiB\n' "docker-compose config" "$(echo "$d_us/1000" | bc -l)" "$(echo "$d_kb/1024" | bc -l)"
  printf 'ratio: stack is %.1fx faster, uses %.1fx less memory\n' "$(echo "$d_us/$s_us" | bc -l)" "$(echo "$d_kb/$s_kb" | bc -l)"
else
  echo "docker-compose not installed (apt-get install docker-compose): no peer to compare with"
fi
