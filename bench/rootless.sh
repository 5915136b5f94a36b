#!/usr/bin/env bash
# Benchmark: rootless against root, in one run. A user who is not root
# (`stack-bench`, made with subordinate ranges if missing) and root each
# run `/bin/true` in a fresh container of the same busybox image (create +
# start + wait + delete), and `up -d` of 10 independent services (best of
# 3, `down` between); podman's rootless mode beside them where podman is
# installed. Both stacks are started through `setpriv`, so each pays the
# same extra exec.
# Usage (as root): bench/rootless.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)"; exit 1; }
command -v newuidmap >/dev/null && command -v slirp4netns >/dev/null \
  || { echo "needs uidmap and slirp4netns (apt-get install uidmap slirp4netns)"; exit 1; }
user=stack-bench
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --no-create-home --shell /usr/sbin/nologin -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$user"
  usermod --add-subuids 400000-465535 --add-subgids 400000-465535 "$user"
fi
uid=$(id -u "$user"); gid=$(id -g "$user")
[ -c /dev/net/tun ] && chmod 0666 /dev/net/tun
cargo build --release --quiet -p stack-cli
work=$(mktemp -d); chmod 755 "$work"
cp target/release/stack "$work/stack"
mkdir -p "$work/bb/bin"
cp "$(command -v busybox)" "$work/bb/bin/busybox"
for a in sh true sleep; do ln -s busybox "$work/bb/bin/$a"; done
tar -C "$work/bb" -cf "$work/bb.tar" .
mkdir -p "$work/home" "$work/up"
printf 'services:\n' > "$work/up/compose.yaml"
for i in $(seq 1 10); do printf '  s%s:\n    image: local/bb:1\n    command: sleep 600\n' "$i" >> "$work/up/compose.yaml"; done
chown -R "$uid:$gid" "$work/home" "$work/up" "$work/bb.tar"

as_root="setpriv --reuid=0 --regid=0 --clear-groups env HOME=/root STACK_ROOT=$work/root STACK_DNS_UPSTREAM=none"
as_user="setpriv --reuid=$uid --regid=$gid --clear-groups env HOME=$work/home STACK_ROOT=$work/home/root STACK_DNS_UPSTREAM=none XDG_RUNTIME_DIR=$work/home/run"
cleanup() {
  for who in "$as_root" "$as_user"; do
    (cd "$work/up" && $who "$work/stack" down >/dev/null 2>&1) || true
  done
  kill "$(cat "$work/root/engine.pid" 2>/dev/null)" 2>/dev/null || true
  # Everything in the user's namespaces, then their holder.
  holder=$(awk '{print $1}' "$work/home/root/rootless/holder.pid" 2>/dev/null || true)
  if [ -n "$holder" ]; then
    ns=$(readlink "/proc/$holder/ns/user" || true)
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/ns/user" 2>/dev/null)" = "$ns" ] && kill -9 "${p#/proc/}" 2>/dev/null || true
    done
  fi
  if command -v podman >/dev/null; then
    setpriv --reuid="$uid" --regid="$gid" --clear-groups env HOME="$work/home" XDG_RUNTIME_DIR="$work/home/run" podman system reset -f >/dev/null 2>&1 || true
    pkill -u "$user" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/home/run"; chown "$uid:$gid" "$work/home/run"; chmod 700 "$work/home/run"
$as_root "$work/stack" image import "$work/bb.tar" local/bb:1 >/dev/null
$as_user "$work/stack" image import "$work/bb.tar" local/bb:1 >/dev/null
cmds=(-n "stack, root" "$as_root $work/stack container run --rm local/bb:1 /bin/true"
      -n "stack, rootless" "$as_user $work/stack container run --rm local/bb:1 /bin/true")
if command -v podman >/dev/null \
  && $as_user podman import "$work/bb.tar" localhost/bb:1 >/dev/null 2>&1; then
  cmds+=(-n "podman, rootless" "$as_user podman run --rm --network none localhost/bb:1 /bin/true")
fi
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/h.json" "${cmds[@]}" >/dev/null
echo "container start (/bin/true, create + start + wait + delete), $runs runs:"
python3 - "$work/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base = r[0]["mean"]
for x in r:
    print(f'  {x["command"]:<18} mean {x["mean"]*1000:7.2f} ms  ± {x["stddev"]*1000:5.2f}   {x["mean"]/base:5.2f}x of root')
PY

echo "up -d of 10 independent services, best of 3 (a warm engine; down between):"
best() {
  local who=$1 best=
  (cd "$work/up" && $who "$work/stack" ps >/dev/null 2>&1) # the engine up first
  for _ in 1 2 3; do
    t0=$(date +%s%N)
    (cd "$work/up" && $who "$work/stack" up -d >/dev/null 2>&1)
    t=$(( ($(date +%s%N) - t0) / 1000000 ))
    (cd "$work/up" && $who "$work/stack" down -t 0 >/dev/null 2>&1)
    if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
  done
  echo "$best"
}
root_ms=$(best "$as_root"); user_ms=$(best "$as_user")
echo "  stack, root      ${root_ms} ms"
echo "  stack, rootless  ${user_ms} ms   $(python3 -c "print(f'{$user_ms/$root_ms:.2f}')")x of root"

# What rootless costs once per store: the namespace holder and slirp4netns
# (Pss: shared pages divided among their sharers).
pss() { awk '$1 == "Pss:" {print $2}' "/proc/$1/smaps_rollup"; }
holder=$(awk '{print $1}' "$work/home/root/rootless/holder.pid")
slirp=$(pgrep -f "api-socket=$work/home/root/rootless/slirp.sock" | head -1)
echo "once per rootless store: holder Pss $(pss "$holder") kB, slirp4netns Pss $(pss "$slirp") kB"
