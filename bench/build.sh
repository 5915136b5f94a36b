#!/usr/bin/env bash
# Benchmark, in one run (as root): `stack image build` against Docker
# BuildKit (`DOCKER_BUILDKIT=1 docker build`) on the same multi-stage
# Dockerfile, context and local busybox base (one tar, imported into both
# as local/busybox:1; nothing is pulled, no `# syntax=` line):
#  1. cold build: `--no-cache` for both;
#  2. warm rebuild: nothing changed, every step from the cache;
#  3. rebuild after one file of the last COPY changed (new content before
#     each run): the steps before it cached, that COPY and CMD run again.
# The Dockerfile: a first stage of RUNs writing files (seq 1 20000, a
# checksum and a loop, gzip), then a stage with ENV/WORKDIR, a RUN, COPY
# --from of the first stage, a COPY of 200 small files, CMD. /out is written
# by one RUN: stack's COPY --from of a directory whose files come from
# several layers of the stage fails (it reads them in the top one). Medians and the ratio
# docker/stack (> 1: stack is faster) are printed at the end, with how many
# steps each tool took from its cache in each case, as a check that both did
# the same work. Docker is skipped where `docker info` fails; its BuildKit
# needs a CLI with buildx, or an older one (< 23) with BuildKit built in.
# Usage (as root): bench/build.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
for t in hyperfine busybox python3; do
  command -v $t >/dev/null || { echo "needs $t (apt-get install hyperfine busybox-static python3)"; exit 1; }
done
work=$(mktemp -d)
export STACK_ROOT=$work/root STACK_DNS_UPSTREAM=none DOCKER_BUILDKIT=1
cargo build --release --quiet -p stack-cli
stack=${CARGO_TARGET_DIR:-$PWD/target}/release/stack

# A docker CLI that builds with BuildKit: one with the buildx plugin, or one
# from before 23.0, whose `docker build` has BuildKit built in.
docker_ok=false; docker=
if docker info >/dev/null 2>&1; then
  for c in $(type -ap docker | awk '!seen[$0]++'); do
    if "$c" buildx version >/dev/null 2>&1; then docker=$c; break; fi
    v=$("$c" version --format '{{.Client.Version}}' 2>/dev/null || true)
    if [ -n "$v" ] && [ "${v%%.*}" -lt 23 ] 2>/dev/null; then docker=$c; break; fi
  done
  if [ -n "$docker" ]; then docker_ok=true; else echo "SKIP docker: no docker CLI here builds with BuildKit (no buildx plugin)"; fi
else
  echo "SKIP docker: \`docker info\` fails (no Docker Engine running)"
fi

