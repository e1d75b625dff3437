#!/usr/bin/env bash
# Makes sure the tools that build and test the container image without a
# Docker engine are installed: buildah, podman (image import/inspect),
# debootstrap (base images), fuse-overlayfs and uidmap. Missing ones are
# installed with apt-get through scripts/deps.sh.
#
# Usage: scripts/image-tools.sh          install what is missing
#        scripts/image-tools.sh --can    exit 0 when buildah is present or
#                                        installable with apt-get, else 1
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=(buildah podman debootstrap fuse-overlayfs uidmap)

if [ "${1:-}" = "--can" ]; then
  command -v buildah >/dev/null && exit 0
  command -v apt-get >/dev/null || exit 1
  [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null || exit 1
  # apt-cache needs package lists; deps.sh has run apt-get update by now on
  # a fresh machine when anything was missing.
  if ! apt-cache show buildah >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq >/dev/null 2>&1 || exit 1
    apt-cache show buildah >/dev/null 2>&1 || exit 1
  fi
  exit 0
fi

missing=0
for t in buildah podman debootstrap fuse-overlayfs newuidmap; do
  command -v "$t" >/dev/null || missing=1
done
[ "$missing" = 0 ] && exit 0
exec scripts/deps.sh "${TOOLS[@]}"
