#!/usr/bin/env bash
# Prints the path of a Jaeger v2 all-in-one binary, building it first when
# the cache has none for the current e2e/tools/jaeger/go.sum (about 10
# minutes on 2 cores, 121 MB). The tests use it as a real OTLP trace backend.
set -euo pipefail
cd "$(dirname "$0")/../e2e/tools/jaeger"
hash=$(cat go.mod go.sum | sha256sum | cut -c1-16)
cache="${GSTCAPTURE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gstcapture}/jaeger-$hash"
if [ ! -x "$cache/jaeger" ]; then
  echo "jaeger: building (once per go.sum change) into $cache" >&2
  mkdir -p "$cache"
  go build -o "$cache/jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger >&2
  mv "$cache/jaeger.tmp" "$cache/jaeger"
fi
echo "$cache/jaeger"
