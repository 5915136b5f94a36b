#!/usr/bin/env bash
# Builds every image of the example with stack's own builder, brings it up
# (each service waits for the health of those it needs), posts a note and
# reads the notes back through nginx. As root. `stack down -v` in this
# directory takes it away again.
set -euo pipefail
cd "$(dirname "$0")"
stack=${STACK:-}
if [ -z "$stack" ]; then
  cargo build --release --quiet -p stack-cli
  stack=../../target/release/stack
fi
./base.sh "$stack"
$stack up -d --wait
port=${NOTES_PORT:-8081}
get() { python3 -c "import sys, urllib.request; data = sys.argv[2].encode() if len(sys.argv) > 2 else None; print(urllib.request.urlopen(sys.argv[1], data).read().decode())" "$@"; }
echo "--- POST http://127.0.0.1:$port/api/notes"
get "http://127.0.0.1:$port/api/notes" "text=hello from stack"
echo "--- GET http://127.0.0.1:$port/api/notes"
get "http://127.0.0.1:$port/api/notes"
echo "--- take it down with: (cd $(pwd) && $stack down -v)"
