#!/bin/sh
# Copies GStreamer plugins and files, plus the shared libraries they load
# (their ldd closure), into a tree that a later image stage copies to /.
# Runs inside the Dockerfile's "collect" stage, after the Debian packages
# are installed there.
#
#   collect-gst.sh DEST [--skip-tree DIR]... [--plugin NAME]... [--file PATH]...
#
# --plugin NAME   $PLUGINDIR/libgstNAME.so
# --file PATH     any file; ELF files bring their closure too
# --skip-tree DIR a file already present at the same path under DIR is
#                 not copied again (the slim tree, when making the full one)
#
# A library is left out when the base image has the identical file: the
# stage records /usr/lib checksums in $BASE_SUMS before installing anything.
# Paths are written canonically (/usr/lib/..., never /lib/...), because
# copying a /lib directory onto bookworm's /lib -> usr/lib symlink would
# break the image. Fails when a library cannot be resolved.
#
# For every Debian package a copied file comes from, its dpkg status entry
# goes to DEST/var/lib/dpkg/status.d/PACKAGE (the distroless convention):
# image scanners (trivy, grype) read it and so see the versions of what was
# copied; dpkg and apt ignore it.
set -eu

BASE_SUMS=${BASE_SUMS:-/var/tmp/base-usr-lib.sha256}
DEST=$1
shift
ARCHDIR=$(dirname "$(realpath "$(ldconfig -p | awk '/libc\.so\.6 / {print $NF; exit}')")")
PLUGINDIR=$ARCHDIR/gstreamer-1.0
SKIP_TREES=""
FILES=""

while [ $# -gt 0 ]; do
  case $1 in
    --plugin) FILES="$FILES $PLUGINDIR/libgst$2.so"; shift 2 ;;
    --file) FILES="$FILES $2"; shift 2 ;;
    --skip-tree) SKIP_TREES="$SKIP_TREES $2"; shift 2 ;;
    *) echo "collect-gst: unknown argument $1" >&2; exit 2 ;;
  esac
done

mkdir -p "$DEST"
SEEN=$(mktemp)
COPIED=$(mktemp)

# canonical PATH: the path with its directory resolved (so /lib/x -> /usr/lib/x)
# but the file name kept (a soname symlink stays a soname).
canonical() {
  printf '%s/%s\n' "$(realpath "$(dirname "$1")")" "$(basename "$1")"
}

in_base() { # PATH: the base image has this exact file (checksums are of real files)
  real=$(realpath "$1")
  want=$(sha256sum "$real" | cut -d' ' -f1)
  grep -qxF "$want  $real" "$BASE_SUMS"
}

in_skip_tree() {
  for t in $SKIP_TREES; do
    [ -e "$t$1" ] && return 0
  done
  return 1
}

add() { # PATH: copy (dereferenced) to DEST at its canonical path
  p=$(canonical "$1")
  grep -qx "$p" "$SEEN" && return 0
  echo "$p" >>"$SEEN"
  if in_base "$p" || in_skip_tree "$p"; then
    return 0
  fi
  mkdir -p "$DEST$(dirname "$p")"
  cp -L "$p" "$DEST$p"
  echo "$p" >>"$COPIED"
  # ELF: follow its dependencies.
  if head -c 4 "$p" | grep -q 'ELF'; then
    out=$(ldd "$p" 2>&1) || { echo "collect-gst: ldd $p failed: $out" >&2; exit 1; }
    if echo "$out" | grep -q 'not found'; then
      echo "collect-gst: $p: unresolved libraries:" >&2
      echo "$out" | grep 'not found' >&2
      exit 1
    fi
    for lib in $(echo "$out" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'); do
      add "$lib"
    done
  fi
}

for f in $FILES; do
  [ -e "$f" ] || { echo "collect-gst: $f does not exist" >&2; exit 1; }
  add "$f"
done

# dpkg status entries of the packages the copied files belong to.
mkdir -p "$DEST/var/lib/dpkg/status.d"
while read -r p; do
  owner=$(dpkg -S "$p" 2>/dev/null || dpkg -S "${p#/usr}" 2>/dev/null || true)
  [ -n "$owner" ] && echo "$owner" | head -1 | cut -d: -f1 | tr ',' '\n' | sed 's/ //g'
done <"$COPIED" | sort -u | while read -r pkg; do
  [ -n "$pkg" ] || continue
  in_skip_tree "/var/lib/dpkg/status.d/$pkg" && continue
  dpkg-query -s "$pkg" >"$DEST/var/lib/dpkg/status.d/$pkg"
done
rm -f "$SEEN" "$COPIED"
echo "collect-gst: $DEST: $(find "$DEST" -type f | wc -l) files, $(du -sh "$DEST" | cut -f1)" >&2
