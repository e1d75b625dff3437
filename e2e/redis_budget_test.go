package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// TestRedisMemoryBudget: redis-server with maxmemory 300mb (policy
// noeviction, Redis's default) and gstcapture's defaults otherwise
// (retention 10 s, memory_budget auto), fed two 1280x720 BGR cameras at
// 10 fps: 63 MB/s, so 10 s of history (630 MB) does not fit. Before the
// budget, Redis refused every XADD after about 5 s ("OOM command not
// allowed"), gstcapture called Redis down and dropped every frame.
// Now, over 60 s, both cameras publish at their configured fps, used_memory
// never exceeds maxmemory, no frame is refused, and the shortened
// retention is reported in /health, in rtsp_redis_retention_seconds and
// once per camera in the log.
func TestRedisMemoryBudget(t *testing.T) {
	const (
		maxmemory = 300 << 20 // Redis's "300mb"
		window    = 60 * time.Second
	)
	rd := testenv.StartRedis(t)
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	t.Cleanup(func() { _ = rc.Close() })
	ctx := ctxT(t, 5*time.Minute)
	require.NoError(t, rc.ConfigSet(ctx, "maxmemory", "300mb").Err())
	policy, err := rc.ConfigGet(ctx, "maxmemory-policy").Result()
	require.NoError(t, err)
	require.Equal(t, "noeviction", policy["maxmemory-policy"])

	sim := streamStartCamsim(t, "h264", 2, "--size", "1280x720")
	ids := []string{"big1", "big2"}
	svc := startService(t, fmt.Sprintf(`
redis: {url: %s}
log: {format: json}
defaults: {fps: 10, format: BGR}
cameras:
  - {id: big1, url: %q, codec: h264}
  - {id: big2, url: %q, codec: h264}
`, rd.URL, sim.url(1), sim.url(2)))
	streamWaitEntries(t, ctx, rc, svc, 10, ids...)

	type budgetCam struct {
		ID        string            `json:"id"`
		Published uint64            `json:"frames_published"`
		Dropped   map[string]uint64 `json:"frames_dropped"`
		MaxLen    int64             `json:"redis_maxlen"`
		Retention float64           `json:"redis_retention_seconds"`
		Shortened bool              `json:"retention_shortened"`
	}
	health := func() (string, map[string]budgetCam) {
		var r struct {
			Redis   string      `json:"redis"`
			Cameras []budgetCam `json:"cameras"`
		}
		svc.getJSON(t, "/health", &r)
		out := map[string]budgetCam{}
		for _, c := range r.Cameras {
			out[c.ID] = c
		}
		return r.Redis, out
	}

	_, h0 := health()
	t0 := time.Now()
	var peak int64
	samples, notReady := 0, 0
	var states []string
	for time.Since(t0) < window {
		used := testenv.UsedMemory(t, rc)
		peak = max(peak, used)
		assert.LessOrEqual(t, used, int64(maxmemory), "used_memory at %s", time.Since(t0).Round(time.Second))
		resp, err := http.Get(svc.HTTP + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			notReady++
		}
		if st, _ := health(); st != "up" {
			states = append(states, st)
		}
		samples++
		time.Sleep(500 * time.Millisecond)
	}
	dt := time.Since(t0).Seconds()
	_, h1 := health()
	m := cfMetrics(t, svc)

	assert.Zero(t, notReady, "/readyz stayed 200 over %d samples", samples)
	assert.Empty(t, states, "/health redis stayed up (never full, never down)")
	for _, id := range ids {
		c := h1[id]
		rate := float64(c.Published-h0[id].Published) / dt
		assert.InDelta(t, 10, rate, 1, "%s publishes at its configured fps", id)
		assert.Zero(t, c.Dropped["redis_oom"], "%s: no XADD refused", id)
		assert.Zero(t, c.Dropped["redis_error"], "%s", id)
		assert.True(t, c.Shortened, "%s: retention shortened", id)
		assert.Greater(t, c.Retention, 0.0, id)
		assert.Less(t, c.Retention, 10.0, "%s: less than the configured 10 s", id)
		assert.InDelta(t, float64(c.MaxLen)/10, c.Retention, 1e-6, "%s: retention is MAXLEN / fps", id)
		assert.InDelta(t, c.Retention, cfMetric(m, "rtsp_redis_retention_seconds", "camera_id", id), 1e-6, "%s: the metric says the same", id)
		n, err := rc.XLen(ctx, "frames:"+id).Result()
		require.NoError(t, err)
		assert.LessOrEqual(t, n, c.MaxLen+1, "%s: the stream holds its MAXLEN (trimmed approximately)", id)
		shortened := 0
		for _, l := range lines(svc.Output(), "redis retention shortened") {
			if strings.Contains(l, `"camera_id":"`+id+`"`) {
				shortened++
			}
		}
		assert.Equal(t, 1, shortened, "%s: the shortened retention is logged once", id)
		t.Logf("%s: %.2f entries/s, MAXLEN %d, retention %.2f s, XLEN %d, dropped %v", id, rate, c.MaxLen, c.Retention, n, c.Dropped)
	}
	budget := cfMetric(m, "rtsp_redis_memory_budget_bytes")
	assert.Equal(t, float64(maxmemory)*0.75, budget, "memory_budget auto: 75%% of maxmemory")
	t.Logf("maxmemory %d, budget %.0f, peak used_memory %d (%.0f%% of maxmemory) over %d samples in %.0f s",
		maxmemory, budget, peak, 100*float64(peak)/maxmemory, samples, dt)
}
