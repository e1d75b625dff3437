package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/testenv"
)

const captureConfig = `
redis:
  url: %s
  maxlen: 100000
  retention: 1h
defaults:
  fps: 10
  format: BGR
  stall_timeout: 5s
  reconnect: {initial: 500ms, max: 5s}
cameras:
  - id: h264cam
    url: rtsp://%s/cam1
    codec: h264
  - id: h265cam
    url: rtsp://%s/cam1
    codec: h265
  - id: deadcam
    url: rtsp://127.0.0.1:%d/nothing-listens-here
    codec: h264
`

// TestCaptureTwoCodecs is the capture core's vertical slice: an H.264 and
// an H.265 camera at 10 fps publish ~10 entries/s each with schema-correct
// entries showing the simulator's picture, while a third camera that cannot
// connect disturbs neither.
func TestCaptureTwoCodecs(t *testing.T) {
	rd := testenv.StartRedis(t)
	h264 := startCamsim(t, camsimOpts{Cameras: 1, Codec: "h264", Size: "640x360", FPS: 25})
	h265 := startCamsim(t, camsimOpts{Cameras: 1, Codec: "h265", Size: "640x360", FPS: 25})
	dead := testenv.FreePort(t)
	svc := startService(t, fmt.Sprintf(captureConfig, rd.URL, h264.Addr, h265.Addr, dead))

	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer rc.Close()
	ctx := ctxT(t, 2*time.Minute)

	// Wait for both to stream, then measure over 10 s.
	require.Eventually(t, func() bool {
		n1, _ := rc.XLen(ctx, "frames:h264cam").Result()
		n2, _ := rc.XLen(ctx, "frames:h265cam").Result()
		return n1 > 5 && n2 > 5
	}, 40*time.Second, 200*time.Millisecond, "no frames published; health: %+v", svc.health(t))

	const window = 10 * time.Second
	n0 := map[string]int64{}
	for _, id := range []string{"h264cam", "h265cam"} {
		n0[id] = rc.XLen(ctx, "frames:"+id).Val()
	}
	t0 := time.Now()
	time.Sleep(window)
	dt := time.Since(t0).Seconds()
	for _, id := range []string{"h264cam", "h265cam"} {
		rate := float64(rc.XLen(ctx, "frames:"+id).Val()-n0[id]) / dt
		t.Logf("%s: %.2f entries/s over %.1f s", id, rate, dt)
		assert.InDelta(t, 10, rate, 2, "%s entries per second", id)
	}

	for _, id := range []string{"h264cam", "h265cam"} {
		msgs, err := rc.XRevRangeN(ctx, "frames:"+id, "+", "-", 1).Result()
		require.NoError(t, err)
		require.Len(t, msgs, 1)
		checkEntry(t, id, msgs[0].Values, 640, 360)
	}

	// frame_id is unique within the stream.
	msgs, err := rc.XRangeN(ctx, "frames:h264cam", "-", "+", 50).Result()
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, m := range msgs {
		id := m.Values["frame_id"].(string)
		assert.False(t, seen[id], "duplicate frame_id %s", id)
		seen[id] = true
	}

	h := svc.health(t)
	assert.Equal(t, "streaming", h.camera("h264cam").State)
	assert.Equal(t, "streaming", h.camera("h265cam").State)
	deadState := h.camera("deadcam")
	assert.NotEqual(t, "streaming", deadState.State)
	assert.NotEmpty(t, deadState.LastError, "the unreachable camera reports why")
	assert.Zero(t, rc.Exists(ctx, "frames:deadcam").Val())
	t.Logf("deadcam: state=%s error=%q", deadState.State, deadState.LastError)

	// SIGTERM: clean exit 0.
	svc.Stop(15 * time.Second)
	assert.Equal(t, 0, svc.cmd.ProcessState.ExitCode(), "exit status after SIGTERM")
}