cleanup() {
  # (the images each build left untagged carry the label)
  if $docker_ok; then
    "$docker" rmi -f stack-bench/built:1 local/busybox:1 >/dev/null 2>&1 || true
    "$docker" image prune -f --filter label=stack-bench=build >/dev/null 2>&1 || true
  fi
  kill "$(cat "$STACK_ROOT/engine.pid" 2>/dev/null)" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The base image: busybox-static with sh, /etc/passwd (as tests/common).
rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in sh cat echo; do ln -s busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
tar -C "$rootfs" -cf "$work/bb.tar" .
"$stack" image import "$work/bb.tar" local/busybox:1 >/dev/null
if $docker_ok; then "$docker" import "$work/bb.tar" local/busybox:1 >/dev/null; fi

ctx=$work/ctx
mkdir -p "$ctx/files"
for i in $(seq 1 200); do echo "file $i $(head -c 48 /dev/urandom | base64)" >"$ctx/files/f$i.txt"; done
cat >"$ctx/Dockerfile" <<'EOF'
FROM local/busybox:1 AS gen
RUN busybox seq 1 20000 > /numbers
RUN busybox mkdir -p /out && busybox sha256sum /numbers > /out/numbers.sha256 \
 && for i in $(busybox seq 1 500); do echo "line $i"; done > /out/lines.txt
RUN busybox gzip -c /numbers > /numbers.gz

FROM local/busybox:1
ENV APP=/app MODE=bench
WORKDIR /app
RUN busybox mkdir -p data && busybox wc -l /etc/passwd > data/passwd.count
COPY --from=gen /out/ ./gen/
COPY --from=gen /numbers.gz ./numbers.gz
COPY files/ ./files/
CMD ["cat", "/app/files/f200.txt"]
EOF

sb="image build -t stack-bench/built:1"
db="build -q --label stack-bench=build -t stack-bench/built:1"
touch_late="sh -c 'date +%s%N >$ctx/files/f200.txt'"
# hyperfine with the given name's JSON; its error shown, and the end, if a build fails.
bench() {
  local name=$1; shift
  hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/$name.json" "$@" >"$work/$name.out" 2>&1 || { cat "$work/$name.out"; exit 1; }
  grep -E 'Benchmark|Time' "$work/$name.out" || true
}

echo "== cold build (--no-cache), $runs runs each"
cmds=(-n "stack cold" "$stack $sb --no-cache $ctx")
if $docker_ok; then cmds+=(-n "docker cold" "$docker $db --no-cache $ctx"); fi
bench cold "${cmds[@]}"

echo "== warm rebuild (nothing changed)"
cmds=(-n "stack warm" "$stack $sb $ctx")
if $docker_ok; then cmds+=(-n "docker warm" "$docker $db $ctx"); fi
bench warm "${cmds[@]}"

echo "== rebuild after changing files/f200.txt (the last COPY)"
cmds=(--prepare "$touch_late" -n "stack changed" "$stack $sb $ctx")
if $docker_ok; then cmds+=(--prepare "$touch_late" -n "docker changed" "$docker $db $ctx"); fi
bench changed "${cmds[@]}"

# The check: steps from the cache in one more warm and one more changed
# build of each, from their plain progress; and the image's CMD output.
cached() { grep -cE '^#[0-9]+ CACHED$' "$1" || true; }
# (each first builds once: the other's changed runs left a new f200.txt)
"$stack" $sb "$ctx" >/dev/null 2>&1
"$stack" $sb "$ctx" 2>"$work/s-warm.log" >/dev/null
sh -c "$touch_late"
"$stack" $sb "$ctx" 2>"$work/s-changed.log" >/dev/null
echo "stack: warm $(cached "$work/s-warm.log") steps cached, changed $(cached "$work/s-changed.log"); the CMD prints $("$stack" container run --rm --network none stack-bench/built:1 | cut -c1-12)..."
if $docker_ok; then
  "$docker" $db "$ctx" >/dev/null 2>&1
  "$docker" build --progress=plain --label stack-bench=build -t stack-bench/built:1 "$ctx" >"$work/d-warm.log" 2>&1
  sh -c "$touch_late"
  "$docker" build --progress=plain --label stack-bench=build -t stack-bench/built:1 "$ctx" >"$work/d-changed.log" 2>&1
  echo "docker: warm $(cached "$work/d-warm.log") steps cached, changed $(cached "$work/d-changed.log"); the CMD prints $("$docker" run --rm --network none stack-bench/built:1 | cut -c1-12)..."
fi

echo "== medians ($runs runs each; ratio docker/stack, > 1: stack faster)"
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
print(f'{"":<10} {"stack":>10} {"docker":>10} {"docker/stack":>13}')
for k in ("cold", "warm", "changed"):
    r = {x["command"].split()[0]: x for x in json.load(open(f"{w}/{k}.json"))["results"]}
    s = r["stack"]["median"]
    line = f'{k:<10} {s*1000:8.0f}ms'
    if "docker" in r:
        d = r["docker"]["median"]
        line += f' {d*1000:8.0f}ms {d/s:12.2f}x'
    else:
        line += f' {"-":>10} {"-":>13}'
    print(line)
PY
