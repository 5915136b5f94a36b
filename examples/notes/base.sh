#!/usr/bin/env bash
# Makes the example's base image, local/debian:bookworm, from Debian's
# packages (mmdebstrap, minbase) and imports it: no registry involved.
# Usage: base.sh STACK_BINARY. As root.
set -euo pipefail
stack=$1
if $stack image inspect local/debian:bookworm >/dev/null 2>&1; then
  exit 0
fi
if ! command -v mmdebstrap >/dev/null; then
  apt-get update -qq && apt-get install -y -qq mmdebstrap >/dev/null
fi
tar=$(mktemp --suffix=.tar)
trap 'rm -f "$tar"' EXIT
mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$tar" http://deb.debian.org/debian
$stack image import "$tar" local/debian:bookworm >/dev/null
