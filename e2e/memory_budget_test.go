package e2e

import (
	"testing"
	"time"

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
	cfg := svcConfig{
		Redis: rd.URL, MaxLen: 20, Memory: "384MiB",
		FPS: fps, RingSize: ringSize, StallTimeout: "5s", Reconnect: reconnect{"500ms", "2s"},
		Cameras: simCams(sim, cams),
	}
	ids := camIDs(cfg.Cameras)
	svc := startService(t, cfg)
	rc := openFrames(t, rd)
	rc.WaitPublished(svc, 60*time.Second, 10, ids...)

	// What the budget made of it, as /health reports it; the figures follow
	// from the split (membudget) and must match it.
	var h healthReport
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
		assert.Equal(t, ring.Frames, c.RingFrames, "%s: ring frames within its share", c.ID)
		assert.Equal(t, ring.Bytes, c.RingBytesLimit, "%s: ring byte limit", c.ID)
		assert.True(t, c.RingShortened, "%s: ring shortened below ring_size", c.ID)
		ringsBytes += c.RingBytesLimit
	}
	require.Len(t, h.Cameras, cams)
	assert.Len(t, lines(svc.Output(), "its ring is shortened"), cams, "one warning per camera")

	// Baseline: the steady state with Redis up, rings near empty.
	smp := startSampler(t, svc, 250*time.Millisecond, false)
	time.Sleep(6 * time.Second)
	baseline := peakRSSMB(smp.Between(time.Now().Add(-5*time.Second), time.Now()))
	require.Positive(t, baseline)

	tKill, peak := rfOutage(t, rd, svc, smp, outage)
	win := smp.Between(tKill.Add(5*time.Second), tKill.Add(outage-time.Second))
	require.GreaterOrEqual(t, len(win), 20, "samples during the outage")
	first, last := win[0], win[len(win)-1]

	rd.Restart(t)
	rc.WaitPublished(svc, 30*time.Second, 5, ids...)
	smp.Stop()

	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	t.Logf("gstcapture RSS: baseline %.1f MB, peak during the %v outage %.1f MB (+%.1f MB); rings hold at most %.1f MB (%d x %d frames), budget %.0f MB; without the budget they would hold %.1f MB",
		baseline, outage, peak, peak-baseline, mb(ringsBytes), cams, ring.Frames, mb(budget), mb(int64(cams*ringSize*frameBytes)))
	for _, id := range ids {
		a, b := first.Cams[id], last.Cams[id]
		rate := captureRate(win, id)
		t.Logf("%s during the outage: %.2f frames/s captured, ring_overflow %d -> %d", id, rate, a.Dropped["ring_overflow"], b.Dropped["ring_overflow"])
		assert.InDelta(t, fps, rate, 2, "%s: capture goes on while Redis is down", id)
		assert.Equal(t, "streaming", b.State, "%s keeps streaming", id)
		assert.Greater(t, b.Dropped["ring_overflow"], a.Dropped["ring_overflow"], "%s: the ring drops its oldest frames", id)
	}
	assert.Less(t, peak-baseline, mb(ringsBytes)+64, "RSS growth during the outage (MB): at most the rings' bytes plus 64 MB of slack")
	assert.Less(t, peak, baseline+mb(budget), "RSS within the budget plus the baseline (MB)")
}