// checkEntry verifies one Redis entry against schema v1 and the picture.
func checkEntry(t *testing.T, camID string, v map[string]any, w, h int) {
	t.Helper()
	for _, k := range []string{"v", "frame_id", "camera_id", "seq", "ts", "pts", "width", "height", "format", "stride", "size_bytes", "data"} {
		require.Contains(t, v, k, "%s entry lacks field %q", camID, k)
	}
	assert.Equal(t, "1", v["v"])
	assert.Equal(t, camID, v["camera_id"])
	assert.Equal(t, strconv.Itoa(w), v["width"])
	assert.Equal(t, strconv.Itoa(h), v["height"])
	assert.Equal(t, "BGR", v["format"])
	stride, size, err := frame.Layout(frame.BGR, w, h)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(stride), v["stride"])
	assert.Equal(t, strconv.Itoa(size), v["size_bytes"], "size_bytes implied by %dx%d BGR", w, h)
	data := v["data"].(string)
	require.Len(t, data, size)
	ts, err := strconv.ParseInt(v["ts"].(string), 10, 64)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), time.Unix(0, ts), 30*time.Second, "ts is capture wall-clock")
	assertSMPTE(t, camID, []byte(data), w, h, stride)
}

// assertSMPTE checks the picture is camsim's SMPTE bars (which scroll
// horizontally): along a row in the upper part, each of the seven bars
// (white, yellow, cyan, green, magenta, red, blue) must appear, each channel
// clearly high or low, and the frame is not black.
func assertSMPTE(t *testing.T, camID string, bgr []byte, w, h, stride int) {
	t.Helper()
	bars := map[string][3]bool{ // B, G, R high?
		"white": {true, true, true}, "yellow": {false, true, true}, "cyan": {true, true, false},
		"green": {false, true, false}, "magenta": {true, false, true}, "red": {false, false, true}, "blue": {true, false, false},
	}
	level := func(v byte) (hi, clear bool) { return v > 150, v > 150 || v < 60 }
	found := map[string]bool{}
	row := bgr[(h/4)*stride:]
	var sum float64
	for x := 0; x < w; x++ {
		px := row[3*x : 3*x+3]
		sum += float64(int(px[0])+int(px[1])+int(px[2])) / 3
		var key [3]bool
		ok := true
		for c := 0; c < 3; c++ {
			hi, clear := level(px[c])
			key[c], ok = hi, ok && clear
		}
		for name, want := range bars {
			if ok && key == want {
				found[name] = true
			}
		}
	}
	mean := sum / float64(w)
	assert.Greater(t, mean, 40.0, "%s: row is too dark (mean %.1f): black picture?", camID, mean)
	var missing []string
	for name := range bars {
		if !found[name] {
			missing = append(missing, name)
		}
	}
	assert.Empty(t, missing, "%s: SMPTE bars missing from the decoded picture", camID)
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// TestInvalidConfigExits2 checks both `validate` and `run` refuse a bad
// configuration with exit status 2 and messages naming each path.
func TestInvalidConfigExits2(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "bad.yaml", `
redis: {url: "redis://127.0.0.1:1"}
defaults:
  latency: 2 seconds
  stall_timout: 5s
cameras:
  - id: a
    url: http://10.0.0.1/stream
    codec: h264
  - id: a
    url: rtsp://10.0.0.2/stream
    codec: vp9
`)
	for _, cmd := range []string{"validate", "run"} {
		out, err := exec.Command(binary(t, "gstcapture"), cmd, "--config", cfg).CombinedOutput()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%s must fail: %s", cmd, out)
		assert.Equal(t, 2, ee.ExitCode(), "%s exit status", cmd)
		text := string(out)
		for _, path := range []string{"defaults.latency", "defaults.stall_timout", "cameras[0].url", "cameras[1].id", "cameras[1].codec"} {
			assert.True(t, strings.Contains(text, path), "%s output names %s:\n%s", cmd, path, text)
		}
	}
}
