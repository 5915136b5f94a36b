#!/usr/bin/env bash
# Benchmark, in one run (as root): `up -d` and `down` of N busybox-httpd
# services (independent, and as a depends_on chain) by stack and by
# docker-compose 1.29 on Docker Engine and by podman-compose on podman
# (each where it runs), plus a no-op second `up`. hyperfine prints the
# ratios. The services ignore SIGTERM (busybox httpd as PID 1 does, under
# Docker). Host memory per container: bench/memory.sh.
# Usage: bench/up.sh [N] [RUNS]   (KINDS="flat" to skip the chain, whose docker-compose down takes minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
runs=${2:-3}
command -v hyperfine >/dev/null || { echo "needs hyperfine"; exit 1; }
. bench/lib.sh
start_bench
trap 'put_away "$work/flat" "$work/chain"' EXIT
import_busybox "$work"

for kind in flat chain; do
  mkdir -p "$work/$kind"
  {
    echo "services:"
    for i in $(seq 1 "$n"); do
      echo "  s$i:"
      echo "    image: stack-bench/busybox:1"
      echo "    command: httpd -f -p 80 -h /www"
      if [ "$kind" = chain ] && [ "$i" -gt 1 ]; then echo "    depends_on: [s$((i - 1))]"; fi
    done
  } >"$work/$kind/compose.yaml"
  mkdir -p "$work/podman-$kind"
  for_podman "$work/$kind/compose.yaml" >"$work/podman-$kind/compose.yaml"
done

for kind in ${KINDS:-flat chain}; do
  echo "== $n services, $kind: up -d, then down"
  cmds=(--prepare "cd $work/$kind && $stack down >/dev/null 2>&1 || true" -n "stack up -d" "cd $work/$kind && $stack up -d")
  if $docker_ok; then
    cmds+=(--prepare "cd $work/$kind && docker-compose down -t 0 >/dev/null 2>&1 || true" -n "docker-compose up -d" "cd $work/$kind && docker-compose up -d")
  fi
  if $podman_ok; then
    cmds+=(--prepare "cd $work/podman-$kind && podman-compose down -t 0 >/dev/null 2>&1 || true" -n "podman-compose up -d" "cd $work/podman-$kind && podman-compose up -d")
  fi
  hyperfine --runs "$runs" --export-json "$work/up-$kind.json" "${cmds[@]}" 2>/dev/null | grep -E 'Benchmark|Time|±|faster' || true
  # The issue's measure: the best run of each, and the ratios of those.
  python3 - "$work/up-$kind.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
best = {x["command"]: min(x["times"]) for x in r}
s = best["stack up -d"]
print(f"  best of {len(r[0]['times'])}: " + ", ".join(f"{k} {v * 1000:.1f} ms ({v / s:.1f}x stack)" for k, v in best.items()))
PY
  cmds=(--prepare "cd $work/$kind && $stack up -d >/dev/null 2>&1" -n "stack down" "cd $work/$kind && $stack down")
  if $docker_ok; then
    cmds+=(--prepare "cd $work/$kind && docker-compose up -d >/dev/null 2>&1" -n "docker-compose down" "cd $work/$kind && docker-compose down")
  fi
  if $podman_ok; then
    cmds+=(--prepare "cd $work/podman-$kind && podman-compose up -d >/dev/null 2>&1" -n "podman-compose down" "cd $work/podman-$kind && podman-compose down")
  fi
  hyperfine --runs "$runs" "${cmds[@]}" 2>/dev/null | grep -E 'Benchmark|Time|faster' || true
done

echo "== no-op second up ($n services, flat)"
(cd "$work/flat" && "$stack" up -d >/dev/null 2>&1)
cmds=(-n "stack up -d (no-op)" "cd $work/flat && $stack up -d")
if $docker_ok; then
  (cd "$work/flat" && docker-compose up -d >/dev/null 2>&1)
  cmds+=(-n "docker-compose up -d (no-op)" "cd $work/flat && docker-compose up -d")
fi
if $podman_ok; then
  (cd "$work/podman-flat" && podman-compose up -d >/dev/null 2>&1)
  cmds+=(-n "podman-compose up -d (no-op)" "cd $work/podman-flat && podman-compose up -d")
fi
hyperfine --runs "$runs" "${cmds[@]}" 2>/dev/null | grep -E 'Benchmark|Time|faster' || true
