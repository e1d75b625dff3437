#!/usr/bin/env bash
# Paired A/B of two gstcapture builds: both run at the same time on the same
# camsim streams, each publishing to its own keys of one local Redis, and
# their CPU is compared round by round. On a noisy (virtual) machine a
# sequential A/B moves ±10 % between runs; the paired ratio of a build
# against itself stays within 1 %, so differences of a few percent show.
#
#   scripts/ab-pair.sh BIN_A BIN_B [cameras=4] [size=1280x720] [seconds=20] [rounds=3]
#
# Extra environment for B only: AB_ENV_B="GOMAXPROCS=1 ...". Both run the
# same configuration (fps 10, BGR), so their load on the machine is the same.
set -euo pipefail
cd "$(dirname "$0")/.."

A=${1:?usage: scripts/ab-pair.sh BIN_A BIN_B [cameras] [size] [seconds] [rounds]}
B=${2:?usage: scripts/ab-pair.sh BIN_A BIN_B [cameras] [size] [seconds] [rounds]}
N=${3:-4}; SIZE=${4:-1280x720}; SECS=${5:-20}; ROUNDS=${6:-3}
[ -x "$A" ] && [ -x "$B" ] || { echo "ab-pair: $A and $B must be executables" >&2; exit 2; }
[ -x bin/camsim ] || { echo "ab-pair: run make build first (bin/camsim)" >&2; exit 2; }

read -r REDIS_PORT RTSP_PORT HTTP_A HTTP_B <<< "$(go run ./scripts/freeport 4 | tr '\n' ' ')"
WORK=$(mktemp -d -t gstcapture-ab.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
pids+=($!)
bin/camsim --listen "127.0.0.1:$RTSP_PORT" --cameras "$N" --codec h264 --size "$SIZE" --fps 25 >"$WORK/camsim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do grep -q "camsim ready" "$WORK/camsim.log" 2>/dev/null && break; sleep 0.2; done
grep -q "camsim ready" "$WORK/camsim.log" || { echo "ab-pair: camsim did not start:" >&2; cat "$WORK/camsim.log" >&2; exit 1; }

config() { # config HTTP_PORT STREAM_PREFIX
  echo "log: {level: warn}"
  echo "http: {listen: \"127.0.0.1:$1\"}"
  echo "redis: {url: \"redis://127.0.0.1:$REDIS_PORT/0\", maxlen: 100, stream: \"$2:{camera_id}\"}"
  echo "defaults: {fps: 10, format: BGR}"
  echo "cameras:"
  for i in $(seq 1 "$N"); do echo "  - {id: cam$i, url: \"rtsp://127.0.0.1:$RTSP_PORT/cam$i\", codec: h264}"; done
}
config "$HTTP_A" a >"$WORK/a.yaml"
config "$HTTP_B" b >"$WORK/b.yaml"

"$A" run --config "$WORK/a.yaml" >"$WORK/a.log" 2>&1 &
PA=$!; pids+=("$PA")
# shellcheck disable=SC2086 # AB_ENV_B is a list of VAR=value words
env ${AB_ENV_B:-} "$B" run --config "$WORK/b.yaml" >"$WORK/b.log" 2>&1 &
PB=$!; pids+=("$PB")
sleep 8

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
published() { curl -s "127.0.0.1:$1/metrics" | awk '/^rtsp_frames_published_total/{s+=$2} END{print s+0}'; }
echo "ab-pair: A=$A B=$B${AB_ENV_B:+ ($AB_ENV_B)}, $N x $SIZE, $ROUNDS rounds of ${SECS}s"
ta=0; tb=0
for r in $(seq 1 "$ROUNDS"); do
  a0=$(ticks "$PA"); b0=$(ticks "$PB")
  sleep "$SECS"
  a1=$(ticks "$PA"); b1=$(ticks "$PB")
  awk -v r="$r" -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v s="$SECS" \
    'BEGIN{printf "round %d: A %.1f%% B %.1f%% of a core, B/A %.3f\n", r, a/s, b/s, b/a}'
  ta=$((ta + a1 - a0)); tb=$((tb + b1 - b0))
done
awk -v a="$ta" -v b="$tb" -v s=$((SECS * ROUNDS)) -v ra="$(awk '/VmRSS/{print $2}' "/proc/$PA/status")" \
  -v rb="$(awk '/VmRSS/{print $2}' "/proc/$PB/status")" -v pa="$(published "$HTTP_A")" -v pb="$(published "$HTTP_B")" \
  'BEGIN{printf "total: A %.1f%% B %.1f%% of a core, B/A %.3f; RSS A %.1f MB B %.1f MB; published A %d B %d\n", a/s, b/s, b/a, ra/1024, rb/1024, pa, pb}'
