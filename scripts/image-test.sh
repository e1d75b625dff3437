#!/usr/bin/env bash
# make image-test: builds the image (scripts/image.sh, cached by inputs) and
# checks it without a Docker engine, with buildah:
#
#   size within budget, app layers reported apart from the base image;
#   image config: non-root USER, HEALTHCHECK, STOPSIGNAL, OCI labels;
#   no secrets: no .env file in the filesystem, none in the build history;
#   `id -u` inside is not 0;
#   `gstcapture probe` finds a decoder for h264 and h265;
#   gst-launch-1.0 finds the swsconvert plugin file (to run `render` lines);
#   a short capture against bin/camsim (H.264 with a password from the
#   environment, and H.265) into a redis-server on this host: entries arrive;
#   time from process start to /readyz 200;
#   `gstcapture healthcheck` 0 while healthy, non-zero when not (readiness
#   with Redis stopped; liveness once the process is gone); SIGTERM stops it.
#
# Every check prints FAIL and the script exits 1 at the first failure.
# Env: IMAGE_TARGETS ("slim"; "slim full" tests both), SIZE_BUDGET_MB (150),
#      STORAGE_DRIVER (vfs).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=${IMAGE_TARGETS:-slim}
BUDGET_MB=${SIZE_BUDGET_MB:-150}
SD=${STORAGE_DRIVER:-vfs}
BASE=docker.io/library/debian:bookworm-slim
BUILDAH=(buildah --storage-driver "$SD")

say() { echo "image-test: $*"; }
fail() { echo "image-test: FAIL: $*" >&2; exit 1; }
pass() { echo "image-test: ok   $*"; }
trap 'echo "image-test: FAIL: line $LINENO: $BASH_COMMAND exited $?" >&2' ERR

