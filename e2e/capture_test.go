package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// TestCaptureTwoCodecs is the capture core's vertical slice: an H.264 and
// an H.265 camera at 10 fps publish ~10 entries/s each with schema-correct
// entries showing the simulator's picture, while a third camera that cannot
// connect disturbs neither.
func TestCaptureTwoCodecs(t *testing.T) {
	rd := testenv.StartRedis(t)
	h264 := startCamsim(t, camsimOpts{Cameras: 1, Codec: "h264", Size: "640x360", FPS: 25})
	h265 := startCamsim(t, camsimOpts{Cameras: 1, Codec: "h265", Size: "640x360", FPS: 25})
	svc := startService(t, svcConfig{
		Redis: rd.URL, MaxLen: 100000, Retention: "1h",
		FPS: 10, StallTimeout: "5s", Reconnect: reconnect{"500ms", "5s"},
		Cameras: []camCfg{
			{ID: "h264cam", URL: h264.URL(1), Codec: "h264"},
			{ID: "h265cam", URL: h265.URL(1), Codec: "h265"},
			{ID: "deadcam", URL: fmt.Sprintf("rtsp://127.0.0.1:%d/nothing-listens-here", testenv.FreePort(t))},
		},
	})
	rc := openFrames(t, rd)
	ctx := ctxT(t, 2*time.Minute)

	// Wait for both to stream, then measure over 10 s.
	ids := []string{"h264cam", "h265cam"}
	rc.WaitPublished(svc, 40*time.Second, 5, ids...)
	for id, rate := range rc.Rates(10*time.Second, ids...) {
		t.Logf("%s: %.2f entries/s over 10 s", id, rate)
		assert.InDelta(t, 10, rate, 2, "%s entries per second", id)
	}
	for _, id := range ids {
		checkEntry(t, id, rc.Latest(id), 640, 360)
	}

	// frame_id is unique within the stream.
	msgs, err := rc.XRangeN(ctx, "frames:h264cam", "-", "+", 50).Result()
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, m := range msgs {
		id := parseEntry(t, "h264cam", m).FrameID
		assert.False(t, seen[id], "duplicate frame_id %s", id)
		seen[id] = true
	}

	h := svc.health(t)
	assert.Equal(t, "streaming", h.camera("h264cam").State)
	assert.Equal(t, "streaming", h.camera("h265cam").State)
	deadState := h.camera("deadcam")
	assert.NotEqual(t, "streaming", deadState.State)
	assert.NotEmpty(t, deadState.LastError, "the unreachable camera reports why")
	assert.False(t, rc.Exists("deadcam"))
	t.Logf("deadcam: state=%s error=%q", deadState.State, deadState.LastError)

	// SIGTERM: clean exit 0.
	svc.Stop(15 * time.Second)
	assert.Equal(t, 0, svc.cmd.ProcessState.ExitCode(), "exit status after SIGTERM")
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

// TestFrameSizeLimit: a camera whose frames exceed max_width/max_height
// (here 640x360 against a limit of 320x320, as an 8K camera would against
// the 4096x4096 default) goes to state error with a message naming the
// size and the keys, publishes nothing (its frames are counted captured and
// dropped as oversize), and leaves the other camera alone.
func TestFrameSizeLimit(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := openFrames(t, rd)
	sim := startCamsim(t, camsimOpts{Cameras: 2, Codec: "h264", Size: "640x360", FPS: 10})
	svc := startService(t, svcConfig{
		Redis: rd.URL, Retention: "1h", AnyReady: true, FPS: 10, Reconnect: reconnect{"500ms", "2s"},
		Cameras: []camCfg{
			{ID: "huge", URL: sim.URL(1), MaxWidth: 320, MaxHeight: 320},
			{ID: "fine", URL: sim.URL(2)},
		},
	})
	require.Eventually(t, func() bool {
		return svc.health(t).camera("huge").State == "error"
	}, 30*time.Second, 100*time.Millisecond, "the oversized camera goes to error: %s", tail(svc.Output(), 1500))
	h := svc.health(t).camera("huge")
	assert.Contains(t, h.LastError, "640x360")
	assert.Contains(t, h.LastError, "max_width, max_height")
	require.Eventually(t, func() bool { return rc.Len("fine") >= 30 }, 30*time.Second, 100*time.Millisecond, "the other camera streams")
	assert.Zero(t, rc.Len("huge"), "no oversized frame is published")
	h = svc.health(t).camera("huge")
	assert.Positive(t, h.Dropped["oversize"], "the oversized frames are counted, as dropped (oversize)")
	var dropped uint64
	for _, n := range h.Dropped {
		dropped += n
	}
	assert.Equal(t, dropped, h.Captured, "captured only to be dropped: none validated or queued")
	assert.Equal(t, "streaming", svc.health(t).camera("fine").State)
}
