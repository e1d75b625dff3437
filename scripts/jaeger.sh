#!/usr/bin/env bash
# Prints the path of a Jaeger v2 all-in-one binary, building it first when
# the cache has none for the current e2e/tools/jaeger/go.sum (about 10
# minutes on 2 cores, 121 MB). The tests use it as a real OTLP trace backend.
set -euo pipefail
cd "$(dirname "$0")/../e2e/tools/jaeger"
hash=$(cat go.mod go.sum | sha256sum | cut -c1-16)
cache="${GSTCAPTURE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gstcapture}/jaeger-$hash"
mkdir -p "$cache"
# One build at a time: a second caller (a test while `scripts/jaeger.sh`
# runs by hand, say) waits for the first and then reuses its binary instead
# of writing the same file concurrently.
if command -v flock >/dev/null; then
  exec 9>"$cache/.lock"
  if ! flock -n 9; then
    echo "jaeger: another build into $cache is running; waiting for it" >&2
    flock 9
  fi
fi
if [ ! -x "$cache/jaeger" ]; then
  echo "jaeger: building (once per go.sum change) into $cache" >&2
  tmp="$cache/jaeger.tmp.$$"
  trap 'rm -f "$tmp"' EXIT
  go build -o "$tmp" github.com/jaegertracing/jaeger/cmd/jaeger >&2
  mv "$tmp" "$cache/jaeger"
fi
echo "$cache/jaeger"