WORK=$(mktemp -d -t gstcapture-image-test.XXXXXX)
chmod 755 "$WORK"
pids=()
containers=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for c in "${containers[@]}"; do "${BUILDAH[@]}" rm "$c" >/dev/null 2>&1 || true; done
  if [ "$rc" -ne 0 ]; then
    for f in "$WORK"/*.log; do
      [ -f "$f" ] || continue
      echo "----- $(basename "$f") (last 30 lines)" >&2
      tail -30 "$f" >&2
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -x bin/camsim ] || fail "bin/camsim missing: run make build first"
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || fail "redis-server/redis-cli missing (scripts/deps.sh)"

mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1000000}'; }

# run_in [OPTIONS] CONTAINER -- CMD...: buildah run as the image's USER,
# host network (camsim and redis-server listen on this host's loopback).
run_in() {
  "${BUILDAH[@]}" run --isolation chroot --network host "$@"
}

# wait_http URL CODE SECONDS: polls until URL answers CODE.
wait_http() {
  local url=$1 want=$2 deadline=$(($(date +%s) + $3))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)" = "$want" ] && return 0
    sleep 0.1
  done
  return 1
}

# descendant PID NAME: the first process called NAME below PID.
descendant() {
  local pid=$1 name=$2 child
  for child in $(pgrep -P "$pid" || true); do
    if [ "$(cat /proc/"$child"/comm 2>/dev/null)" = "$name" ]; then echo "$child"; return 0; fi
    descendant "$child" "$name" && return 0
  done
  return 1
}

test_image() {
  local target=$1 img c

  say "== $target: building (cached when inputs are unchanged)"
  img=$(scripts/image.sh --target "$target" | tail -1)
  [ -n "$img" ] || fail "$target: scripts/image.sh printed no image name"

  # --- size
  local total base app
  total=$(podman --storage-driver "$SD" image inspect --format '{{.Size}}' "$img")
  base=$(podman --storage-driver "$SD" image inspect --format '{{.Size}}' "$BASE")
  app=$((total - base))
  say "$target: size $(mb "$total") MB = base $(mb "$base") MB (debian:bookworm-slim) + app layers $(mb "$app") MB"
  podman --storage-driver "$SD" history --format '{{.Size}}\t{{.CreatedBy}}' "$img" |
    awk -F'\t' '$1 != "0B" {printf "image-test:        %9s  %s\n", $1, substr($2, 1, 100)}' | head -20
  if [ "$target" = slim ]; then
    [ "$total" -le $((BUDGET_MB * 1000000)) ] || fail "slim: $(mb "$total") MB exceeds the budget of $BUDGET_MB MB"
    pass "slim: within the $BUDGET_MB MB budget"
  fi

  # --- image config
  local user hc stop labels
  user=$("${BUILDAH[@]}" inspect --type image --format '{{.Docker.Config.User}}' "$img")
  hc=$("${BUILDAH[@]}" inspect --type image --format '{{if .Docker.Config.Healthcheck}}{{.Docker.Config.Healthcheck.Test}}{{end}}' "$img")
  stop=$("${BUILDAH[@]}" inspect --type image --format '{{.Docker.Config.StopSignal}}' "$img")
  labels=$("${BUILDAH[@]}" inspect --type image --format '{{range $k, $v := .Docker.Config.Labels}}{{$k}}={{$v}} {{end}}' "$img")
  case $user in "" | 0 | 0:* | root | root:*) fail "$target: image USER is '$user' (root)" ;; esac
  [[ $hc == *"gstcapture healthcheck"* ]] || fail "$target: HEALTHCHECK is '$hc', want gstcapture healthcheck"
  [ "$stop" = SIGTERM ] || fail "$target: STOPSIGNAL is '$stop'"
  for l in title description version revision documentation base.name; do
    [[ $labels == *"org.opencontainers.image.$l="* ]] || fail "$target: label org.opencontainers.image.$l missing"
  done
  pass "$target: USER $user, HEALTHCHECK $hc, STOPSIGNAL $stop, OCI labels"

  # --- no secrets
  if podman --storage-driver "$SD" history --no-trunc --format '{{.CreatedBy}}' "$img" |
    grep -Eiq 'password|secret|token|_KEY='; then
    fail "$target: build history mentions a secret: $(podman --storage-driver "$SD" history --no-trunc --format '{{.CreatedBy}}' "$img" | grep -Ei 'password|secret|token|_KEY=' | head -3)"
  fi
  c=$("${BUILDAH[@]}" from --pull=never "$img")
  containers+=("$c")
  local mnt found
  mnt=$("${BUILDAH[@]}" mount "$c")
  found=$(find "$mnt" -xdev \( -name '.env' -o -name '*.env' -o -name 'id_rsa*' -o -name '*.pem' -path '*private*' \) -print 2>/dev/null | head -5)
  local pkgs
  pkgs=$(ls "$mnt/var/lib/dpkg/status.d" 2>/dev/null | tr '\n' ' ')
  "${BUILDAH[@]}" umount "$c" >/dev/null
  [ -z "$found" ] || fail "$target: secret-looking files in the image: $found"
  pass "$target: no .env or key files, no secrets in the build history"
  for p in gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad libopenh264-7; do
    [[ " $pkgs" == *" $p "* ]] || fail "$target: no dpkg status.d entry for $p (scanners would not see it): $pkgs"
  done
  if [ "$target" = full ]; then
    [[ " $pkgs" == *" gstreamer1.0-libav "* ]] || fail "full: no dpkg status.d entry for gstreamer1.0-libav"
  fi
  pass "$target: dpkg status.d lists the copied packages for scanners ($(echo "$pkgs" | wc -w) packages)"

  # --- user inside
  local uid
  uid=$(run_in "$c" -- id -u)
  [ "$uid" != 0 ] || fail "$target: id -u inside the image is 0"
  pass "$target: id -u = $uid"

  # --- probe
  local probe
  probe=$(run_in -e GST_REGISTRY=/tmp/probe-registry.bin "$c" -- gstcapture probe --json) ||
    fail "$target: gstcapture probe exited non-zero: $probe"
  echo "$probe" | sed 's/^/image-test:        /'
  local want264=openh264dec want265=libde265dec
  if [ "$target" = full ]; then want264=avdec_h264 want265=avdec_h265; fi
  echo "$probe" | grep -q "\"h264\": \"$want264\"" || fail "$target: probe chose no $want264 for h264"
  echo "$probe" | grep -q "\"h265\": \"$want265\"" || fail "$target: probe chose no $want265 for h265"
  pass "$target: probe: h264 -> $want264, h265 -> $want265 (no GPU here; nvh26Xdec would come first)"

  # --- swsconvert for gst-launch-1.0 (what `gstcapture render` prints)
  local conv
  conv=$(run_in -e GST_REGISTRY=/tmp/launch-registry.bin -e GST_PLUGIN_PATH=/usr/local/lib/gstcapture/gst-plugins "$c" -- \
    gst-inspect-1.0 swsconvert 2>&1) || fail "$target: gst-inspect-1.0 finds no swsconvert plugin file: $conv"
  echo "$conv" | grep -q "Filename.*/usr/local/lib/gstcapture/gst-plugins/libgstswsconvert.so" ||
    fail "$target: swsconvert not loaded from the plugin file: $conv"
  pass "$target: gst-launch-1.0 can load swsconvert from /usr/local/lib/gstcapture/gst-plugins"

  # --- capture against camsim and a host redis-server
  local ports redis_port rtsp264 rtsp265 http_port
  mapfile -t ports < <(go run ./scripts/freeport 4)
  [ "${#ports[@]}" = 4 ] || fail "scripts/freeport gave ${#ports[@]} ports, want 4"
  redis_port=${ports[0]} rtsp264=${ports[1]} rtsp265=${ports[2]} http_port=${ports[3]}
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    >"$WORK/redis.log" 2>&1 &
  local redis_pid=$!
  pids+=("$redis_pid")
  bin/camsim --listen "127.0.0.1:$rtsp264" --cameras 1 --codec h264 --size 640x360 --fps 15 \
    --user viewer --password 's3cr$t pw' >"$WORK/camsim-h264.log" 2>&1 &
  pids+=($!)
  bin/camsim --listen "127.0.0.1:$rtsp265" --cameras 1 --codec h265 --size 640x360 --fps 15 \
    >"$WORK/camsim-h265.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 150); do
    grep -q "camsim ready" "$WORK/camsim-h264.log" && grep -q "camsim ready" "$WORK/camsim-h265.log" && break
    sleep 0.2
  done
  grep -q "camsim ready" "$WORK/camsim-h264.log" || fail "camsim (h264) did not start"
  grep -q "camsim ready" "$WORK/camsim-h265.log" || fail "camsim (h265) did not start"
  for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

  mkdir -p "$WORK/etc"
  cat >"$WORK/etc/cameras.yaml" <<EOF
