package e2e

import (
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// TestSIGTERMFlushesRing (fault 14): Redis freezes, the rings fill (64
// frames each: nothing overflows in 3.5 s), SIGTERM arrives while Redis is
// still frozen, and Redis wakes half a second later. Within the shutdown
// deadline (default 5 s) every frame that waited at SIGTERM reaches Redis:
// no shutdown drops (only the frames of a round trip the freeze itself cut
// may be lost, settled as redis_error), published grows by at least what
// waited, the newest
// captured frame is the newest entry, published equals XLEN and the
// process exits 0.
func TestSIGTERMFlushesRing(t *testing.T) {
	const cams, shutdownDeadline = 2, 5 * time.Second
	rd := testenv.StartRedis(t)
	sim := startCamsim(t, camsimOpts{Cameras: cams, Codec: "h264", Size: "640x360", FPS: rfFPS})
	svc := startService(t, rfConfig(rd.URL, sim.Addr, cams, 64, ""))
	ids, keys := []string{"cam1", "cam2"}, []string{"frames:cam1", "frames:cam2"}
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr, MaxRetries: -1})
	defer rc.Close()
	rfWaitPublishing(t, rc, svc, 60*time.Second, 20, keys...)
	pid := rfPID(t, rc)

	thaw := rfFreeze(t, pid)
	time.Sleep(3 * time.Second)
	h, ok := rfHealth(svc.HTTP)
	require.True(t, ok, "/health before SIGTERM")
	waiting := map[string]uint64{}
	for _, id := range ids {
		c := h.Cams[id]
		var dropped uint64
		for _, n := range c.Dropped {
			dropped += n
		}
		waiting[id] = c.Captured - c.Published - dropped
		require.GreaterOrEqual(t, waiting[id], uint64(20), "%s: frames waiting for the frozen Redis", id)
	}
	tTerm := time.Now()
	rfSignal(t, svc, syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	thaw()

	code := svc.ExitCode(shutdownDeadline + 20*time.Second)
	took := time.Since(tTerm)
	require.Equal(t, 0, code, "exit status after SIGTERM; output:\n%s", tail(svc.Output(), 3000))
	t.Logf("exit %.2f s after SIGTERM (Redis frozen for the first 0.5 s of it)", took.Seconds())
	assert.Less(t, took, shutdownDeadline+2*time.Second, "stop, flush and exit within the shutdown deadline")

	var flushed int64 = -1
	for _, l := range rfLogs(svc.Output()) {
		if l.Msg == "capture stopped" && l.Flushed != nil {
			flushed = *l.Flushed
		}
	}
	final := rfFinalAccounting(t, svc.Output(), ids...)
	ctx := ctxT(t, 10*time.Second)
	var waitingAll uint64
	for i, id := range ids {
		a := final[id]
		n := rc.XLen(ctx, keys[i]).Val()
		last := rfLastSeq(t, rc, keys[i])
		t.Logf("%s: %d frames waiting at SIGTERM; final captured %d published %d (+%d after SIGTERM) dropped %v; XLEN %d, newest seq %d",
			id, waiting[id], a.Captured, a.Published, a.Published-h.Cams[id].Published, a.Dropped, n, last)
		rfCheckIdentity(t, a)
		assert.Equal(t, uint64(n), a.Published, "%s: published equals the entries in Redis", id)
		// A round trip in flight at the instant Redis froze can time out
		// half-written; its frames are settled against the stream and,
		// not stored, dropped as redis_error. That is the freeze, not the
		// shutdown: at most one round trip's worth, and the frames of it
		// were counted as waiting at SIGTERM.
		cut := a.Dropped["redis_error"]
		assert.Equal(t, cut, settledDropped(t, svc.Output(), id), "%s: redis_error drops are exactly the settled frames of the cut round trip", id)
		assert.Equal(t, cut, a.DroppedTotal, "%s: nothing dropped but a round trip cut by the freeze, shutdown included", id)
		assert.GreaterOrEqual(t, a.Published-h.Cams[id].Published+cut, waiting[id], "%s: what waited at SIGTERM was published", id)
		assert.Equal(t, a.Captured, last, "%s: the newest captured frame (seq = captured) is the newest entry", id)
		waitingAll += waiting[id]
	}
	t.Logf("capture stopped: flushed_frames %d (waiting at SIGTERM: %d)", flushed, waitingAll)
	assert.Positive(t, flushed, "the shutdown flush published frames")
}

// TestSecondSignalExitsAtOnce (fault 14): with Redis dead and a long
// shutdown deadline (60 s), the flush after SIGTERM waits for Redis; a
// second SIGTERM ends the process at once with a non-zero status.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	rd := testenv.StartRedis(t)
	sim := startCamsim(t, camsimOpts{Cameras: 1, Codec: "h264", Size: "640x360", FPS: rfFPS})
	svc := startService(t, rfConfig(rd.URL, sim.Addr, 1, 32, "shutdown: {timeout: 60s}"))
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr, MaxRetries: -1})
	defer rc.Close()
	rfWaitPublishing(t, rc, svc, 60*time.Second, 10, "frames:cam1")

	rd.Stop()
	require.Eventually(t, func() bool { h, ok := rfHealth(svc.HTTP); return ok && h.Redis == "down" },
		15*time.Second, 100*time.Millisecond, "/health never said redis down")
	time.Sleep(2 * time.Second) // frames wait in the ring

	rfSignal(t, svc, syscall.SIGTERM)
	require.Equal(t, -1, svc.ExitCode(3*time.Second),
		"after one SIGTERM the flush keeps waiting for the dead Redis (shutdown.timeout 60s); output:\n%s", tail(svc.Output(), 2000))
	assert.Empty(t, lines(svc.Output(), "capture stopped"), "the flush has not finished")

	t2 := time.Now()
	rfSignal(t, svc, syscall.SIGTERM)
	code := svc.ExitCode(30 * time.Second)
	took := time.Since(t2)
	t.Logf("exit status %d, %.2f s after the second SIGTERM", code, took.Seconds())
	require.NotEqual(t, -1, code, "still running 30 s after the second SIGTERM")
	assert.NotZero(t, code, "a second signal is an abnormal exit")
	assert.Less(t, took, 3*time.Second, "the second signal exits at once, not at the 60 s flush deadline")
	assert.NotEmpty(t, lines(svc.Output(), "second signal, exiting immediately"), "the exit says why")
}

// settledDropped is what the service's "settled frames of a failed round
// trip" lines for camera id report as dropped, failing if there is more
// than one such line: one freeze cuts at most one round trip per camera.
func settledDropped(t testing.TB, out, id string) uint64 {
	t.Helper()
	var n int
	var dropped uint64
	for _, l := range rfLogs(out) {
		if l.Msg != "settled frames of a failed round trip" {
			continue
		}
		var s struct {
			CameraID string `json:"camera_id"`
			Dropped  uint64 `json:"dropped"`
		}
		require.NoError(t, json.Unmarshal(l.raw, &s), "settle line %s", l.raw)
		if s.CameraID == id {
			n++
			dropped += s.Dropped
		}
	}
	assert.LessOrEqual(t, n, 1, "%s: round trips cut by one freeze", id)
	return dropped
}
