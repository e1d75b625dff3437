#!/usr/bin/env bash
# Makes the two base images docker/Dockerfile starts from, for machines that
# cannot pull from a registry (no Docker engine, no registry access, only a
# Debian mirror): buildah/podman local storage gets
#
#   docker.io/library/debian:bookworm-slim   debootstrap minbase bookworm,
#       updated from the host's apt sources, trimmed like the official slim
#       image (no docs, man pages or locales; dpkg told to keep them out)
#   docker.io/library/golang:1.26-bookworm   that, plus the host's
#       /usr/local/go, gcc, pkg-config and the GStreamer -dev packages
#
# so that the Dockerfile stays the one users build on a normal machine.
# Images that exist already are kept; --force rebuilds both.
#
# Usage: scripts/base-images.sh [--force]
# Env:   STORAGE_DRIVER (vfs), GO_ROOT (/usr/local/go), MIRROR (from
#        /etc/apt/sources.list.d/debian.sources), SUITE (bookworm)
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
GO_IMAGE=docker.io/library/golang:1.26-bookworm
STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
GO_ROOT=${GO_ROOT:-/usr/local/go}
SUITE=${SUITE:-bookworm}
SOURCES=/etc/apt/sources.list.d/debian.sources
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

log() { echo "base-images: $*" >&2; }
die() { echo "base-images: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot and container storage need it)"
scripts/image-tools.sh

have_image() { podman --storage-driver "$STORAGE_DRIVER" image exists "$1"; }

if [ "$FORCE" = 0 ] && have_image "$DEBIAN_IMAGE" && have_image "$GO_IMAGE"; then
  log "$DEBIAN_IMAGE and $GO_IMAGE present (scripts/base-images.sh --force rebuilds them)"
  exit 0
fi

if [ -z "${MIRROR:-}" ]; then
  [ -r "$SOURCES" ] || die "no MIRROR given and $SOURCES is missing"
  MIRROR=$(awk '/^URIs:/ {print $2; exit}' "$SOURCES")
fi
[ -n "$MIRROR" ] || die "cannot find a Debian mirror in $SOURCES; set MIRROR=http://deb.debian.org/debian"

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/gstcapture-base.XXXXXX")
MOUNTS=()
cleanup() {
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

# chroot_run ROOT CMD...: runs CMD in ROOT with /proc, /dev and DNS.
chroot_run() {
  local root=$1; shift
  if ! mountpoint -q "$root/proc"; then
    mount -t proc proc "$root/proc"; MOUNTS+=("$root/proc")
    mount --bind /dev "$root/dev"; MOUNTS+=("$root/dev")
    mount --bind /dev/pts "$root/dev/pts"; MOUNTS+=("$root/dev/pts")
  fi
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"
}

unmount_all() {
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}"; done
  MOUNTS=()
}

# finish_rootfs ROOT: what the official images do before they are exported.
finish_rootfs() {
  local root=$1
  unmount_all
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root"/var/log/* "$root"/tmp/* \
    "$root"/root/.cache
  : >"$root/etc/resolv.conf"
  echo "localhost" >"$root/etc/hostname"
}

import() { # import ROOT NAME CHANGE...
  local root=$1 name=$2; shift 2
  local args=()
  for c in "$@"; do args+=(--change "$c"); done
  log "importing $name ($(du -sh --one-file-system "$root" | cut -f1))"
  tar --numeric-owner --xattrs -C "$root" -c . |
    podman --storage-driver "$STORAGE_DRIVER" import --quiet "${args[@]}" - "$name" >/dev/null
}

ROOT="$WORK/debian"
if [ "$FORCE" = 1 ] || ! have_image "$DEBIAN_IMAGE"; then
  log "debootstrap --variant=minbase $SUITE from $MIRROR (about 30 s)"
  debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  # The same apt sources as this host (updates and security included), in
  # the deb822 file the official image has.
  rm -f "$ROOT/etc/apt/sources.list"
  if [ -r "$SOURCES" ]; then
    cp "$SOURCES" "$ROOT/etc/apt/sources.list.d/debian.sources"
  else
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$MIRROR" "$SUITE" "$SUITE" >"$ROOT/etc/apt/sources.list.d/debian.sources"
  fi
  # Like the official slim image: dpkg never installs docs, man pages or
  # locales, and apt keeps no package cache.
  cat >"$ROOT/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
  cat >"$ROOT/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  printf 'APT::Install-Recommends "false";\n' >"$ROOT/etc/apt/apt.conf.d/docker-no-recommends"
  log "apt-get upgrade inside the rootfs (point release + security, like the official image)"
  chroot_run "$ROOT" sh -c 'apt-get update -qq && apt-get upgrade -y -qq >/dev/null' ||
    die "apt-get upgrade in the rootfs failed"
  find "$ROOT/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
  find "$ROOT/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  rm -rf "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* "$ROOT"/usr/share/groff/* "$ROOT"/usr/share/lintian/*
  finish_rootfs "$ROOT"
  podman --storage-driver "$STORAGE_DRIVER" rmi -f "$DEBIAN_IMAGE" >/dev/null 2>&1 || true
  import "$ROOT" "$DEBIAN_IMAGE" 'CMD ["bash"]'
  FORCE=1 # the Go image is built on this one
else
  log "$DEBIAN_IMAGE present, exporting it to build $GO_IMAGE on"
  mkdir -p "$ROOT"
  c=$(buildah --storage-driver "$STORAGE_DRIVER" from --pull=never "$DEBIAN_IMAGE")
  mnt=$(buildah --storage-driver "$STORAGE_DRIVER" mount "$c")
  tar --numeric-owner --xattrs -C "$mnt" -c . | tar --numeric-owner --xattrs -C "$ROOT" -x
  buildah --storage-driver "$STORAGE_DRIVER" rm "$c" >/dev/null
fi

if [ "$FORCE" = 1 ] || ! have_image "$GO_IMAGE"; then
  [ -x "$GO_ROOT/bin/go" ] || die "no Go toolchain at $GO_ROOT (set GO_ROOT)"
  gover=$("$GO_ROOT/bin/go" env GOVERSION)
  case "$gover" in go1.26*) ;; *) die "$GO_ROOT is $gover; the image is named golang:1.26-bookworm" ;; esac
  log "adding $gover from $GO_ROOT, gcc, pkg-config and GStreamer -dev packages"
  cp -a "$GO_ROOT" "$ROOT/usr/local/go"
  # What the official golang:bookworm image has for cgo (gcc, libc6-dev,
  # pkg-config, ca-certificates, git), plus the GStreamer headers the
  # Dockerfile would otherwise install itself.
  chroot_run "$ROOT" sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      gcc libc6-dev make pkg-config ca-certificates git \
      libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev >/dev/null' ||
    die "installing build packages in the Go rootfs failed"
  mkdir -p "$ROOT/go/bin" "$ROOT/go/src"
  chmod 1777 "$ROOT/go"
  finish_rootfs "$ROOT"
  podman --storage-driver "$STORAGE_DRIVER" rmi -f "$GO_IMAGE" >/dev/null 2>&1 || true
  import "$ROOT" "$GO_IMAGE" \
    "ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "ENV GOLANG_VERSION=${gover#go}" "ENV GOTOOLCHAIN=local" "ENV GOPATH=/go" \
    "WORKDIR /go" 'CMD ["bash"]'
fi
podman --storage-driver "$STORAGE_DRIVER" images --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
  grep -E "library/(debian|golang)" >&2 || true
