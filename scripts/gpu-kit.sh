#!/usr/bin/env bash
# Builds the GPU check kit: what scripts/gpu-check.sh needs to check
# gstcapture's GPU decoding on a machine that has an NVIDIA driver and glibc
# but no GStreamer and no network. Writes OUT/gpu-kit/ and
# OUT/gpu-kit.tar.gz (OUT is bin/ by default) and fails when the tarball is
# over GPU_KIT_LIMIT_MIB (60) MiB. docs/gpu-kit.md says how to use it.
#
#   scripts/gpu-kit.sh [--no-build] [--force] [--out DIR]
#
#   --no-build  take bin/gstcapture and bin/camsim as they are (default:
#               `make build` first)
#   --force     rebuild even when no input changed
#   --out DIR   where gpu-kit/ and gpu-kit.tar.gz go (default bin)
#
# The kit holds bin/gstcapture and bin/camsim (stripped copies), gpucheck
# (cmd/gpucheck, static), redis-server, gst-inspect-1.0, gst-launch-1.0 and
# gst-plugin-scanner; the GStreamer plugins the pipelines (pipelines/*.tmpl)
# and camsim use, nvcodec in a folder of its own so that a check can leave
# it out; every shared library those load (their DT_NEEDED closure), except
# glibc's and the NVIDIA driver's, which come from the host; two
# pre-encoded 720p clips (H.264, H.265: camsim's clip settings) for a
# decoder-only comparison; the `run` wrapper that sets the environment.
#
# Stubs: libavcodec, libavformat and libavfilter link ~60 libraries (AV1,
# JPEG XL, SVG, speech, network protocols...) that decoding H.264/H.265
# never calls; copied, they make the kit ~230 MB. Each library that only
# FFmpeg's libraries need is replaced by a stub with its soname and exported
# symbols (gpucheck stub) whose every function aborts, naming itself, and so
# are libavfilter and libpostproc (gst-libav loads them for avdeinterlace
# only). Except KEEP_REAL below: libavcodec's codec registration calls into
# those at start-up (gst-inspect of the kit aborts otherwise).
#
# Cached: the key is a hash of every input file (both scripts, the doc,
# gpucheck, every binary, plugin and library collected); when it matches
# the built kit's, nothing is done. The clips are cached apart, by their
# encoder settings and the encoders' files, in OUT/gpu-kit-cache/.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

OUT=bin
BUILD=1
FORCE=0
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) BUILD=0; shift ;;
    --force) FORCE=1; shift ;;
    --out) OUT=${2:?"gpu-kit: --out needs a directory"}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-kit: unknown argument $1 (see scripts/gpu-kit.sh --help)" >&2; exit 2 ;;
  esac
done
LIMIT_MIB=${GPU_KIT_LIMIT_MIB:-60}
GO=${GO:-go}

die() { echo "gpu-kit: $*" >&2; exit 1; }

for tool in readelf ldd cc strip strings flock tar gzip sha256sum pkg-config gst-launch-1.0 gst-inspect-1.0 redis-server "$GO"; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs what the build needs; Go must be on PATH or in \$GO)"
done

if [ "$BUILD" = 1 ]; then
  make build >&2
fi
for b in bin/gstcapture bin/camsim; do
  [ -x "$b" ] || die "$REPO/$b is missing: run make build (or drop --no-build)"
