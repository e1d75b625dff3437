package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// TestFrameSizeLimit: a camera whose frames exceed max_width/max_height
// (here 640x360 against a limit of 320x320, as an 8K camera would against
// the 4096x4096 default) goes to state error with a message naming the
// size and the keys, publishes nothing, and leaves the other camera alone.
func TestFrameSizeLimit(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	t.Cleanup(func() { _ = rc.Close() })
	sim := startCamsim(t, camsimOpts{Cameras: 2, Codec: "h264", Size: "640x360", FPS: 10})
	svc := startService(t, fmt.Sprintf(`
redis: {url: %s, retention: 1h}
log: {format: json}
health: {min_ready: 0}
defaults: {fps: 10, reconnect: {initial: 500ms, max: 2s}}
cameras:
  - {id: huge, url: %q, codec: h264, max_width: 320, max_height: 320}
  - {id: fine, url: %q, codec: h264}
`, rd.URL, "rtsp://"+sim.Addr+"/cam1", "rtsp://"+sim.Addr+"/cam2"))
	ctx := ctxT(t, time.Minute)
	require.Eventually(t, func() bool {
		return svc.health(t).camera("huge").State == "error"
	}, 30*time.Second, 100*time.Millisecond, "the oversized camera goes to error: %s", tail(svc.Output(), 1500))
	h := svc.health(t).camera("huge")
	assert.Contains(t, h.LastError, "640x360")
	assert.Contains(t, h.LastError, "max_width, max_height")
	require.Eventually(t, func() bool { return rc.XLen(ctx, "frames:fine").Val() >= 30 }, 30*time.Second, 100*time.Millisecond, "the other camera streams")
	assert.Zero(t, rc.XLen(ctx, "frames:huge").Val(), "no oversized frame is published")
	assert.Zero(t, svc.health(t).camera("huge").Captured, "nor captured")
	assert.Equal(t, "streaming", svc.health(t).camera("fine").State)
}
