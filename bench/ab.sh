#!/usr/bin/env bash
# A/B of two builds of stack in one run (as root): this checkout's release
# build against another commit's (built in a worktree beside, its target
# directory seeded from ours so only what differs compiles). Measured:
#   - container start (`container run --rm IMAGE /bin/true`), hyperfine,
#     both builds, in both orders;
#   - `up -d` of N independent services, ROUNDS rounds, each build in turn
#     (the order swapped every round), each on its own root and warm
#     engine; after each `down -t 0` the next `up` waits until the root
#     has no container process and no DNS server left, so one side's
#     teardown is not timed in the other's `up`.
# Usage: bench/ab.sh REV [N] [ROUNDS]      e.g. bench/ab.sh HEAD~1 10 10
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/ab.sh REV [N] [ROUNDS]}
n=${2:-10}
rounds=${3:-10}
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)"; exit 1; }
work=$(mktemp -d)
tree=$work/tree
cargo build --release --quiet -p stack-cli
git worktree add -q --detach "$tree" "$rev"
mkdir -p "$work/target" && cp -a target/release "$work/target/"
(cd "$tree" && CARGO_TARGET_DIR=$work/target cargo build --release --quiet -p stack-cli)
declare -A bin=([new]=$PWD/target/release/stack [old]=$work/target/release/stack)
cleanup() {
  for v in old new; do
    (cd "$work/up-$v" 2>/dev/null && STACK_ROOT=$work/root-$v "${bin[$v]}" down -t 0 >/dev/null 2>&1) || true
    kill "$(cat "$work/root-$v/engine.pid" 2>/dev/null)" 2>/dev/null || true
  done
  git worktree remove --force "$tree" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export STACK_DNS_UPSTREAM=none
mkdir -p "$work/bb/bin" "$work/bb/proc" "$work/bb/dev" "$work/bb/sys"
cp "$(command -v busybox)" "$work/bb/bin/busybox"
for a in sh true sleep; do ln -s busybox "$work/bb/bin/$a"; done
tar -C "$work/bb" -cf "$work/bb.tar" .
for v in old new; do
  mkdir -p "$work/up-$v"
  { echo "services:"; for i in $(seq 1 "$n"); do printf '  s%s:\n    image: local/bb:1\n    command: sleep 600\n' "$i"; done; } >"$work/up-$v/compose.yaml"
  STACK_ROOT=$work/root-$v "${bin[$v]}" image import "$work/bb.tar" local/bb:1 >/dev/null
  (cd "$work/up-$v" && STACK_ROOT=$work/root-$v "${bin[$v]}" ps >/dev/null)
done

echo "old: $(git rev-parse --short "$rev")   new: $(git rev-parse --short HEAD) (with what the checkout changes)"
# hyperfine runs each command's runs in one block, and on a file system
# where starts slow down with churn the second block pays for the first:
# both orders, one after the other.
echo "== container start (/bin/true), in both orders"
for order in "old new" "new old"; do
  set -- $order
  hyperfine -N --warmup 3 --runs 30 \
    -n "$1" "env STACK_ROOT=$work/root-$1 ${bin[$1]} container run --rm local/bb:1 /bin/true" \
    -n "$2" "env STACK_ROOT=$work/root-$2 ${bin[$2]} container run --rm local/bb:1 /bin/true" \
    2>/dev/null | grep -E 'Benchmark|Time|±|faster' || true
done

# Nothing of the root's containers or DNS server left running.
settled() {
  local root=$1
  ! pgrep -f "__stack-(init|dns)" -a | grep -q -- "$root" && \
    [ -z "$(ls -A "$root/containers" 2>/dev/null)" ]
}
echo "== up -d of $n services, $rounds rounds (ms)"
declare -A times=([old]="" [new]="")
for r in $(seq 1 "$rounds"); do
  order="old new"; [ $((r % 2)) = 0 ] && order="new old"
  for v in $order; do
    root=$work/root-$v
    for _ in $(seq 1 500); do settled "$root" && break; sleep 0.01; done
    t0=$(date +%s%N)
    (cd "$work/up-$v" && STACK_ROOT=$root "${bin[$v]}" up -d >/dev/null 2>&1)
    times[$v]+=" $(( ($(date +%s%N) - t0) / 1000000 ))"
    (cd "$work/up-$v" && STACK_ROOT=$root "${bin[$v]}" down -t 0 >/dev/null 2>&1)
  done
done
for v in old new; do
  echo "$v:${times[$v]}" | python3 -c '
import sys
name, rest = sys.stdin.read().split(":")
t = sorted(int(x) for x in rest.split())
all_ = " ".join(map(str, t))
print(f"  {name}: best {t[0]} ms, median {t[len(t)//2]} ms   ({all_})")'
done
