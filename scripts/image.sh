#!/usr/bin/env bash
# Builds the container image from docker/Dockerfile.
#
# With a Docker engine (`docker info` answers): docker build, Docker's cache.
# Without one: buildah (installed when missing), on base images that
# scripts/base-images.sh makes locally because no registry is reachable, and
# only when the inputs changed (hash of the Dockerfile, .dockerignore,
# go.mod, go.sum, the Go sources and the base images).
#
# Usage: scripts/image.sh [--target slim|full] [--tag NAME] [--force]
# Prints the image name as the last line of stdout.
#
# Local-only optimisation, buildah path: module downloads inside the build
# stage come from this machine's module cache, mounted read-only with
# `buildah bud -v` and used as GOPROXY=file://... (the build stage's RUN
# cannot verify TLS through this machine's egress proxy). The Dockerfile is
# the same one users build; it still says GOPROXY=https://proxy.golang.org.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=slim
TAG=""
FORCE=0
while [ $# -gt 0 ]; do
  case $1 in
    --target) TARGET=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    *) echo "image: unknown argument $1 (usage: scripts/image.sh [--target slim|full] [--tag NAME] [--force])" >&2; exit 2 ;;
  esac
done
case $TARGET in slim | full) ;; *) echo "image: --target must be slim or full" >&2; exit 2 ;; esac

VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
REVISION=$(git rev-parse HEAD 2>/dev/null || true)
log() { echo "image: $*" >&2; }

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  TAG=${TAG:-gstcapture:$TARGET}
  log "docker build --target $TARGET -t $TAG"
  docker build -f docker/Dockerfile --target "$TARGET" -t "$TAG" \
    --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" . >&2
  echo "$TAG"
  exit 0
fi

TAG=${TAG:-localhost/gstcapture:$TARGET}
SD=${STORAGE_DRIVER:-vfs}
[ "$(id -u)" -eq 0 ] || { log "ERROR: buildah without a Docker engine needs root here"; exit 1; }
scripts/image-tools.sh
scripts/base-images.sh

base_ids=$(podman --storage-driver "$SD" image inspect --format '{{.Id}}' \
  docker.io/library/debian:bookworm-slim docker.io/library/golang:1.26-bookworm)
inputs_hash() {
  {
    echo "target=$TARGET version=$VERSION revision=$REVISION"
    echo "$base_ids"
    sha256sum docker/Dockerfile docker/collect-gst.sh .dockerignore go.mod go.sum
    # What .dockerignore lets into the context.
    find cmd internal pipelines docs/embed.go docs/openapi.yaml -type f ! -name '*_test.go' \
      ! -path '*/testdata/*' -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-32
}
hash=$(inputs_hash)
cache="${GSTCAPTURE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gstcapture}/image"
stamp="$cache/$(echo "$TAG" | tr '/:' '__').stamp"
mkdir -p "$cache"
if [ "$FORCE" = 0 ] && [ -f "$stamp" ] && podman --storage-driver "$SD" image exists "$TAG"; then
  read -r old_hash old_id <"$stamp"
  cur_id=$(podman --storage-driver "$SD" image inspect --format '{{.Id}}' "$TAG")
  if [ "$old_hash" = "$hash" ] && [ "$old_id" = "$cur_id" ]; then
    log "$TAG is up to date (inputs $hash)"
    echo "$TAG"
    exit 0
  fi
fi

modcache=$(go env GOMODCACHE)
log "go mod download (host module cache $modcache feeds the build stage)"
go mod download
log "buildah bud --target $TARGET -t $TAG (storage $SD)"
start=$(date +%s)
blog="$cache/build-$TARGET.log"
buildah --storage-driver "$SD" bud --isolation chroot --pull=never --layers --format docker \
  --target "$TARGET" -t "$TAG" -f docker/Dockerfile \
  -v "$modcache/cache/download:/var/cache/gomod-host:ro" \
  --build-arg GOPROXY=file:///var/cache/gomod-host \
  --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" . 2>&1 | tee "$blog" >&2
log "built $TAG in $(($(date +%s) - start)) s"
echo "$hash $(podman --storage-driver "$SD" image inspect --format '{{.Id}}' "$TAG")" >"$stamp"

# Layer cache upkeep. With the vfs driver every cached step is a full copy
# of its stage's filesystem (up to 1 GB), so the steps of earlier builds
# that this build no longer uses are removed: only images this script's
# builds made (recorded per target), never other images in the storage.
ids="$cache/layers-$TARGET.ids"
grep -oE '^--> (Using cache )?[0-9a-f]{11,64}$' "$blog" | awk '{print substr($NF, 1, 11)}' | sort -u >"$ids.new"
if [ -f "$ids" ]; then
  stale=$(comm -23 <(sort -u "$ids") "$ids.new")
  for other in "$cache"/layers-*.ids; do
    [ "$other" = "$ids" ] || [ ! -f "$other" ] || stale=$(echo "$stale" | grep -vxF -f "$other" || true)
  done
  for _ in 1 2 3; do
    for id in $stale; do
      podman --storage-driver "$SD" image exists "$id" 2>/dev/null &&
        podman --storage-driver "$SD" rmi "$id" >/dev/null 2>&1 || true
    done
  done
  for id in $stale; do # still there (in use): try again next time
    podman --storage-driver "$SD" image exists "$id" 2>/dev/null && echo "$id" >>"$ids.new"
  done
fi
mv "$ids.new" "$ids"
echo "$TAG"