redis:
  url: redis://127.0.0.1:$redis_port/0
  maxlen: 100
log:
  format: json
defaults:
  fps: 5
  stall_timeout: 5s
cameras:
  - id: cam264
    url: rtsp://viewer:\${CAM264_PASSWORD}@127.0.0.1:$rtsp264/cam1
    codec: h264
  - id: cam265
    url: rtsp://127.0.0.1:$rtsp265/cam1
    codec: h265
health:
  min_ready: 2
EOF
  chmod -R a+rX "$WORK/etc"

  local t0 t_first t_ready run_pid gst_pid
  t0=$(date +%s.%N)
  run_in -v "$WORK/etc:/etc/gstcapture:ro" \
    -e "GSTCAPTURE_HTTP__LISTEN=127.0.0.1:$http_port" -e 'CAM264_PASSWORD=s3cr$t pw' \
    "$c" -- gstcapture run --config /etc/gstcapture/cameras.yaml >"$WORK/gstcapture-$target.log" 2>&1 &
  run_pid=$!
  pids+=("$run_pid")
  wait_http "http://127.0.0.1:$http_port/readyz" 200 60 ||
    fail "$target: /readyz not 200 within 60 s: $(curl -s "http://127.0.0.1:$http_port/health" | head -c 600)"
  t_ready=$(date +%s.%N)
  # The service's first log line is the closest we have to its exec time.
  t_first=$(head -1 "$WORK/gstcapture-$target.log" |
    sed -n 's/.*"time":"\([^"]*\)".*/\1/p' | xargs -r -I{} date -d {} +%s.%N)
  say "$target: time to ready: $(awk -v a="$t0" -v b="$t_ready" 'BEGIN {printf "%.2f", b - a}') s from 'buildah run'$(
    [ -n "$t_first" ] && awk -v a="$t_first" -v b="$t_ready" 'BEGIN {printf ", %.2f s from the first log line", b - a}')"

  local n264=0 n265=0
  for _ in $(seq 1 100); do
    n264=$(redis-cli -p "$redis_port" XLEN frames:cam264)
    n265=$(redis-cli -p "$redis_port" XLEN frames:cam265)
    [ "$n264" -ge 10 ] && [ "$n265" -ge 10 ] && break
    sleep 0.2
  done
  [ "$n264" -ge 10 ] || fail "$target: only $n264 entries in frames:cam264 (H.264)"
  [ "$n265" -ge 10 ] || fail "$target: only $n265 entries in frames:cam265 (H.265)"
  grep -q 's3cr\$t pw' "$WORK/gstcapture-$target.log" && fail "$target: the camera password appears in the log"
  pass "$target: entries in Redis: frames:cam264 $n264 (H.264), frames:cam265 $n265 (H.265)"

  # --- healthcheck, as the HEALTHCHECK runs it (URL from GSTCAPTURE_HTTP__LISTEN)
  run_in -e "GSTCAPTURE_HTTP__LISTEN=127.0.0.1:$http_port" "$c" -- gstcapture healthcheck ||
    fail "$target: gstcapture healthcheck exited non-zero while healthy"
  pass "$target: healthcheck 0 while healthy"

  kill -TERM "$redis_pid"
  wait "$redis_pid" 2>/dev/null || true
  wait_http "http://127.0.0.1:$http_port/readyz" 503 20 || fail "$target: /readyz still 200 with Redis stopped"
  if run_in "$c" -- gstcapture healthcheck --url "http://127.0.0.1:$http_port/readyz" 2>"$WORK/hc.err"; then
    fail "$target: healthcheck --url .../readyz exited 0 with Redis stopped"
  fi
  pass "$target: healthcheck --url /readyz non-zero with Redis stopped ($(tr -s '\n ' ' ' <"$WORK/hc.err" | head -c 120))"

  gst_pid=$(descendant "$run_pid" gstcapture) || fail "$target: cannot find the gstcapture process under buildah run ($run_pid)"
  kill -TERM "$gst_pid"
  local stopped=0
  for _ in $(seq 1 150); do
    kill -0 "$gst_pid" 2>/dev/null || { stopped=1; break; }
    sleep 0.1
  done
  [ "$stopped" = 1 ] || fail "$target: gstcapture still running 15 s after SIGTERM"
  wait "$run_pid" 2>/dev/null || true
  grep -q "gstcapture stopped" "$WORK/gstcapture-$target.log" || fail "$target: no 'gstcapture stopped' after SIGTERM"
  pass "$target: SIGTERM: stopped cleanly"
  if run_in -e "GSTCAPTURE_HTTP__LISTEN=127.0.0.1:$http_port" "$c" -- gstcapture healthcheck 2>/dev/null; then
    fail "$target: healthcheck exited 0 with the service gone"
  fi
  pass "$target: healthcheck non-zero with the service gone"

  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
  "${BUILDAH[@]}" rm "$c" >/dev/null
  containers=()
}

for t in $TARGETS; do
  test_image "$t"
done
say "all checks passed ($TARGETS)"
