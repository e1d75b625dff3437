package e2e

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/membudget"
	"gstcapture/internal/testenv"
)

// TestMemoryBudgetRedisOutage (issue 12, part 2): four 1280x720 BGR cameras
// at 10 fps with memory.budget 384MiB, and Redis killed for 30 s. The
// budget gives the Go heap a quarter (GOMEMLIMIT 96 MiB) and each camera
// 72 MiB of frames: 10 before the ring, one batch of 6 in flight, and a
// ring of 11 (not ring_size 32). During the outage the rings fill and drop
// their oldest frames, so RSS grows by at most what the four rings hold
// (4 x 11 x 2.76 MB = 122 MB) plus allocator slack, and stays within the
// budget plus the baseline measured before the outage. Without the budget
// the rings hold 32 frames each: 4 x 88 MB = 354 MB, which the first bound
// catches.
func TestMemoryBudgetRedisOutage(t *testing.T) {
	const (
		cams, ringSize = 4, 32
		budget         = 384 << 20
		frameBytes     = 1280 * 720 * 3
		outage         = 30 * time.Second
		fps            = 10
	)
	rd := testenv.StartRedis(t)
	sim := startCamsim(t, camsimOpts{Cameras: cams, Codec: "h264", Size: "1280x720", FPS: fps})
	cfg := fmt.Sprintf(`
redis: {url: %s, maxlen: 20}
memory: {budget: 384MiB}
log: {level: info, format: json}
defaults: {fps: %d, format: BGR, ring_size: %d, stall_timeout: 5s, reconnect: {initial: 500ms, max: 2s}}
cameras:
`, rd.URL, fps, ringSize)
	var ids, keys []string
	for i := 1; i <= cams; i++ {
		cfg += fmt.Sprintf("  - {id: cam%d, url: \"rtsp://%s/cam%d\", codec: h264}\n", i, sim.Addr, i)
		ids, keys = append(ids, fmt.Sprintf("cam%d", i)), append(keys, fmt.Sprintf("frames:cam%d", i))
	}
	svc := startService(t, cfg)
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr, MaxRetries: -1})
	defer rc.Close()
	rfWaitPublishing(t, rc, svc, 60*time.Second, 10, keys...)

	// What the budget made of it, as /health reports it; the figures follow
	// from the split (membudget) and must match it.
	type memCam struct {
		ID        string `json:"id"`
		Frames    int    `json:"ring_frames"`
		Bytes     int64  `json:"ring_bytes_limit"`
		Shortened bool   `json:"ring_shortened"`
	}
	var h struct {
		Memory struct {
			Budget    int64  `json:"budget_bytes"`
			Source    string `json:"source"`
			GoLimit   int64  `json:"go_limit_bytes"`
			PerCamera int64  `json:"per_camera_bytes"`
		} `json:"memory"`
		Cameras []memCam `json:"cameras"`
	}
	require.Equal(t, 200, svc.getJSON(t, "/health", &h))
	split := membudget.Plan(budget, membudget.Limit{}, cams)
	ring := membudget.SizeRing(split.PerCamera, frameBytes, ringSize, 6)
	require.Equal(t, 11, ring.Frames, "the split this test is written for")
	assert.Equal(t, int64(budget), h.Memory.Budget)
	assert.Equal(t, "memory.budget", h.Memory.Source)
	assert.Equal(t, int64(96<<20), h.Memory.GoLimit, "GOMEMLIMIT: a quarter of the budget")
	assert.Equal(t, split.PerCamera, h.Memory.PerCamera)
	var ringsBytes int64
	for _, c := range h.Cameras {
		assert.Equal(t, ring.Frames, c.Frames, "%s: ring frames within its share", c.ID)
		assert.Equal(t, ring.Bytes, c.Bytes, "%s: ring byte limit", c.ID)
		assert.True(t, c.Shortened, "%s: ring shortened below ring_size", c.ID)
		ringsBytes += c.Bytes
	}
	require.Len(t, h.Cameras, cams)
	assert.Len(t, lines(svc.Output(), "its ring is shortened"), cams, "one warning per camera")

	// Baseline: the steady state with Redis up, rings near empty.
	smp := rfStartSampler(t, svc, 250*time.Millisecond)
	time.Sleep(6 * time.Second)
	baseline := 0.0
	for _, s := range smp.Between(time.Now().Add(-5*time.Second), time.Now()) {
		baseline = math.Max(baseline, s.Proc.RSSMB)
	}
	require.Positive(t, baseline)

	tKill, peak := rfOutage(t, rd, svc, smp, outage)
	win := smp.Between(tKill.Add(5*time.Second), tKill.Add(outage-time.Second))
	require.GreaterOrEqual(t, len(win), 20, "samples during the outage")
	first, last := win[0], win[len(win)-1]

	rd.Restart(t)
	rfWaitPublishing(t, rc, svc, 30*time.Second, 5, keys...)
	smp.Stop()

	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	t.Logf("gstcapture RSS: baseline %.1f MB, peak during the %v outage %.1f MB (+%.1f MB); rings hold at most %.1f MB (%d x %d frames), budget %.0f MB; without the budget they would hold %.1f MB",
		baseline, outage, peak, peak-baseline, mb(ringsBytes), cams, ring.Frames, mb(budget), mb(int64(cams*ringSize*frameBytes)))
	for _, id := range ids {
		a, b := first.Cams[id], last.Cams[id]
		rate := rfRate(win, id)
		t.Logf("%s during the outage: %.2f frames/s captured, ring_overflow %d -> %d", id, rate, a.Dropped["ring_overflow"], b.Dropped["ring_overflow"])
		assert.InDelta(t, fps, rate, 2, "%s: capture goes on while Redis is down", id)
		assert.Equal(t, "streaming", b.State, "%s keeps streaming", id)
		assert.Greater(t, b.Dropped["ring_overflow"], a.Dropped["ring_overflow"], "%s: the ring drops its oldest frames", id)
	}
	assert.Less(t, peak-baseline, mb(ringsBytes)+64, "RSS growth during the outage (MB): at most the rings' bytes plus 64 MB of slack")
	assert.Less(t, peak, baseline+mb(budget), "RSS within the budget plus the baseline (MB)")
}