done

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# One build at a time per OUT (two e2e runs may build together).
exec 9>"$OUT/.gpu-kit.lock"
flock 9
WORK=$(mktemp -d "$OUT/.gpu-kit-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

PLUGINDIR=$(pkg-config --variable=pluginsdir gstreamer-1.0)
SCANNER=$(pkg-config --variable=pluginscannerdir gstreamer-1.0)/gst-plugin-scanner
[ -d "$PLUGINDIR" ] || die "GStreamer plugin directory $PLUGINDIR (pkg-config gstreamer-1.0) does not exist"
[ -x "$SCANNER" ] || die "$SCANNER (pkg-config gstreamer-1.0 pluginscannerdir) is missing"

# Plugins, by file: what pipelines/h264.tmpl, h265.tmpl and probe.tmpl use
# (rtspsrc, rtpjitterbuffer, udpsrc, the depayloaders and parsers, the
# decoders, capssetter, videorate, videoscale, videoconvert, appsink,
# fakesink), jpegenc for snapshots, and what camsim needs to encode its clip
# and serve it (videotestsrc, x264enc, x265enc, the payloaders, appsrc).
PLUGINS=(coreelements app rtsp rtp rtpmanager udp videoparsersbad videorate debug jpeg libav x264 x265 videotestsrc)
if [ -e "$PLUGINDIR/libgstvideoconvertscale.so" ]; then
  PLUGINS+=(videoconvertscale) # GStreamer >= 1.22
else
  PLUGINS+=(videoconvert videoscale)
fi
NVCODEC=$PLUGINDIR/libgstnvcodec.so
[ -e "$NVCODEC" ] || die "$NVCODEC is missing (Debian: gstreamer1.0-plugins-bad)"
# The elements the kit must register (nvcodec's register only with a GPU).
ELEMENTS=(rtspsrc rtpjitterbuffer udpsrc rtph264depay rtph265depay h264parse h265parse avdec_h264 avdec_h265
  capssetter videorate videoscale videoconvert appsink appsrc fakesink filesrc filesink jpegenc
  videotestsrc x264enc x265enc rtph264pay rtph265pay)

# Libraries the host provides: glibc's (they must match the host's
# ld-linux), and the NVIDIA driver's (they must match its kernel module).
GLIBC_RE='^(ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libmvec\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libresolv\.so\.2|libutil\.so\.1|libanl\.so\.1|libnsl\.so\.1|libBrokenLocale\.so\.1|libthread_db\.so\.1|libc_malloc_debug\.so\.0|libnss_[a-z_]+\.so\.2)$'
DRIVER_RE='^(libcuda\.so.*|libnvcuvid\.so.*|libnvidia-.*|lib(EGL|GLX|GLESv1_CM|GLESv2)_nvidia\.so.*)$'
FFMPEG_RE='^lib(avcodec|avformat|avfilter|avutil|avdevice|swscale|swresample|postproc)\.so'
# FFmpeg libraries that gst-libav loads but H.264/H.265 decoding never calls.
STUB_ALWAYS_RE='^lib(avfilter|postproc)\.so'
# Libraries FFmpeg calls while it registers its codecs (init_static_data).
KEEP_REAL_RE='^lib(aom|vpx)\.so'

declare -A SEEN=() BASE=() KEPT=() STUB=() HOSTLIB=()
ORDER=()
# walk MODE PATH...: the DT_NEEDED closure, resolved as ld.so would (ldd of
# each object). MODE libav stubs what only FFmpeg's libraries need.
walk() {
  local mode=$1 obj so path
  shift
  local queue=("$@")
  while [ ${#queue[@]} -gt 0 ]; do
    obj=${queue[0]}
    queue=("${queue[@]:1}")
    [ -n "${SEEN[$obj]:-}" ] && continue
    SEEN[$obj]=1
    ORDER+=("$obj")
    KEPT[${obj##*/}]=1
    if [ "$mode" = base ]; then BASE[${obj##*/}]=1; fi
    local -A where=()
    local lddout
    lddout=$(ldd "$obj" 2>&1) || die "ldd $obj failed: $lddout"
    if grep -q 'not found' <<<"$lddout"; then
      die "$obj: unresolved libraries: $(grep 'not found' <<<"$lddout" | tr -s ' \t\n' ' ')"
    fi
    while read -r so path; do where[$so]=$path; done < <(awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' <<<"$lddout")
    for so in $(readelf -d "$obj" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      if [[ $so =~ $GLIBC_RE || $so =~ $DRIVER_RE ]]; then
        HOSTLIB[$so]=1
        continue
      fi
      path=${where[$so]:-}
      [ -n "$path" ] || die "$obj needs $so, which ldd did not resolve"
      if [ "$mode" = libav ] && { [[ $so =~ $STUB_ALWAYS_RE ]] || { [[ ${obj##*/} =~ $FFMPEG_RE ]] &&
        ! [[ $so =~ $FFMPEG_RE || $so =~ $KEEP_REAL_RE ]] && [ -z "${BASE[$so]:-}" ]; }; }; then
        STUB[$so]=$(realpath "$path")
        continue
      fi
      queue+=("$path")
    done
    unset where
  done
}

ROOTS=("$REPO/bin/gstcapture" "$REPO/bin/camsim" "$(command -v redis-server)" "$(command -v gst-inspect-1.0)"
  "$(command -v gst-launch-1.0)" "$SCANNER" "$NVCODEC")
for p in "${PLUGINS[@]}"; do
  [ "$p" = libav ] && continue
  [ -e "$PLUGINDIR/libgst$p.so" ] || die "$PLUGINDIR/libgst$p.so is missing (scripts/deps.sh installs the GStreamer plugin packages)"
  ROOTS+=("$PLUGINDIR/libgst$p.so")
done
[ -e "$PLUGINDIR/libgstlibav.so" ] || die "$PLUGINDIR/libgstlibav.so is missing (Debian: gstreamer1.0-libav)"
walk base "${ROOTS[@]}"
walk libav "$PLUGINDIR/libgstlibav.so"
# A library both kept and stubbed (reached another way) is kept.
for so in "${!STUB[@]}"; do
  if [ -n "${KEPT[$so]:-}" ]; then unset "STUB[$so]"; fi
done

# gpucheck: static, so it needs nothing from the kit.
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o "$WORK/gpucheck" ./cmd/gpucheck

# The cache key: every input's content.
KEY=$({
  sha256sum scripts/gpu-kit.sh scripts/gpu-check.sh docs/gpu-kit.md "$WORK/gpucheck" | awk '{print $1}'
  for obj in "${ORDER[@]}"; do printf '%s %s\n' "$(basename "$obj")" "$(sha256sum <"$obj" | cut -d' ' -f1)"; done | sort
  for so in "${!STUB[@]}"; do printf 'stub %s %s\n' "$so" "$(sha256sum <"${STUB[$so]}" | cut -d' ' -f1)"; done | sort
} | sha256sum | cut -c1-16)
TARBALL=$OUT/gpu-kit.tar.gz
if [ "$FORCE" = 0 ] && [ -f "$TARBALL" ] && [ -f "$OUT/gpu-kit/MANIFEST" ] && grep -qx "key: $KEY" "$OUT/gpu-kit/MANIFEST" &&
  [ -f "$TARBALL.sha256" ] && (cd "$OUT" && sha256sum --quiet -c gpu-kit.tar.gz.sha256 2>/dev/null); then
  echo "gpu-kit: up to date: $TARBALL ($(du -m "$TARBALL" | cut -f1) MiB, key $KEY)"
  exit 0
fi

KIT=$WORK/gpu-kit
mkdir -p "$KIT/bin" "$KIT/libexec" "$KIT/lib/stub" "$KIT/lib/gio-modules" "$KIT/plugins" "$KIT/plugins-nvcodec" "$KIT/clips"
for obj in "${ORDER[@]}"; do
  name=$(basename "$obj")
  case $obj in
    "$REPO/bin/gstcapture" | "$REPO/bin/camsim") strip -o "$KIT/bin/$name" "$obj" ;;
    "$NVCODEC") cp -L "$obj" "$KIT/plugins-nvcodec/" ;;
    "$PLUGINDIR"/*) cp -L "$obj" "$KIT/plugins/" ;;
    "$SCANNER") cp -L "$obj" "$KIT/libexec/" ;;
    */bin/*) cp -L "$obj" "$KIT/bin/" ;;
    *) cp -L "$obj" "$KIT/lib/$name" ;;
  esac
done
cp -L "$PLUGINDIR/libgstlibav.so" "$KIT/plugins/"
cp "$WORK/gpucheck" "$KIT/bin/"
cp scripts/gpu-check.sh "$KIT/gpu-check.sh"
cp docs/gpu-kit.md "$KIT/README.md"
chmod 755 "$KIT/gpu-check.sh"

# Stubs, cached by the real library's content and gpucheck's.
gk_sum=$(sha256sum <"$WORK/gpucheck" | cut -c1-16)
pids=()
for so in "${!STUB[@]}"; do
  cached=$OUT/gpu-kit-cache/stub-$so-$(sha256sum <"${STUB[$so]}" | cut -c1-16)-$gk_sum
  if [ ! -s "$cached" ]; then
    (
      mkdir -p "$OUT/gpu-kit-cache" "$WORK/stubsrc/$so"
      read -r _ src map < <("$KIT/bin/gpucheck" stub "$WORK/stubsrc/$so" "${STUB[$so]}")
      cc -shared -fPIC -O0 -o "$cached.tmp" "$src" "-Wl,-soname,$so" ${map:+"-Wl,--version-script,$map"}
      rm -f "$OUT/gpu-kit-cache/stub-$so-"*[!p]
      mv "$cached.tmp" "$cached"
    ) &
    pids+=($!)
  fi
done
for pid in ${pids[@]+"${pids[@]}"}; do
  wait "$pid" || die "making a stub library failed (see the compiler's message above)"
done
for so in "${!STUB[@]}"; do
  cp "$OUT/gpu-kit-cache/stub-$so-$(sha256sum <"${STUB[$so]}" | cut -c1-16)-$gk_sum" "$KIT/lib/stub/$so"
done

# Clips: camsim's default clip (cmd/camsim/camsim.c encoder_desc, no
# B-frames), 4 s of 1280x720 at 25 fps, GOP 50, 2 Mbit/s.
CLIP_W=1280 CLIP_H=720 CLIP_FPS=25 CLIP_FRAMES=100 CLIP_GOP=50 CLIP_KBPS=2000
clip_src="videotestsrc pattern=smpte horizontal-speed=4 num-buffers=$CLIP_FRAMES ! video/x-raw,format=I420,width=$CLIP_W,height=$CLIP_H,framerate=$CLIP_FPS/1"
declare -A CLIP_ENC=(
  [h264]="x264enc speed-preset=ultrafast tune=zerolatency bframes=0 key-int-max=$CLIP_GOP bitrate=$CLIP_KBPS cabac=true aud=false option-string=scenecut=0 ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au"
  [h265]="x265enc speed-preset=ultrafast tune=zerolatency key-int-max=$CLIP_GOP bitrate=$CLIP_KBPS log-level=error option-string=scenecut=0:open-gop=0:bframes=0 ! h265parse config-interval=-1 ! video/x-h265,stream-format=byte-stream,alignment=au"
)
for codec in h264 h265; do
  ckey=$({ echo "$clip_src ! ${CLIP_ENC[$codec]}"; sha256sum <"$PLUGINDIR/libgst${codec/h26/x26}.so"; for o in "${ORDER[@]}"; do case $(basename "$o") in libx26*) sha256sum <"$o" ;; esac; done; } | sha256sum | cut -c1-16)
  cached=$OUT/gpu-kit-cache/clip-$codec-$ckey.$codec
  if [ ! -s "$cached" ]; then
    mkdir -p "$OUT/gpu-kit-cache"
    rm -f "$OUT"/gpu-kit-cache/clip-"$codec"-*
    # shellcheck disable=SC2086 # the descriptions are gst-launch words
    gst-launch-1.0 -q $clip_src ! ${CLIP_ENC[$codec]} ! filesink location="$cached.tmp" >&2 ||
      die "encoding the $codec clip with the system's gst-launch-1.0 failed"
    mv "$cached.tmp" "$cached"
  fi
  cp "$cached" "$KIT/clips/clip.$codec"
done

# The environment wrapper.
cat >"$KIT/run" <<'RUN'
#!/usr/bin/env bash
# run PROGRAM [ARGS...]: runs one of the kit's programs (bin/PROGRAM by
# name, or any command) with the kit's libraries and GStreamer plugins and
# nothing of a GStreamer the host may have; the host gives glibc and the
# NVIDIA driver. Made by scripts/gpu-kit.sh; docs/gpu-kit.md.
#   GPU_KIT_REGISTRY=FILE  GStreamer's registry cache; default: one under
#                          ${TMPDIR:-/tmp}, removed first, so every run
#                          rescans (nvcodec registers its decoders only
#                          when it finds a GPU at scan time)
#   GPU_KIT_NO_NVCODEC=1   leave the nvcodec plugin out of the plugin path
set -euo pipefail
kit=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -lt 1 ]; then
  echo "usage: $0 PROGRAM [ARGS...]; PROGRAM: $(ls "$kit/bin" | tr '\n' ' ')or any command" >&2
  exit 2
fi
prog=$1
shift
case $prog in
  */*) ;;
  *) if [ -x "$kit/bin/$prog" ]; then prog=$kit/bin/$prog; fi ;;
esac
ld=$kit/lib:$kit/lib/stub${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
  if [ -d "$d" ]; then ld=$ld:$d; fi
done
export LD_LIBRARY_PATH=$ld
plugins=$kit/plugins
if [ "${GPU_KIT_NO_NVCODEC:-}" != 1 ]; then plugins=$plugins:$kit/plugins-nvcodec; fi
unset GST_PLUGIN_PATH GST_PLUGIN_SYSTEM_PATH GST_PLUGIN_SCANNER GST_REGISTRY GIO_EXTRA_MODULES
export GST_PLUGIN_SYSTEM_PATH_1_0=$plugins GST_PLUGIN_PATH_1_0=$plugins
export GST_PLUGIN_SCANNER_1_0=$kit/libexec/gst-plugin-scanner
if [ -z "${GPU_KIT_REGISTRY:-}" ]; then
  dir=${TMPDIR:-/tmp}/gpu-kit-$(id -u)
  mkdir -p "$dir"
  GPU_KIT_REGISTRY=$dir/registry-$$.bin
  rm -f "$dir"/registry-*.bin
fi
export GST_REGISTRY_1_0=$GPU_KIT_REGISTRY
export GIO_MODULE_DIR=$kit/lib/gio-modules GSETTINGS_BACKEND=memory
exec "$prog" "$@"
RUN
chmod 755 "$KIT/run"

# Self-check, in an environment that points at the system's GStreamer: what
# the kit runs must not see it.
selfenv=(env -i PATH=/usr/bin:/bin HOME="$WORK" TMPDIR="$WORK" GST_PLUGIN_PATH="$PLUGINDIR" GST_PLUGIN_SYSTEM_PATH="$PLUGINDIR"
  GPU_KIT_REGISTRY="$WORK/registry.bin")
"${selfenv[@]}" "$KIT/run" gst-inspect-1.0 >"$WORK/inspect.txt" 2>"$WORK/inspect.err" ||
  die "gst-inspect-1.0 from the kit failed: $(tail -5 "$WORK/inspect.err")"
if grep -q 'is a stub in this kit' "$WORK/inspect.err"; then
  die "a stub was called while GStreamer scanned the kit's plugins; keep that library real (KEEP_REAL_RE in scripts/gpu-kit.sh): $(grep -m3 'is a stub' "$WORK/inspect.err")"
fi
black=$("${selfenv[@]}" "$KIT/run" gst-inspect-1.0 -b 2>&1 | grep -v -e '^Blacklisted files:' -e '^Total count:' -e '^$' || true)
[ -z "$black" ] || die "GStreamer blacklisted kit plugins (they failed to load): $black"
for e in "${ELEMENTS[@]}"; do
  grep -q "^[^ ]*:  $e: " "$WORK/inspect.txt" || die "the kit registers no element $e (gst-inspect-1.0 from the kit)"
done
outside=$(strings "$WORK/registry.bin" | grep '\.so$' | grep -v "^$KIT/" || true)
[ -z "$outside" ] || die "the kit's GStreamer registry holds plugins from outside the kit: $outside"
while IFS= read -r -d '' f; do
  head -c 4 "$f" | grep -q ELF || continue
  readelf -d "$f" 2>/dev/null | grep -q '(NEEDED)' || continue # static (gpucheck)
  res=$("${selfenv[@]}" "$KIT/run" ldd "$f" 2>&1) || die "ldd $f under the kit's environment failed: $res"
  if grep -q 'not found' <<<"$res"; then die "$f: libraries not found in the kit: $(grep 'not found' <<<"$res" | tr -s ' \t\n' ' ')"; fi
  while read -r so path; do
    case $path in "$KIT"/*) continue ;; esac
    [[ $so =~ $GLIBC_RE ]] || die "$f loads $so from $path, outside the kit"
  done < <(awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' <<<"$res")
done < <(find "$KIT" -type f \( -name '*.so*' -o -perm -u+x \) -print0)

# The newest glibc symbol version anything in the kit needs.
GLIBC_NEED=$(find "$KIT" -type f \( -name '*.so*' -o -perm -u+x \) -exec sh -c 'head -c 4 "$1" | grep -q ELF && readelf -V -W "$1"' _ {} \; 2>/dev/null |
  grep -o 'Name: GLIBC_[0-9.]*' | sed 's/Name: GLIBC_//' | sort -V | tail -1)

{
  echo "kit: gstcapture GPU check kit (scripts/gpu-kit.sh; docs/gpu-kit.md)"
  echo "key: $KEY"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "source: $(git describe --always --dirty 2>/dev/null || echo unknown)"
  echo "gstcapture: $("$KIT/bin/gstcapture" version 2>/dev/null | head -1 || echo unknown)"
  echo "gstreamer: $(gst-inspect-1.0 --version | sed -n 's/^GStreamer //p' | head -1)"
  # shellcheck source=/dev/null
  echo "build_host: $(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}") $(uname -m)"
  echo "glibc_required: ${GLIBC_NEED:-unknown}"
  echo "host_libraries: $(printf '%s\n' "${!HOSTLIB[@]}" | sort | tr '\n' ' ')"
  echo "stubs: $(printf '%s\n' "${!STUB[@]}" | sort | tr '\n' ' ')"
  echo "clip_size: ${CLIP_W}x${CLIP_H}"
  echo "clip_fps: $CLIP_FPS"
  echo "clip_frames: $CLIP_FRAMES"
  echo "clip_gop: $CLIP_GOP"
  echo "plugins: $(for f in "$KIT"/plugins/*.so "$KIT"/plugins-nvcodec/*.so; do printf '%s ' "${f##*/}"; done)"
} >"$KIT/MANIFEST"

# A reproducible tarball: sorted names, fixed owner and time, no gzip name.
tar -C "$WORK" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - gpu-kit | gzip -n >"$WORK/gpu-kit.tar.gz"
bytes=$(stat -c %s "$WORK/gpu-kit.tar.gz")
limit=$((LIMIT_MIB * 1024 * 1024))
unpacked=$(du -sm "$KIT" | cut -f1)
if [ "$bytes" -gt "$limit" ]; then
  echo "gpu-kit: FAILED: the kit is $((bytes / 1048576)) MiB compressed ($bytes bytes), over the limit of $LIMIT_MIB MiB; its largest files (unpacked $unpacked MiB):" >&2
  (cd "$KIT" && find . -type f -printf '%s %p\n' | sort -rn | head -15 | awk '{printf "  %7.1f MiB  %s\n", $1/1048576, $2}') >&2
  exit 1
fi

rm -rf "$OUT/gpu-kit" "$TARBALL" "$TARBALL.sha256"
mv "$KIT" "$OUT/gpu-kit"
mv "$WORK/gpu-kit.tar.gz" "$TARBALL"
(cd "$OUT" && sha256sum gpu-kit.tar.gz >gpu-kit.tar.gz.sha256)
printf 'gpu-kit: built %s: %.1f MiB (limit %s MiB), unpacked %s MiB in %s: %d files, %d stub libraries, needs glibc >= %s; key %s\n' \
  "$TARBALL" "$(awk -v b="$bytes" 'BEGIN{print b/1048576}')" "$LIMIT_MIB" "$unpacked" "$OUT/gpu-kit" \
  "$(find "$OUT/gpu-kit" -type f | wc -l)" "${#STUB[@]}" "${GLIBC_NEED:-?}" "$KEY"
