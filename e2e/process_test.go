package e2e

// Process faults: a pipeline whose teardown wedges (fault 13), and the
// shutdown on SIGTERM (fault 14).

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFrozenPipelineFailsLiveness (fault 13): with the test-only hook
// GSTCAPTURE_FAULT_WEDGE_TEARDOWN=cam2, every teardown of cam2's pipeline
// blocks as a wedged element would. Each camsim disconnect of cam2 makes
// the supervisor tear the pipeline down; it must abandon it at the 5 s deadline,
// count it (frozen_pipelines in /health, rtsp_frozen_pipelines_total) and
// rebuild cam2. With health.max_frozen 1, the first frozen pipeline keeps
// /healthz at 200 and the second turns it to 503, so that the orchestrator
// restarts the process. cam1 streams at ~fps throughout.
func TestFrozenPipelineFailsLiveness(t *testing.T) {
	const teardownDeadline = 5 * time.Second
	o := rfSim(2)
	o.Control = true
	r := rfStart(t, o, 32, func(c *svcConfig) { c.AnyReady, c.MaxFrozen = true, 1 }, "GSTCAPTURE_FAULT_WEDGE_TEARDOWN=cam2")
	sim, svc := r.sim, r.svc
	require.NotEmpty(t, lines(svc.Output(), "TEST FAULT INJECTION"), "the service announces the injected fault")

	smp := startSampler(t, svc, 250*time.Millisecond, false)
	tStart := time.Now()
	for round := 1; round <= 2; round++ {
		require.Eventually(t, func() bool {
			h, ok := svc.tryHealth()
			return ok && h.camera("cam2").State == "streaming"
		}, 60*time.Second, 100*time.Millisecond, "round %d: cam2 streams before the disconnect", round)
		code, _ := httpGet(t, svc.HTTP+"/healthz")
		require.Equal(t, http.StatusOK, code, "round %d: /healthz before the disconnect", round)

		sim.Do(2, "disconnect")
		tFault := time.Now()
		// Not counted before the deadline...
		time.Sleep(teardownDeadline - 1500*time.Millisecond)
		h, ok := svc.tryHealth()
		require.True(t, ok)
		require.Equal(t, int64(round-1), h.Frozen, "round %d: frozen before the teardown deadline", round)
		// ...and counted soon after it.
		require.Eventually(t, func() bool {
			h, ok := svc.tryHealth()
			return ok && h.Frozen == int64(round)
		}, teardownDeadline+10*time.Second, 100*time.Millisecond, "round %d: frozen_pipelines never reached %d", round, round)
		t.Logf("round %d: counted frozen %.1f s after the disconnect (deadline %s)", round, time.Since(tFault).Seconds(), teardownDeadline)

		for _, c := range svc.health(t).Cameras {
			want := uint64(0)
			if c.ID == "cam2" {
				want = uint64(round)
			}
			assert.Equal(t, want, c.Frozen, "round %d: %s frozen_pipelines in /health", round, c.ID)
		}
		m := svc.metrics(t)
		assert.Equal(t, float64(round), m.mustValue(t, "rtsp_frozen_pipelines_total", "camera_id", "cam2"), "round %d: rtsp_frozen_pipelines_total{cam2}", round)
		assert.Equal(t, float64(0), m.mustValue(t, "rtsp_frozen_pipelines_total", "camera_id", "cam1"), "round %d: rtsp_frozen_pipelines_total{cam1}", round)

		code, body := httpGet(t, svc.HTTP+"/healthz")
		if round == 1 {
			assert.Equal(t, http.StatusOK, code, "1 frozen pipeline is within health.max_frozen=1: %s", body)
		} else {
			assert.Equal(t, http.StatusServiceUnavailable, code, "2 frozen pipelines exceed health.max_frozen=1: %s", body)
			assert.Contains(t, string(body), "max_frozen", "/healthz says why")
			t.Logf("/healthz after 2 frozen pipelines: %d %s", code, body)
		}
	}
	// The abandoned pipelines did not take cam2 down for good: it is rebuilt.
	require.Eventually(t, func() bool {
		h, ok := svc.tryHealth()
		return ok && h.camera("cam2").State == "streaming"
	}, 60*time.Second, 100*time.Millisecond, "cam2 streams again after its second frozen pipeline")
	smp.Stop()

	// The healthy camera never noticed.
	all := smp.Between(tStart, time.Now())
	rate := captureRate(all, "cam1")
	t.Logf("cam1 over %.0f s of cam2 faults: %.2f frames/s, state %s", all[len(all)-1].At.Sub(all[0].At).Seconds(),
		rate, all[len(all)-1].Cams["cam1"].State)
	assert.InDelta(t, rfFPS, rate, 2, "cam1 frames_captured per second while cam2's pipelines freeze")
	for _, s := range all {
		require.Equal(t, "streaming", s.Cams["cam1"].State, "cam1 at %s", s.At.Format(time.RFC3339Nano))
	}
	assert.Len(t, lines(svc.Output(), "pipeline frozen: teardown missed its deadline"), 2,
		"one error line per abandoned pipeline")

	// Shutdown is bounded too: cam2's last teardown wedges as well and is
	// abandoned at its deadline; the process still exits 0 with its accounts.
	tTerm := time.Now()
	svc.Signal(t, syscall.SIGTERM)
	require.Equal(t, 0, svc.ExitCode(teardownDeadline+20*time.Second), "exit status after SIGTERM with a wedged camera")
	t.Logf("exit %.1f s after SIGTERM with a wedged teardown", time.Since(tTerm).Seconds())
	for _, a := range finalAccounting(t, svc.Output(), "cam1", "cam2") {
		checkIdentity(t, a)
	}
}

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
	r := rfStart(t, rfSim(cams), 64, nil)
	svc, rc, ids := r.svc, r.rc, r.ids

	thaw := rc.Freeze()
	time.Sleep(3 * time.Second)
	h, ok := svc.tryHealth()
	require.True(t, ok, "/health before SIGTERM")
	waiting := map[string]uint64{}
	for _, id := range ids {
		c := h.camera(id)
		waiting[id] = c.Captured - c.Published - c.DroppedTotal()
		require.GreaterOrEqual(t, waiting[id], uint64(20), "%s: frames waiting for the frozen Redis", id)
	}
	tTerm := time.Now()
	svc.Signal(t, syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	thaw()

	code := svc.ExitCode(shutdownDeadline + 20*time.Second)
	took := time.Since(tTerm)
	require.Equal(t, 0, code, "exit status after SIGTERM; output:\n%s", tail(svc.Output(), 3000))
	t.Logf("exit %.2f s after SIGTERM (Redis frozen for the first 0.5 s of it)", took.Seconds())
	assert.Less(t, took, shutdownDeadline+2*time.Second, "stop, flush and exit within the shutdown deadline")

	var flushed int64 = -1
	for _, l := range logged(svc.Output(), "capture stopped", "") {
		if l.Flushed != nil {
			flushed = *l.Flushed
		}
	}
	final := finalAccounting(t, svc.Output(), ids...)
	var waitingAll uint64
	for _, id := range ids {
		a := final[id]
		n := rc.Len(id)
		last := rc.LastSeq(id)
		published := h.camera(id).Published
		t.Logf("%s: %d frames waiting at SIGTERM; final captured %d published %d (+%d after SIGTERM) dropped %v; XLEN %d, newest seq %d",
			id, waiting[id], a.Captured, a.Published, a.Published-published, a.Dropped, n, last)
		checkIdentity(t, a)
		assert.Equal(t, uint64(n), a.Published, "%s: published equals the entries in Redis", id)
		// A round trip in flight at the instant Redis froze can time out
		// half-written; its frames are settled against the stream and,
		// not stored, dropped as redis_error. That is the freeze, not the
		// shutdown: at most one round trip's worth, and the frames of it
		// were counted as waiting at SIGTERM.
		cut := a.Dropped["redis_error"]
		assert.Equal(t, cut, settledDropped(t, svc.Output(), id), "%s: redis_error drops are exactly the settled frames of the cut round trip", id)
		assert.Equal(t, cut, a.DroppedTotal, "%s: nothing dropped but a round trip cut by the freeze, shutdown included", id)
		assert.GreaterOrEqual(t, a.Published-published+cut, waiting[id], "%s: what waited at SIGTERM was published", id)
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
	r := rfStart(t, rfSim(1), 32, func(c *svcConfig) { c.Shutdown = "60s" })
	rd, svc := r.rd, r.svc

	rd.Stop()
	require.Eventually(t, func() bool { h, ok := svc.tryHealth(); return ok && h.Redis == "down" },
		15*time.Second, 100*time.Millisecond, "/health never said redis down")
	time.Sleep(2 * time.Second) // frames wait in the ring

	svc.Signal(t, syscall.SIGTERM)
	require.Equal(t, -1, svc.ExitCode(3*time.Second),
		"after one SIGTERM the flush keeps waiting for the dead Redis (shutdown.timeout 60s); output:\n%s", tail(svc.Output(), 2000))
	assert.Empty(t, lines(svc.Output(), "capture stopped"), "the flush has not finished")

	t2 := time.Now()
	svc.Signal(t, syscall.SIGTERM)
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
	for _, l := range logged(out, "settled frames of a failed round trip", id) {
		var s struct {
			Dropped uint64 `json:"dropped"`
		}
		l.decode(t, &s)
		n++
		dropped += s.Dropped
	}
	assert.LessOrEqual(t, n, 1, "%s: round trips cut by one freeze", id)
	return dropped
}
