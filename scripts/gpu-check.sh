#!/usr/bin/env bash
# gpu-check.sh: gstcapture's GPU check. Runs from the unpacked GPU check
# kit (scripts/gpu-kit.sh builds it; docs/gpu-kit.md), on a machine with
# an NVIDIA driver and nothing of GStreamer, or with --cpu-only anywhere.
#
#   gpu-kit/gpu-check.sh [--cpu-only | --gpu] [--out FILE] [--cameras N]
#       [--codecs "h264 h265"] [--window S] [--warmup S] [--size WxH]
#       [--camera-fps N] [--fps N] [--deadline S] [--keep]
#
# 1. probe: host, glibc, nvidia-smi, the driver's libcuda/libnvcuvid,
#    gst-inspect of nvh264dec/nvh265dec/nvjpegenc, `gstcapture probe` and
#    the pipeline `gstcapture render` gives for decoder gpu and cpu; the
#    kit's clips decoded with avdec and (GPU) with nvdec, compared frame by
#    frame (gpucheck rawdiff).
# 2. per codec: camsim serves N cameras; gstcapture captures them with
#    decoder gpu, then cpu, for a window each: fps per camera, gstcapture's
#    CPU per camera (/proc/PID/stat), drops, the decoder in use. Then the
#    correctness check: one camera at the camera's own rate (every frame)
#    with each decoder, each GPU frame paired with the CPU frame of the same
#    picture and compared (gpucheck compare: MAD per byte, PSNR).
# 3. fallback: decoder auto with nvcodec unusable (CUDA_VISIBLE_DEVICES=-1,
#    and the plugin left out of the path): probe chooses avdec, decoder gpu
#    is refused, frames flow through avdec.
# Every library gstcapture, camsim and redis-server map is checked to come
# from the kit (or glibc, or the NVIDIA driver).
#
# Without a usable GPU (none found, or --cpu-only) the GPU half is skipped
# and the report says why; the correctness check then compares two CPU
# captures (a self-check of the method). Exit 0 when every check that ran
# passed, 1 when one failed, 2 on a bad command line.
#
# The report goes to --out FILE, else to $OUT (a directory: its
# gpu-check-report.txt, with the logs in gpu-check-logs.tar.gz; else the
# file), else ./gpu-check-report.txt, and is printed as it is written.
# Lines starting with RESULT are key=value fields for programs.
# Environment: GPU_CHECK_CAMERAS, GPU_CHECK_CODECS, GPU_CHECK_WINDOW,
# GPU_CHECK_WARMUP, GPU_CHECK_DEADLINE set the defaults of the flags.
set -euo pipefail

KIT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ ! -f "$KIT/MANIFEST" ] || [ ! -x "$KIT/run" ]; then
  echo "gpu-check: $KIT is not an unpacked GPU check kit (no MANIFEST or run); build one with scripts/gpu-kit.sh and run bin/gpu-kit/gpu-check.sh" >&2
  exit 2
fi

MODE=auto
CAMERAS=${GPU_CHECK_CAMERAS:-8}
CODECS=${GPU_CHECK_CODECS:-h264 h265}
WINDOW=${GPU_CHECK_WINDOW:-30}
WARMUP=${GPU_CHECK_WARMUP:-6}
SIZE=1280x720
CAMERA_FPS=25
FPS=10
DEADLINE=${GPU_CHECK_DEADLINE:-470}
KEEP=0
REPORT=""
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --cpu-only) MODE="cpu-only"; shift ;;
    --gpu) MODE=gpu; shift ;;
    --out) REPORT=${2:?"gpu-check: --out needs a file"}; shift 2 ;;
    --cameras) CAMERAS=${2:?}; shift 2 ;;
    --codecs) CODECS=${2:?}; shift 2 ;;
    --window) WINDOW=${2:?}; shift 2 ;;
    --warmup) WARMUP=${2:?}; shift 2 ;;
    --size) SIZE=${2:?}; shift 2 ;;
    --camera-fps) CAMERA_FPS=${2:?}; shift 2 ;;
    --fps) FPS=${2:?}; shift 2 ;;
    --deadline) DEADLINE=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (--help lists them)" >&2; exit 2 ;;
  esac
