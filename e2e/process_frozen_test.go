package e2e

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// rfGet returns the status and body of base+path.
func rfGet(t testing.TB, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	require.NoError(t, err, "GET %s", url)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "GET %s", url)
	return resp.StatusCode, string(b)
}

// rfFrozenMetric reads rtsp_frozen_pipelines_total for cam from /metrics.
func rfFrozenMetric(t testing.TB, svc *service, cam string) float64 {
	t.Helper()
	code, body := rfGet(t, svc.HTTP+"/metrics")
	require.Equal(t, http.StatusOK, code, "/metrics")
	re := regexp.MustCompile(`(?m)^rtsp_frozen_pipelines_total\{camera_id="` + regexp.QuoteMeta(cam) + `"\} (\S+)$`)
	m := re.FindStringSubmatch(body)
	require.NotNil(t, m, "/metrics has no rtsp_frozen_pipelines_total for %s", cam)
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}

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
	rd := testenv.StartRedis(t)
	sim := startCamsim(t, camsimOpts{Cameras: 2, Codec: "h264", Size: "640x360", FPS: rfFPS, Control: true})
	svc := startService(t, rfConfig(rd.URL, sim.Addr, 2, 32, "health: {min_ready: 0, max_frozen: 1}"),
		"GSTCAPTURE_FAULT_WEDGE_TEARDOWN=cam2")
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer rc.Close()
	rfWaitPublishing(t, rc, svc, 60*time.Second, 10, "frames:cam1", "frames:cam2")
	require.NotEmpty(t, lines(svc.Output(), "TEST FAULT INJECTION"), "the service announces the injected fault")

	smp := rfStartSampler(t, svc, 250*time.Millisecond)
	tStart := time.Now()
	for round := 1; round <= 2; round++ {
		require.Eventually(t, func() bool {
			h, ok := rfHealth(svc.HTTP)
			return ok && h.Cams["cam2"].State == "streaming"
		}, 60*time.Second, 100*time.Millisecond, "round %d: cam2 streams before the disconnect", round)
		code, _ := rfGet(t, svc.HTTP+"/healthz")
		require.Equal(t, http.StatusOK, code, "round %d: /healthz before the disconnect", round)

		rfControl(t, sim.Control, 2, "disconnect")
		tFault := time.Now()
		// Not counted before the deadline...
		time.Sleep(teardownDeadline - 1500*time.Millisecond)
		h, ok := rfHealth(svc.HTTP)
		require.True(t, ok)
		require.Equal(t, int64(round-1), h.Frozen, "round %d: frozen before the teardown deadline", round)
		// ...and counted soon after it.
		require.Eventually(t, func() bool {
			h, ok := rfHealth(svc.HTTP)
			return ok && h.Frozen == int64(round)
		}, teardownDeadline+10*time.Second, 100*time.Millisecond, "round %d: frozen_pipelines never reached %d", round, round)
		t.Logf("round %d: counted frozen %.1f s after the disconnect (deadline %s)", round, time.Since(tFault).Seconds(), teardownDeadline)

		var h2 struct {
			Frozen  int64 `json:"frozen_pipelines"`
			Cameras []struct {
				ID     string `json:"id"`
				Frozen uint64 `json:"frozen_pipelines"`
			} `json:"cameras"`
		}
		svc.getJSON(t, "/health", &h2)
		for _, c := range h2.Cameras {
			want := uint64(0)
			if c.ID == "cam2" {
				want = uint64(round)
			}
			assert.Equal(t, want, c.Frozen, "round %d: %s frozen_pipelines in /health", round, c.ID)
		}
		assert.Equal(t, float64(round), rfFrozenMetric(t, svc, "cam2"), "round %d: rtsp_frozen_pipelines_total{cam2}", round)
		assert.Equal(t, float64(0), rfFrozenMetric(t, svc, "cam1"), "round %d: rtsp_frozen_pipelines_total{cam1}", round)

		code, body := rfGet(t, svc.HTTP+"/healthz")
		if round == 1 {
			assert.Equal(t, http.StatusOK, code, "1 frozen pipeline is within health.max_frozen=1: %s", body)
		} else {
			assert.Equal(t, http.StatusServiceUnavailable, code, "2 frozen pipelines exceed health.max_frozen=1: %s", body)
			assert.Contains(t, body, "max_frozen", "/healthz says why")
			t.Logf("/healthz after 2 frozen pipelines: %d %s", code, body)
		}
	}
	// The abandoned pipelines did not take cam2 down for good: it is rebuilt.
	require.Eventually(t, func() bool {
		h, ok := rfHealth(svc.HTTP)
		return ok && h.Cams["cam2"].State == "streaming"
	}, 60*time.Second, 100*time.Millisecond, "cam2 streams again after its second frozen pipeline")
	smp.Stop()

	// The healthy camera never noticed.
	all := smp.Between(tStart, time.Now())
	rate := rfRate(all, "cam1")
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
	rfSignal(t, svc, syscall.SIGTERM)
	require.Equal(t, 0, svc.ExitCode(teardownDeadline+20*time.Second), "exit status after SIGTERM with a wedged camera")
	t.Logf("exit %.1f s after SIGTERM with a wedged teardown", time.Since(tTerm).Seconds())
	for _, a := range rfFinalAccounting(t, svc.Output(), "cam1", "cam2") {
		rfCheckIdentity(t, a)
	}
}
