# Shared by bench/up.sh, bench/memory.sh and bench/scale.sh (sourced, as root): which peers
# run here, the busybox image each tool gets, and putting it all away.

# $work (a temp dir holding $STACK_ROOT), $stack (the release build) and
# the peers there are.
start_bench() {
  work=$(mktemp -d)
  export STACK_ROOT=$work/root STACK_DNS_UPSTREAM=none
  cargo build --release --quiet -p stack-cli
  stack=$PWD/target/release/stack
  detect_peers
}

# docker_ok / podman_ok: docker-compose on a running Docker Engine, and
# podman-compose on podman.
detect_peers() {
  docker_ok=false
  docker info >/dev/null 2>&1 && command -v docker-compose >/dev/null && docker_ok=true
  podman_ok=false
  command -v podman-compose >/dev/null && podman info >/dev/null 2>&1 && podman_ok=true
  return 0
}

# A busybox root filesystem (sh, httpd, /www/index.html) imported as
# stack-bench/busybox:1 into stack ($stack, $STACK_ROOT) and each peer
# (podman's named in full: it would look a short name up in registries).
# podman is left out, with its reason, where it cannot start a container.
import_busybox() {
  local work=$1 rootfs=$1/rootfs
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/www"
  cp "$(command -v busybox)" "$rootfs/bin/busybox"
  for a in sh httpd; do ln -s busybox "$rootfs/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
  echo hi >"$rootfs/www/index.html"
  tar -C "$rootfs" -cf "$work/bb.tar" .
  "$stack" image import "$work/bb.tar" stack-bench/busybox:1 >/dev/null
  if $docker_ok; then docker import "$work/bb.tar" stack-bench/busybox:1 >/dev/null; fi
  if $podman_ok; then
    podman import "$work/bb.tar" localhost/stack-bench/busybox:1 >/dev/null
    if ! podman run --rm localhost/stack-bench/busybox:1 sh -c : >/dev/null 2>"$work/podman.err"; then
      echo "podman-compose left out: podman cannot start a container here: $(grep -m1 Error "$work/podman.err")"
      podman rmi -f localhost/stack-bench/busybox:1 >/dev/null 2>&1 || true
      podman_ok=false
    fi
  fi
}

# podman's copy of a stack file: the image named in full.
for_podman() {
  sed 's|image: stack-bench/|image: localhost/stack-bench/|' "$1"
}

# Every project directory given brought down by each tool (podman's in
# podman-DIR), the images removed, the engine stopped, $work deleted.
put_away() {
  local d
  for d in "$@"; do
    (cd "$d" 2>/dev/null && "$stack" down >/dev/null 2>&1) || true
    if $docker_ok; then (cd "$d" 2>/dev/null && docker-compose down -t 0 >/dev/null 2>&1) || true; fi
    if $podman_ok; then (cd "$(dirname "$d")/podman-$(basename "$d")" 2>/dev/null && podman-compose down -t 0 >/dev/null 2>&1) || true; fi
  done
  if $docker_ok; then docker rmi -f stack-bench/busybox:1 >/dev/null 2>&1 || true; fi
  if $podman_ok; then podman rmi -f localhost/stack-bench/busybox:1 >/dev/null 2>&1 || true; fi
  kill "$(cat "$STACK_ROOT/engine.pid" 2>/dev/null)" 2>/dev/null || true
  rm -rf "$work"
}

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
