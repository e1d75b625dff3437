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
# The mirror is the host's own, so that a local mirror keeps working: the
# first Debian source in its apt sources (deb, component main) for SUITE,
# else for another Debian suite; deb.debian.org only when there is none.
#
# Usage: scripts/base-images.sh [--force | --print-mirror]
#        --print-mirror prints the mirror it would use, and does nothing else
# Env:   STORAGE_DRIVER (vfs), GO_ROOT (/usr/local/go), SUITE (bookworm),
#        MIRROR (from the apt sources: /etc/apt/sources.list,
#        /etc/apt/sources.list.d/*.list and *.sources), APT_ROOT (/, where
#        those are read from; for tests)
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
GO_IMAGE=docker.io/library/golang:1.26-bookworm
STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
GO_ROOT=${GO_ROOT:-/usr/local/go}
SUITE=${SUITE:-bookworm}
APT_ROOT=${APT_ROOT:-}
SOURCES=$APT_ROOT/etc/apt/sources.list.d/debian.sources
DEFAULT_MIRROR=http://deb.debian.org/debian
FORCE=0
PRINT_MIRROR=0
case "${1:-}" in
  "") ;;
  --force) FORCE=1 ;;
  --print-mirror) PRINT_MIRROR=1 ;;
  *) echo "base-images: unknown argument $1 (usage: scripts/base-images.sh [--force | --print-mirror])" >&2; exit 2 ;;
esac

log() { echo "base-images: $*" >&2; }
die() { echo "base-images: ERROR: $*" >&2; exit 1; }

# apt_mirrors: "RANK<TAB>URI" for each Debian source under $APT_ROOT, in
# the order apt reads them. Rank 1: suite $SUITE at a path ending in
# /debian, the archive's layout (third-party repositories with a bookworm
# suite, such as packages.sury.org/php, seldom have it); 2: another Debian
# suite there (bookworm-updates, trixie); 3 and 4: the same elsewhere.
# Only "deb" entries with component main count: not deb-src, disabled
# (Enabled: no) or security entries, nor URI schemes debootstrap cannot
# fetch from (cdrom:, mirror+http:), nor suites that are no Debian release
# (nodistro, jammy) or components that are not main (Docker's stable).
apt_mirrors() {
  local f files=()
  [ -f "$APT_ROOT/etc/apt/sources.list" ] && files+=("$APT_ROOT/etc/apt/sources.list")
  for f in "$APT_ROOT"/etc/apt/sources.list.d/*; do
    case "$f" in *.list | *.sources) [ -f "$f" ] && files+=("$f") ;; esac
  done
  local common='
    function release(s) {
      sub(/-.*/, "", s)
      return s ~ /^(sid|stable|testing|unstable|oldstable|oldoldstable|experimental|sarge|etch|lenny|squeeze|wheezy|jessie|stretch|buster|bullseye|bookworm|trixie|forky|duke)$/
    }
    function emit(uri, suites, comps,   n, s, i, r, best) {
      if (uri !~ /^(https?|ftp|file):/ || uri ~ /debian-security/) return
      if ((" " comps " ") !~ /[ \t]main[ \t]/) return
      sub(/\/+$/, "", uri)
      best = 0
      n = split(suites, s, /[ \t]+/)
      for (i = 1; i <= n; i++) {
        if (s[i] == "" || s[i] ~ /-security$/) continue
        r = s[i] == suite ? 1 : (release(s[i]) ? 2 : 0)
        if (r && (!best || r < best)) best = r
      }
      if (!best) return
      if (uri !~ /\/debian$/) best += 2
      print best "\t" uri
    }'
  for f in ${files[@]+"${files[@]}"}; do
    case "$f" in
      *.sources) # deb822: stanzas of "Field: value", continuation lines indented
        awk -v suite="$SUITE" "$common"'
          function flush(   u) {
            if (uris != "" && (" " types " ") ~ /[ \t]deb[ \t]/ && tolower(enabled) !~ /^[ \t]*no[ \t]*$/) {
              split(uris, u, /[ \t]+/)
              emit(u[1] != "" ? u[1] : u[2], suites, comps)
            }
            types = uris = suites = comps = enabled = field = ""
          }
          /^#/ { next }
          /^[ \t]*$/ { flush(); next }
          /^[ \t]/ {
            if (field == "types") types = types " " $0
            else if (field == "uris") uris = uris " " $0
            else if (field == "suites") suites = suites " " $0
            else if (field == "components") comps = comps " " $0
            next
          }
          {
            i = index($0, ":")
            field = tolower(substr($0, 1, i - 1))
            value = i ? substr($0, i + 1) : ""
            if (field == "types") types = value
            else if (field == "uris") uris = value
            else if (field == "suites") suites = value
            else if (field == "components") comps = value
            else if (field == "enabled") enabled = value
          }
          END { flush() }' "$f" ;;
      *) # one-line: deb [options] URI SUITE COMPONENT...
        awk -v suite="$SUITE" "$common"'
          {
            line = $0
            sub(/#.*/, "", line)
            gsub(/\[[^]]*\]/, " ", line)
            n = split(line, w, /[ \t]+/)
            i = w[1] == "" ? 2 : 1
            if (w[i] != "deb" || i + 3 > n) next
            comps = ""
            for (j = i + 3; j <= n; j++) comps = comps " " w[j]
            emit(w[i + 1], w[i + 2], comps)
          }' "$f" ;;
    esac
  done
}

# find_mirror: MIRROR, else the best apt source (first of the lowest rank),
# else DEFAULT_MIRROR.
find_mirror() {
  if [ -n "${MIRROR:-}" ]; then
    echo "$MIRROR"
    return
  fi
  local m
  m=$(apt_mirrors | sort -s -t "$(printf '\t')" -k1,1n | awk -F '\t' 'NR == 1 { print $2 }') || m=""
  if [ -z "$m" ]; then
    log "no Debian mirror in the apt sources under ${APT_ROOT}/etc/apt; using $DEFAULT_MIRROR"
    m=$DEFAULT_MIRROR
  fi
  echo "$m"
}

if [ "$PRINT_MIRROR" = 1 ]; then
  find_mirror
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot and container storage need it)"
scripts/image-tools.sh

have_image() { podman --storage-driver "$STORAGE_DRIVER" image exists "$1"; }

if [ "$FORCE" = 0 ] && have_image "$DEBIAN_IMAGE" && have_image "$GO_IMAGE"; then
  log "$DEBIAN_IMAGE and $GO_IMAGE present (scripts/base-images.sh --force rebuilds them)"
  exit 0
fi

MIRROR=$(find_mirror)

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