done
isint() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
bad() { echo "gpu-check: $*" >&2; exit 2; }
isint "$CAMERAS" 1 64 || bad "--cameras $CAMERAS: want 1 to 64"
isint "$WINDOW" 2 600 || bad "--window $WINDOW: want 2 to 600 seconds"
isint "$WARMUP" 0 120 || bad "--warmup $WARMUP: want 0 to 120 seconds"
isint "$CAMERA_FPS" 1 60 || bad "--camera-fps $CAMERA_FPS: want 1 to 60"
isint "$FPS" 1 "$CAMERA_FPS" || bad "--fps $FPS: want 1 to --camera-fps ($CAMERA_FPS)"
isint "$DEADLINE" 30 3600 || bad "--deadline $DEADLINE: want 30 to 3600 seconds"
[[ $SIZE =~ ^[0-9]+x[0-9]+$ ]] || bad "--size $SIZE: want WxH"
read -r -a CODEC_LIST <<<"$CODECS"
[ ${#CODEC_LIST[@]} -gt 0 ] || bad "--codecs is empty"
for c in "${CODEC_LIST[@]}"; do [[ $c == h264 || $c == h265 ]] || bad "--codecs: $c: want h264 and/or h265"; done

if [ -z "$REPORT" ]; then
  if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
    REPORT=$OUT/gpu-check-report.txt
  else
    REPORT=${OUT:-$PWD/gpu-check-report.txt}
  fi
fi
: >"$REPORT" || bad "cannot write the report $REPORT"
REPORT=$(cd "$(dirname "$REPORT")" && pwd)/$(basename "$REPORT")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
PIDS=()
WATCHDOG=""
FAILS=0
START=$(date +%s)

say() { printf '%s\n' "$*" | tee -a "$REPORT"; }
result() { say "RESULT $*"; }
failed() { FAILS=$((FAILS + 1)); say "FAIL: $*"; }
section() { say ""; say "== $* ($(($(date +%s) - START)) s)"; }
# logtail FILE: the end of a log, into the report, indented.
logtail() { [ -s "$1" ] && tail -n "${2:-15}" "$1" | sed 's/^/    | /' | tee -a "$REPORT"; return 0; }
# nap S: sleep, interruptible by the watchdog's signal.
nap() { sleep "$1" >/dev/null 2>&1 & wait $! || true; }
manifest() { sed -n "s/^$1: //p" "$KIT/MANIFEST"; }
now() { date +%s.%N; }
# ticks PID: utime+stime in clock ticks (fields 14 and 15 of stat, counted
# after the command name, which may hold spaces).
ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
GPUCHECK=$KIT/bin/gpucheck

cleanup() {
  local rc=$?
  [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ -n "${OUT:-}" ] && [ -d "$OUT" ] && [ "$(dirname "$REPORT")" = "$(cd "$OUT" && pwd)" ]; then
    (cd "$WORK" && find . -maxdepth 1 -name '*.log' -print0 | tar --null -czf "$OUT/gpu-check-logs.tar.gz" -T - 2>/dev/null) || true
  fi
  if [ "$KEEP" = 1 ]; then echo "gpu-check: work files kept in $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say ""; failed "ABORTED: the check ran past its deadline of $DEADLINE s (--deadline); the report ends here"; exit 1' USR1
trap 'say ""; failed "interrupted"; exit 1' INT TERM

# start NAME CMD...: runs CMD in the background through the kit's wrapper,
# output to $WORK/NAME.log; the pid is in STARTED.
start() {
  local name=$1
  shift
  "$KIT/run" "$@" >"$WORK/$name.log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
}
# stop PID: SIGTERM, then SIGKILL after 10 s.
stop() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
# waitlog FILE PATTERN SECONDS PID
waitlog() {
  local i
  for i in $(seq 1 $(($3 * 5))); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$4" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

GLIBC_RE='^(ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libmvec\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libresolv\.so\.2|libutil\.so\.1|libanl\.so\.1|libnsl\.so\.1|libthread_db\.so\.1|libc_malloc_debug\.so\.0|libnss_[a-z_]+\.so\.2)$'
DRIVER_RE='^(libcuda\.so.*|libnvcuvid\.so.*|libnvidia-.*|lib(EGL|GLX|GLESv1_CM|GLESv2)_nvidia\.so.*)$'
declare -A ISO_KIT=() ISO_GLIBC=() ISO_DRIVER=() ISO_OTHER=()
# isolation PID NAME: sorts the shared objects the process maps.
isolation() {
  local path base
  while read -r path; do
    base=${path##*/}
    if [[ $path == "$KIT"/* ]]; then
      ISO_KIT[$base]=1
    elif [[ $base =~ $GLIBC_RE || $path == */gconv/* ]]; then
      ISO_GLIBC[$base]=1
    elif [[ $base =~ $DRIVER_RE ]]; then
      ISO_DRIVER[$base]=1
    else
      ISO_OTHER["$2: $path"]=1
    fi
  done < <(awk '$6 ~ /\.so/ {print $6}' "/proc/$1/maps" 2>/dev/null | sort -u)
}

# ---- plan --------------------------------------------------------------
CLIP_FRAMES=$((CAMERA_FPS * 4)) # camsim --clip-seconds 4, GOP 2 x fps
NCODEC=${#CODEC_LIST[@]}
estimate() { # DECODERS_PER_CODEC
  echo $((20 + NCODEC * (5 + 10 + $1 * (8 + WARMUP + WINDOW) + 2 * (6 + 2 * CLIP_FRAMES / CAMERA_FPS)) + 2 * 14))
}
PLAN=$(estimate 2)
[ "$MODE" = cpu-only ] && PLAN=$(estimate 1)
if [ "$PLAN" -gt "$DEADLINE" ]; then
  bad "the plan takes about $PLAN s, over the deadline of $DEADLINE s: lower --cameras' time by a shorter --window, fewer --codecs, or raise --deadline"
fi
# The watchdog holds none of our output open (a reader would wait for it),
# and takes its sleep with it when cleanup ends it.
(
  exec </dev/null >/dev/null 2>&1
  sleep "$DEADLINE" &
  s=$!
  trap 'kill $s; exit 0' TERM
  wait $s && kill -USR1 $$
) &
WATCHDOG=$!

say "=== gstcapture GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ)) ==="
say "kit: key $(manifest key), source $(manifest source), $(manifest gstcapture), GStreamer $(manifest gstreamer), built $(manifest built) on $(manifest build_host)"
# shellcheck source=/dev/null
say "host: $(uname -srm), $( (. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown OS}") || echo unknown OS), $(nproc) cores"
say "settings: cameras=$CAMERAS codecs=\"${CODEC_LIST[*]}\" size=$SIZE camera_fps=$CAMERA_FPS capture_fps=$FPS format=BGR transport=tcp warmup=${WARMUP}s window=${WINDOW}s; planned ~${PLAN}s, deadline ${DEADLINE}s"
say "report: $REPORT"

# ---- 1. probe ----------------------------------------------------------
section "1. probe"
host_glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
need_glibc=$(manifest glibc_required)
say "glibc: host ${host_glibc:-unknown}, the kit needs >= $need_glibc (the kit leaves these to the host: $(manifest host_libraries))"
if [ -n "$host_glibc" ] && [ "$(printf '%s\n%s\n' "$need_glibc" "$host_glibc" | sort -V | head -1)" != "$need_glibc" ]; then
  failed "the host's glibc $host_glibc is older than the $need_glibc the kit was built against; build the kit on an older distribution"
  exit 1
fi

GPU_SEEN=""
if command -v nvidia-smi >/dev/null; then
  if smi=$(timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1); then
    while IFS= read -r l; do say "nvidia-smi: $l"; done <<<"$smi"
    [ -n "$smi" ] && GPU_SEEN="nvidia-smi lists $(head -1 <<<"$smi" | cut -d, -f1)"
  else
    say "nvidia-smi: failed: $(head -3 <<<"$smi" | tr '\n' ' ')"
  fi
else
  say "nvidia-smi: not found"
fi
devs=""
for f in /dev/nvidia[0-9]*; do [ -e "$f" ] && devs="$devs$f "; done
say "devices: ${devs:-no /dev/nvidia<N>}"
[ -z "$GPU_SEEN" ] && [ -n "$devs" ] && GPU_SEEN="$devs exist"
host_ld=${LD_LIBRARY_PATH:-}
for lib in libcuda.so.1 libnvcuvid.so.1; do
  found=""
  for d in ${host_ld//:/ } /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib; do
    if [ -e "$d/$lib" ]; then found="$d/$lib"; break; fi
  done
  if [ -z "$found" ] && command -v ldconfig >/dev/null; then
    found=$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l && /x86-64/ {print $NF; exit}')
  fi
  say "driver library $lib: ${found:-not found}"
done

# One registry for everything but the fallback's variants, which need
# their own (nvcodec registers decoders only if it saw a GPU at scan time).
export GPU_KIT_REGISTRY=$WORK/registry.bin
kit() { "$KIT/run" "$@"; }
declare -A HAVE=()
for e in nvh264dec nvh265dec nvjpegenc avdec_h264 avdec_h265; do
  if kit gst-inspect-1.0 --exists "$e" 2>>"$WORK/inspect.log"; then HAVE[$e]=1; say "gst-inspect $e: present"; else say "gst-inspect $e: absent"; fi
done
[ -z "${HAVE[nvjpegenc]:-}" ] && say "  (nvjpegenc came with GStreamer 1.24's nvcodec; this kit's is $(manifest gstreamer))"
say "gstcapture probe:"
kit gstcapture probe 2>&1 | sed 's/^/  /' | tee -a "$REPORT" || true

read -r REDIS_PORT RTSP_PORT HTTP_PORT <<<"$("$GPUCHECK" ports 3 | tr '\n' ' ')"
# config FILE STREAM_PREFIX DECODER FPS CAMERAS RETENTION_S CODEC
config() {
  {
    echo "log: {level: warn}"
    echo "http: {listen: \"127.0.0.1:$HTTP_PORT\"}"
    echo "redis: {url: \"redis://127.0.0.1:$REDIS_PORT/0\", stream: \"$2:{camera_id}\", retention: ${6}s}"
    echo "defaults: {fps: $4, format: BGR, decoder: $3, transport: tcp}"
    echo "cameras:"
    for i in $(seq 1 "$5"); do echo "  - {id: cam$i, url: \"rtsp://127.0.0.1:$RTSP_PORT/cam$i\", codec: $7}"; done
  } >"$1"
}
for d in gpu cpu; do
  config "$WORK/render-$d.yaml" r "$d" "$FPS" 1 2 "${CODEC_LIST[0]}"
  if line=$(kit gstcapture render --config "$WORK/render-$d.yaml" --camera cam1 2>&1); then
    say "gstcapture render, decoder $d: $line"
  else
    say "gstcapture render, decoder $d: refused: $line"
  fi
done

# The mode: GPU when nvcodec registered the decoders of every codec.
GPU_OK=1
for c in "${CODEC_LIST[@]}"; do [ -n "${HAVE[nv${c}dec]:-}" ] || GPU_OK=0; done
GPU_SKIP=""
if [ "$MODE" = cpu-only ]; then
  GPU_SKIP="--cpu-only was given"
elif [ "$GPU_OK" = 0 ]; then
  missing=$(for c in "${CODEC_LIST[@]}"; do [ -n "${HAVE[nv${c}dec]:-}" ] || printf 'nv%sdec ' "$c"; done)
  if [ -n "$GPU_SEEN" ] || [ "$MODE" = gpu ]; then
    GPU_SKIP="nvcodec registered no ${missing% } although ${GPU_SEEN:---gpu was given}"
    failed "$GPU_SKIP; what nvcodec said while GStreamer scanned it:"
    GST_DEBUG=cudaloader:5,nvcodec:5,nvdec:5 GPU_KIT_REGISTRY=$WORK/diag.bin "$KIT/run" gst-inspect-1.0 "$KIT/plugins-nvcodec/libgstnvcodec.so" >"$WORK/nvcodec-diag.log" 2>&1 || true
    grep -aiE 'WARN|ERROR|fail|could not|cannot' "$WORK/nvcodec-diag.log" | sed 's/\x1b\[[0-9;]*m//g' | head -15 | sed 's/^/    | /' | tee -a "$REPORT" || true
  else
    GPU_SKIP="no NVIDIA GPU here (nvidia-smi not found or lists none, no /dev/nvidia<N>), so nvcodec registered no ${missing% }"
  fi
fi
if [ -z "$GPU_SKIP" ]; then
  say "mode: GPU and CPU (nvcodec's decoders are registered)"
  DECODERS=(gpu cpu)
else
  say "mode: CPU only. The GPU half is SKIPPED: $GPU_SKIP"
  DECODERS=(cpu)
fi

# The kit's clips, decoder alone: avdec, and nvdec compared with it.
CLIP_SIZE=$(manifest clip_size)
CLIP_FILE_FRAMES=$(manifest clip_frames)
clip_w=${CLIP_SIZE%x*} clip_h=${CLIP_SIZE#*x}
frame_bytes=$((clip_w * clip_h * 3 / 2))
for c in "${CODEC_LIST[@]}"; do
  for d in "${DECODERS[@]}"; do
    el=avdec_$c
    [ "$d" = gpu ] && el=nv${c}dec
    t0=$(now)
    if ! kit gst-launch-1.0 -q filesrc location="$KIT/clips/clip.$c" ! "${c}parse" ! "$el" ! videoconvert ! video/x-raw,format=I420 ! filesink location="$WORK/$d.$c.i420" >"$WORK/decode-$d-$c.log" 2>&1; then
      failed "decoding the kit's $c clip with $el failed:"
      logtail "$WORK/decode-$d-$c.log"
      continue
    fi
    t1=$(now)
    frames=$(($(stat -c %s "$WORK/$d.$c.i420") / frame_bytes))
    st=pass
    [ "$frames" -eq "$CLIP_FILE_FRAMES" ] || { st=fail; failed "$el decoded $frames frames of the $c clip, not $CLIP_FILE_FRAMES"; }
    result "decode codec=$c decoder=$d element=$el frames=$frames seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') status=$st"
  done
  if [ -f "$WORK/gpu.$c.i420" ] && [ -f "$WORK/cpu.$c.i420" ]; then
    if line=$("$GPUCHECK" rawdiff --size "$CLIP_SIZE" "$WORK/gpu.$c.i420" "$WORK/cpu.$c.i420" 2>&1); then :; else failed "nv${c}dec's frames of the clip are not avdec_$c's: $line"; fi
    result "decode-compare codec=$c $line"
  fi
  rm -f "$WORK"/*."$c".i420
done

# ---- services ----------------------------------------------------------
start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK"
REDIS_PID=$STARTED
waitlog "$WORK/redis.log" "Ready to accept connections" 20 "$REDIS_PID" || { failed "redis-server did not start:"; logtail "$WORK/redis.log"; exit 1; }
isolation "$REDIS_PID" redis-server

# wait_cameras N SECONDS MIN_PUBLISHED: until N cameras have published
# MIN_PUBLISHED frames each.
wait_cameras() {
  local i n
  for i in $(seq 1 $(($2 * 2))); do
    n=$("$GPUCHECK" metrics "http://127.0.0.1:$HTTP_PORT/metrics" 2>/dev/null | awk -v m="$3" '$2 >= m' | wc -l)
    [ "$n" -ge "$1" ] && return 0
    kill -0 "$GST_PID" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}
# capture NAME CONFIG CAMERAS: starts gstcapture, waits until every camera
# publishes; GST_PID.
capture() {
  start "$1" gstcapture run --config "$2"
  GST_PID=$STARTED
  if ! "$GPUCHECK" wait-http "http://127.0.0.1:$HTTP_PORT/healthz" 30 2>>"$WORK/$1.log" || ! wait_cameras "$3" 45 1; then
    failed "$1: gstcapture's cameras did not all publish within 45 s; its log:"
    logtail "$WORK/$1.log"
    stop "$GST_PID"
    return 1
  fi
}

declare -A SUM_FPS=() SUM_CPU=() SUM_STATUS=() SUM_CORR=()
# measure CODEC DECODER: the N-camera window.
measure() {
  local c=$1 d=$2 name=m-$1-$2 m0 m1 t0 t1 g0 g1 cs0 cs1 r0 r1 smi="" expect
  config "$WORK/$name.yaml" "$name" "$d" "$FPS" "$CAMERAS" 2 "$c"
  section "2. capture: $c, decoder $d, cameras=$CAMERAS"
  capture "$name" "$WORK/$name.yaml" "$CAMERAS" || { SUM_STATUS[$c-$d]=fail; return 0; }
  nap "$WARMUP"
  m0=$("$GPUCHECK" metrics "http://127.0.0.1:$HTTP_PORT/metrics")
  t0=$(now) g0=$(ticks "$GST_PID") cs0=$(ticks "$CAMSIM_PID") r0=$(ticks "$REDIS_PID")
  nap "$((WINDOW / 2))"
  isolation "$GST_PID" gstcapture
  if [ "$d" = gpu ] && command -v nvidia-smi >/dev/null; then
    smi=$(timeout 10 nvidia-smi --query-gpu=utilization.gpu,utilization.decoder,memory.used --format=csv,noheader,nounits 2>/dev/null | head -1 | tr -d ' ' || true)
  fi
  nap "$((WINDOW - WINDOW / 2))"
  m1=$("$GPUCHECK" metrics "http://127.0.0.1:$HTTP_PORT/metrics")
  t1=$(now) g1=$(ticks "$GST_PID") cs1=$(ticks "$CAMSIM_PID") r1=$(ticks "$REDIS_PID")
  stop "$GST_PID"
  "$GPUCHECK" del --redis "127.0.0.1:$REDIS_PORT" "$name:*" >/dev/null || true
  expect='^avdec_'
  [ "$d" = gpu ] && expect='^nvh26[45]dec$'
  local out
  out=$(awk -v dt="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" -v fps="$FPS" -v expect="$expect" -v c="$c" -v d="$d" -v n="$CAMERAS" '
    FNR == NR { p0[$1] = $2; d0[$1] = $4; next }
    { f = ($2 - p0[$1]) / dt; dr = $4 - d0[$1]; ok = (f >= 0.9 * fps && $6 ~ expect) ? "pass" : "fail"
      if (ok == "fail") bad++
      printf "RESULT camera codec=%s decoder=%s id=%s element=%s fps=%.2f dropped=%d status=%s\n", c, d, $1, $6, f, dr, ok
      s += f; if (min == "" || f < min) min = f; cams++ }
    END { if (cams < n) bad += n - cams; printf "SUM %d %.2f %.2f %d\n", cams, (cams ? s / cams : 0), min + 0, bad + 0 }' \
    <(printf '%s\n' "$m0") <(printf '%s\n' "$m1"))
  say "camera  element      fps    dropped"
  grep '^RESULT camera' <<<"$out" | sed -E 's/.* id=([^ ]+) element=([^ ]+) fps=([^ ]+) dropped=([^ ]+) status=([^ ]+)/\1 \2 \3 \4 \5/' |
    while read -r id el f dr ok; do say "$(printf '%-7s %-12s %6s %8s  %s' "$id" "$el" "$f" "$dr" "$ok")"; done
  grep '^RESULT camera' <<<"$out" | while IFS= read -r l; do say "$l"; done
  local mean min bad cpu
  read -r _ _ mean min bad < <(grep '^SUM' <<<"$out")
  cpu=$(awk -v g="$((g1 - g0))" -v hz="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", 100 * g / hz / (b - a)}')
  local percam camsim redis
  percam=$(awk -v c="$cpu" -v n="$CAMERAS" 'BEGIN{printf "%.2f", c / n}')
  camsim=$(awk -v g="$((cs1 - cs0))" -v hz="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", 100 * g / hz / (b - a)}')
  redis=$(awk -v g="$((r1 - r0))" -v hz="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", 100 * g / hz / (b - a)}')
  say "gstcapture CPU: $cpu % of one core = $percam % per camera (camsim $camsim %, redis-server $redis %, not counted)"
  [ -n "$smi" ] && say "nvidia-smi mid-window: GPU $(cut -d, -f1 <<<"$smi") %, decoder $(cut -d, -f2 <<<"$smi") %, memory $(cut -d, -f3 <<<"$smi") MiB"
  local st=pass
  if [ "$bad" -gt 0 ]; then
    st=fail
    failed "$c decoder $d: $bad of $CAMERAS cameras below 90% of $FPS fps or not on the $d decoder (or missing); gstcapture's log:"
    logtail "$WORK/$name.log"
  fi
  result "capture codec=$c decoder=$d cameras=$CAMERAS fps_mean=$mean fps_min=$min cpu_pct=$cpu cpu_per_camera_pct=$percam camsim_cpu_pct=$camsim redis_cpu_pct=$redis${smi:+ nvidia_smi=$smi} status=$st"
  SUM_FPS[$c-$d]="$mean (min $min)" SUM_CPU[$c-$d]=$percam SUM_STATUS[$c-$d]=$st
}

# reference CODEC DECODER PREFIX FRAMES: one camera, every frame, until
# FRAMES are published.
reference() {
  local c=$1 d=$2 name=$3 expect=avdec_$1
  [ "$d" = gpu ] && expect=nv${c}dec
  config "$WORK/$name.yaml" "$name" "$d" "$CAMERA_FPS" 1 $((2 * CLIP_FRAMES / CAMERA_FPS + 2)) "$c"
  capture "$name" "$WORK/$name.yaml" 1 || return 1
  if ! wait_cameras 1 $(($4 / CAMERA_FPS + 20)) "$4"; then
    failed "$name: fewer than $4 frames published; gstcapture's log:"
    logtail "$WORK/$name.log"
    stop "$GST_PID"
    return 1
  fi
  local el
  el=$("$GPUCHECK" metrics "http://127.0.0.1:$HTTP_PORT/metrics" | awk '$1 == "cam1" {print $6}')
  stop "$GST_PID"
  [ "$el" = "$expect" ] || { failed "$name: cam1 ran $el, not $expect"; return 1; }
}

# correctness CODEC: the GPU's pictures against the CPU's.
correctness() {
  local c=$1 test=gpu reffr=$((2 * CLIP_FRAMES)) line st
  section "2. correctness: $c, one camera, every frame ($CAMERA_FPS fps)"
  [ -n "$GPU_SKIP" ] && test=cpu2
  local tdec=${test%2}
  reference "$c" cpu "ck-$c-cpu" $((reffr + 5)) || { SUM_CORR[$c]=fail; return 0; }
  reference "$c" "$tdec" "ck-$c-$test" 40 || { SUM_CORR[$c]=fail; return 0; }
  if line=$("$GPUCHECK" compare --redis "127.0.0.1:$REDIS_PORT" --ref "ck-$c-cpu:cam1" --test "ck-$c-$test:cam1" --ref-count "$reffr" --test-count 30 2>&1); then
    st=pass
  else
    st=fail
  fi
  "$GPUCHECK" del --redis "127.0.0.1:$REDIS_PORT" "ck-$c-*" >/dev/null || true
  say "method: the newest 30 frames of the $tdec capture, each paired with the closest of the newest $reffr frames (two loops of camsim's clip) of the CPU capture; mean absolute difference per byte (MAD) and PSNR of the BGR pictures; frames one clip position apart differ by adjacent_mad"
  if [ -z "$GPU_SKIP" ]; then
    [ "$st" = pass ] || failed "$c: the GPU decoder's pictures differ from the CPU decoder's: $line"
    result "correctness codec=$c $line"
    SUM_CORR[$c]=$st
  else
    result "correctness codec=$c status=skipped reason=\"GPU half skipped: $GPU_SKIP\""
    [ "$st" = pass ] || failed "$c: two CPU captures of the same clip differ (the method's self-check): $line"
    result "selfcheck codec=$c decoder=cpu $line"
    SUM_CORR[$c]="skipped (self-check cpu vs cpu: $st)"
  fi
}

# fallback CODEC: decoder auto with nvcodec unusable.
declare -A SUM_FALL=()
fallback() {
  local c=$1 variants v name envs probe_out choice refused el fps st
  if [ -z "$GPU_SKIP" ]; then
    variants=("gpu-hidden CUDA_VISIBLE_DEVICES=-1" "no-nvcodec GPU_KIT_NO_NVCODEC=1")
  else
    variants=("no-gpu" "no-nvcodec GPU_KIT_NO_NVCODEC=1")
  fi
  for v in "${variants[@]}"; do
    read -r name envs <<<"$v"
    section "3. fallback: $c, decoder auto, $name${envs:+ ($envs)}"
    local venv=(env "GPU_KIT_REGISTRY=$WORK/registry-$name.bin")
    [ -n "$envs" ] && venv+=("$envs")
    st=pass
    probe_out=$("${venv[@]}" "$KIT/run" gstcapture probe 2>&1 || true)
    choice=$(sed -n "s/^$c: .*-> using //p" <<<"$probe_out")
    say "gstcapture probe: $(grep "^$c:" <<<"$probe_out" || echo "$probe_out")"
    [[ $choice == avdec_$c ]] || { st=fail; failed "$name: probe chose '${choice:-nothing}' for $c, not avdec_$c"; }
    config "$WORK/fb-$name-gpu.yaml" "fb-$name" gpu "$FPS" 1 2 "$c"
    if refused=$("${venv[@]}" "$KIT/run" gstcapture render --config "$WORK/fb-$name-gpu.yaml" --camera cam1 2>&1); then
      st=fail
      failed "$name: decoder gpu was not refused with nvcodec unusable: $refused"
      refused=no
    else
      say "decoder gpu refused: $refused"
      refused=yes
    fi
    config "$WORK/fb-$name.yaml" "fb-$name" auto "$FPS" 1 2 "$c"
    # env, then run, exec: $! is gstcapture.
    "${venv[@]}" "$KIT/run" gstcapture run --config "$WORK/fb-$name.yaml" >"$WORK/fb-$name.log" 2>&1 &
    GST_PID=$!
    PIDS+=("$GST_PID")
    el="" fps=0
    if "$GPUCHECK" wait-http "http://127.0.0.1:$HTTP_PORT/healthz" 30 2>>"$WORK/fb-$name.log" && wait_cameras 1 30 1; then
      local p0 p1 t0 t1
      p0=$("$GPUCHECK" metrics "http://127.0.0.1:$HTTP_PORT/metrics" | awk '$1 == "cam1" {print $2}')
      t0=$(now)
      nap 3
      read -r p1 el < <("$GPUCHECK" metrics "http://127.0.0.1:$HTTP_PORT/metrics" | awk '$1 == "cam1" {print $2, $6}')
      t1=$(now)
      fps=$(awk -v a="$p0" -v b="$p1" -v s="$t0" -v e="$t1" 'BEGIN{printf "%.2f", (b - a) / (e - s)}')
      isolation "$GST_PID" gstcapture
    fi
    stop "$GST_PID"
    "$GPUCHECK" del --redis "127.0.0.1:$REDIS_PORT" "fb-$name:*" >/dev/null || true
    say "capture with decoder auto: decoder ${el:-none}, $fps fps"
    if [[ $el != avdec_$c ]] || awk -v f="$fps" -v w="$FPS" 'BEGIN{exit !(f < 0.8 * w)}'; then
      st=fail
      failed "$name: frames did not flow through avdec_$c (decoder ${el:-none}, $fps fps of $FPS); gstcapture's log:"
      logtail "$WORK/fb-$name.log"
    fi
    result "fallback codec=$c variant=$name probe_choice=${choice:-none} gpu_refused=$refused decoder=${el:-none} fps=$fps status=$st"
    SUM_FALL[$name]=$st
  done
}

for c in "${CODEC_LIST[@]}"; do
  section "camsim: cameras=$CAMERAS, $c, $SIZE at $CAMERA_FPS fps"
  start "camsim-$c" camsim --listen "127.0.0.1:$RTSP_PORT" --cameras "$CAMERAS" --codec "$c" --size "$SIZE" --fps "$CAMERA_FPS" --clip-seconds 4
  CAMSIM_PID=$STARTED
  if ! waitlog "$WORK/camsim-$c.log" "camsim ready" 120 "$CAMSIM_PID"; then
    failed "camsim did not start for $c:"
    logtail "$WORK/camsim-$c.log"
    stop "$CAMSIM_PID"
    continue
  fi
  say "$(grep -m1 'clip encoded' "$WORK/camsim-$c.log" | sed 's/^time=[^ ]* //; s/ caps=.*//')"
  isolation "$CAMSIM_PID" camsim
  for d in "${DECODERS[@]}"; do measure "$c" "$d"; done
  correctness "$c"
  [ "$c" = "${CODEC_LIST[0]}" ] && fallback "$c"
  stop "$CAMSIM_PID"
done

# ---- isolation and summary ----------------------------------------------
section "isolation: the libraries gstcapture, camsim and redis-server mapped"
say "from the kit: ${#ISO_KIT[@]}; glibc, from the host: $(printf '%s\n' "${!ISO_GLIBC[@]}" | sort | tr '\n' ' ')"
say "NVIDIA driver, from the host: $( [ ${#ISO_DRIVER[@]} -gt 0 ] && printf '%s\n' "${!ISO_DRIVER[@]}" | sort | tr '\n' ' ' || echo none)"
if [ ${#ISO_OTHER[@]} -gt 0 ]; then
  failed "libraries from outside the kit: $(printf '%s\n' "${!ISO_OTHER[@]}" | sort | tr '\n' ';')"
  result "isolation status=fail kit=${#ISO_KIT[@]} other=${#ISO_OTHER[@]}"
else
  result "isolation status=pass kit=${#ISO_KIT[@]} glibc=${#ISO_GLIBC[@]} driver=${#ISO_DRIVER[@]} other=0"
fi

section "summary"
say "$(printf '%-6s %-8s %-22s %-16s %s' codec decoder 'fps per camera' 'CPU %/camera' status)"
for c in "${CODEC_LIST[@]}"; do
  for d in "${DECODERS[@]}"; do
    say "$(printf '%-6s %-8s %-22s %-16s %s' "$c" "$d" "${SUM_FPS[$c-$d]:--}" "${SUM_CPU[$c-$d]:--}" "${SUM_STATUS[$c-$d]:--}")"
  done
  if [ -n "${SUM_CPU[$c-gpu]:-}" ] && [ -n "${SUM_CPU[$c-cpu]:-}" ]; then
    say "$c: gstcapture's CPU with the GPU decoder is $(awk -v g="${SUM_CPU[$c-gpu]}" -v c="${SUM_CPU[$c-cpu]}" 'BEGIN{ if (c > 0) printf "%.2f", g / c; else print "-" }') x that with the CPU decoder"
  fi
  say "$c correctness: ${SUM_CORR[$c]:--}"
done
for v in "${!SUM_FALL[@]}"; do say "fallback $v: ${SUM_FALL[$v]}"; done
if [ -n "$GPU_SKIP" ]; then
  say "GPU half: SKIPPED: $GPU_SKIP"
  result "gpu status=skipped reason=\"$GPU_SKIP\""
else
  result "gpu status=ran"
fi
say "took $(($(date +%s) - START)) s"
if [ "$FAILS" -gt 0 ]; then
  say "overall: FAIL ($FAILS failed checks, each a FAIL: line above)"
  result "overall status=fail failures=$FAILS"
  exit 1
fi
say "overall: PASS$( [ -n "$GPU_SKIP" ] && echo " (CPU half only)")"
result "overall status=pass"
