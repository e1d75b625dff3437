#!/usr/bin/env bash
# make demo: a local Redis, camsim with 4 simulated cameras and gstcapture
# on configs/demo.yaml. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

read -r REDIS_PORT RTSP_PORT HTTP_PORT CONTROL_PORT <<< "$(go run ./scripts/freeport 4 | tr '\n' ' ')"
WORK=$(mktemp -d -t gstcapture-demo.XXXXXX)
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup INT TERM EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
pids+=($!)
bin/camsim --listen "127.0.0.1:$RTSP_PORT" --cameras 4 --codec h264 --size 1280x720 --fps 25 \
  --control "127.0.0.1:$CONTROL_PORT" >"$WORK/camsim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "camsim ready" "$WORK/camsim.log" 2>/dev/null && break; sleep 0.2; done
grep -q "camsim ready" "$WORK/camsim.log" || { echo "demo: camsim did not start:"; cat "$WORK/camsim.log"; exit 1; }

export CAMSIM_ADDR="127.0.0.1:$RTSP_PORT"
export GSTCAPTURE_REDIS__URL="redis://127.0.0.1:$REDIS_PORT/0"
export GSTCAPTURE_HTTP__LISTEN="127.0.0.1:$HTTP_PORT"
# The API wants a bearer token (http.auth): a read token for curl and an
# admin token for the console's camera changes.
TOKEN="demo-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
ADMIN_TOKEN="demo-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
printf 'read %s\nadmin %s\n' "$TOKEN" "$ADMIN_TOKEN" >"$WORK/tokens"
chmod 600 "$WORK/tokens"
export GSTCAPTURE_HTTP__AUTH__TOKENS_FILE="$WORK/tokens"
bin/gstcapture run --config configs/demo.yaml 2>"$WORK/gstcapture.log" &
pids+=($!)

cat <<MSG

gstcapture demo is running (logs in $WORK).

  Cameras (camsim):   rtsp://127.0.0.1:$RTSP_PORT/cam1 .. cam4   (control: http://127.0.0.1:$CONTROL_PORT/status)
  Console:            http://127.0.0.1:$HTTP_PORT/   (sign in with $ADMIN_TOKEN, or the read token below to only look)
  Health:             curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$HTTP_PORT/health
  Readiness:          curl -si http://127.0.0.1:$HTTP_PORT/readyz
  Frames in Redis:    redis-cli -p $REDIS_PORT XLEN frames:cam1
  Newest entry:       redis-cli -p $REDIS_PORT --no-raw XREVRANGE frames:cam1 + - COUNT 1 | cut -c1-2000 | awk 'skip { sub(/".*/, "(pixels omitted, see size_bytes)"); skip = 0 } /\) "data"\$/ { skip = 1 } { print }'
  Pipelines:          bin/gstcapture render --config configs/demo.yaml
  Service log:        tail -f $WORK/gstcapture.log

Press Ctrl-C to stop.
MSG
wait "${pids[2]}"
