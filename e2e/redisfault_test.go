package e2e

// Redis faults (11, 12): Redis killed and restarted, Redis frozen. Their
// configuration, camsim and outage step serve the process-fault and
// memory-budget tests too.

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

const (
	rfFPS       = 10
	rfFrameSize = 640 * 360 * 3 // BGR bytes per frame
)

// rfSim is camsim with cams 640x360 cameras at rfFPS.
func rfSim(cams int) camsimOpts {
	return camsimOpts{Cameras: cams, Codec: "h264", Size: "640x360", FPS: rfFPS}
}

// rfRig is a Redis-fault test's setup.
type rfRig struct {
	rd  *testenv.Redis
	sim *camsim
	svc *service
	rc  *redisFrames
	ids []string // cam1..camN
}

// rfStart starts a redis-server, camsim o, and gstcapture publishing every
// camera of it at 10 fps, with rings of ringSize frames and an unbounded
// stream (maxlen far above what a test writes, so XLEN counts every
// entry); adjust, when not nil, changes the rest of the configuration.
// It returns once every camera has published more than 20 entries.
func rfStart(t *testing.T, o camsimOpts, ringSize int, adjust func(*svcConfig), env ...string) rfRig {
	t.Helper()
	r := rfRig{rd: testenv.StartRedis(t), sim: startCamsim(t, o)}
	cfg := svcConfig{
		Redis: r.rd.URL, MaxLen: 100000, Retention: "1h",
		FPS: rfFPS, StallTimeout: "5s", Reconnect: reconnect{"500ms", "2s"}, RingSize: ringSize,
		Cameras: simCams(r.sim, o.Cameras),
	}
	if adjust != nil {
		adjust(&cfg)
	}
	r.svc = startService(t, cfg, env...)
	r.rc, r.ids = openFrames(t, r.rd), camIDs(cfg.Cameras)
	r.rc.WaitPublished(r.svc, 60*time.Second, 20, r.ids...)
	return r
}

// rfOutage stops rd, waits for /health to say redis down, and returns when
// outage has passed since the stop: the time of the stop and the peak RSS
// (MB) smp sampled since.
func rfOutage(t *testing.T, rd *testenv.Redis, svc *service, smp *sampler, outage time.Duration) (tKill time.Time, peakMB float64) {
	t.Helper()
	tKill = time.Now()
	rd.Stop()
	require.Eventually(t, func() bool { h, ok := svc.tryHealth(); return ok && h.Redis == "down" },
		15*time.Second, 100*time.Millisecond, "/health never said redis down")
	time.Sleep(time.Until(tKill.Add(outage)))
	return tKill, peakRSSMB(smp.Between(tKill, time.Now()))
}

// TestRedisKilledAndRestarted (fault 11, and the accounting identity across
// an outage): redis-server is SIGKILLed for 30 s and restarted on the same
// port. Capture goes on at ~fps, the rings drop their oldest frames
// (ring_overflow) instead of growing, RSS stays bounded, publishing resumes
// by itself, and after SIGTERM the final accounting balances exactly:
// captured = published + dropped, and published = the entries Redis holds
// (counted before the kill and after the restart, since the server keeps
// no data across the kill).
func TestRedisKilledAndRestarted(t *testing.T) {
	const cams, ringSize = 2, 32
	const outage = 30 * time.Second
	r := rfStart(t, rfSim(cams), ringSize, func(c *svcConfig) { c.Shutdown = "10s" })
	rd, svc, rc, ids := r.rd, r.svc, r.rc, r.ids
	smp := startSampler(t, svc, 500*time.Millisecond, false)
	time.Sleep(5 * time.Second)
	before := readProc(t, svc.proc)

	// Kill. Writes are held first so that the count of what this server
	// stored is exact; the XADDs it holds die with it, unexecuted.
	epoch1 := rc.PauseAndCount(ids...)
	tKill, peak := rfOutage(t, rd, svc, smp, outage)

	rd.Restart(t)
	tUp := time.Now()
	rc.WaitPublished(svc, 30*time.Second, 10, ids...)
	resumed := time.Since(tUp)
	time.Sleep(5 * time.Second)
	end := readProc(t, svc.proc)
	smp.Stop()

	svc.Signal(t, syscall.SIGTERM)
	require.Equal(t, 0, svc.ExitCode(30*time.Second), "exit status after SIGTERM; output:\n%s", tail(svc.Output(), 3000))
	epoch2 := map[string]int64{}
	for _, id := range ids {
		epoch2[id] = rc.Len(id)
	}

	// During the outage (after the first 3 s, until 2 s before the restart):
	// capture at ~fps, nothing published, every frame beyond what a ring
	// holds dropped as ring_overflow, none failing as redis_error.
	win := smp.Between(tKill.Add(3*time.Second), tKill.Add(outage-2*time.Second))
	require.GreaterOrEqual(t, len(win), 10, "samples during the outage")
	first, last := win[0], win[len(win)-1]
	for _, id := range ids {
		rate := captureRate(win, id)
		a, b := first.Cams[id], last.Cams[id]
		captured := b.Captured - a.Captured
		overflow := b.Dropped["ring_overflow"] - a.Dropped["ring_overflow"]
		t.Logf("%s during the outage: %.2f frames/s captured, %d captured, %d ring_overflow, published %d -> %d, state %s",
			id, rate, captured, overflow, a.Published, b.Published, b.State)
		assert.InDelta(t, rfFPS, rate, 2, "%s: frames_captured per second while Redis is down", id)
		assert.Equal(t, "streaming", b.State, "%s keeps streaming", id)
		assert.Equal(t, a.Published, b.Published, "%s: nothing published while Redis is down", id)
		assert.GreaterOrEqual(t, overflow+ringSize, captured, "%s: frames beyond the ring's %d are dropped as ring_overflow", id, ringSize)
		assert.Equal(t, a.Dropped["redis_error"], b.Dropped["redis_error"], "%s: no redis_error while nothing is sent", id)
		assert.Equal(t, "down", last.Redis)
	}

	// Memory: the rings bound it. Growth over the outage must stay within
	// what every ring full holds, plus allocator slack; a queue that grows
	// with the outage would add 2 x 300 frames = 415 MB.
	ringsMB := float64(cams*ringSize*rfFrameSize) / (1 << 20)
	t.Logf("gstcapture RSS: start %.1f MB, peak during outage %.1f MB, end %.1f MB (rings hold at most %.1f MB); "+
		"threads %d -> %d, fds %d -> %d; publishing resumed %.1f s after the restart",
		before.RSSMB(), peak, end.RSSMB(), ringsMB, before.Threads, end.Threads, before.FDs, end.FDs, resumed.Seconds())
	assert.Less(t, peak-before.RSSMB(), ringsMB+64, "RSS growth during the outage (MB)")

	// Exact accounting from the final numbers.
	final := finalAccounting(t, svc.Output(), ids...)
	for _, id := range ids {
		a := final[id]
		inRedis := epoch1[id] + epoch2[id]
		t.Logf("%s final: captured %d published %d dropped %v; entries in Redis %d (before kill %d + after restart %d)",
			id, a.Captured, a.Published, a.Dropped, inRedis, epoch1[id], epoch2[id])
		checkIdentity(t, a)
		assert.Equal(t, uint64(inRedis), a.Published, "%s: published equals the entries actually stored in Redis", id)
		assert.Positive(t, a.Dropped["ring_overflow"], "%s: ring_overflow counted", id)
	}
}

// TestSlowRedisRingAbsorbs (fault 12): redis-server freezes for 3 s, five
// times, 2 s apart (SIGSTOP/SIGCONT: every client blocks, as under DEBUG
// SLEEP 3, and round trips outlive redis.timeout 2s). The streaming threads
// never wait for Redis: frames_captured keeps rising at ~fps inside every
// freeze. The ring (16 frames here, 1.6 s) absorbs what it can and drops
// its oldest frames, counted as ring_overflow. Round trips cut by the
// timeout were still run by Redis when it woke; after SIGTERM the final
// accounting must balance and published must equal XLEN exactly.
func TestSlowRedisRingAbsorbs(t *testing.T) {
	const cams, freezes = 2, 5
	const freeze, gap = 3 * time.Second, 2 * time.Second
	r := rfStart(t, rfSim(cams), 16, nil)
	svc, rc, ids := r.svc, r.rc, r.ids
	smp := startSampler(t, svc, 250*time.Millisecond, false)
	time.Sleep(3 * time.Second)

	type span struct{ from, to time.Time }
	var frozen []span
	for range freezes {
		thaw := rc.Freeze()
		from := time.Now()
		time.Sleep(freeze)
		thaw()
		frozen = append(frozen, span{from, time.Now()})
		time.Sleep(gap)
	}
	slowFrom, slowTo := frozen[0].from, time.Now()
	time.Sleep(3 * time.Second)
	smp.Stop()

	// Inside every freeze, capture runs at ~fps. A quarter of a second is
	// trimmed at each end so that the window lies inside the freeze.
	for i, f := range frozen {
		win := smp.Between(f.from.Add(250*time.Millisecond), f.to.Add(-250*time.Millisecond))
		require.GreaterOrEqual(t, len(win), 4, "samples in freeze %d", i+1)
		for _, id := range ids {
			rate := captureRate(win, id)
			t.Logf("freeze %d, %s: %.2f frames/s captured, published %d -> %d", i+1, id, rate,
				win[0].Cams[id].Published, win[len(win)-1].Cams[id].Published)
			assert.InDelta(t, rfFPS, rate, 2, "freeze %d, %s: frames_captured per second while Redis is frozen", i+1, id)
		}
	}
	all := smp.Between(slowFrom, slowTo)
	for _, id := range ids {
		rate := captureRate(all, id)
		a, b := all[0].Cams[id], all[len(all)-1].Cams[id]
		t.Logf("%s over the slow phase (%.0f s): %.2f frames/s captured, published +%d, dropped %v -> %v",
			id, slowTo.Sub(slowFrom).Seconds(), rate, b.Published-a.Published, a.Dropped, b.Dropped)
		assert.InDelta(t, rfFPS, rate, 2, "%s: frames_captured per second over the slow phase", id)
		assert.Greater(t, b.Dropped["ring_overflow"], a.Dropped["ring_overflow"], "%s: the full ring dropped oldest frames", id)
		assert.Greater(t, b.Published, a.Published, "%s: publishing went on between freezes", id)
	}

	svc.Signal(t, syscall.SIGTERM)
	require.Equal(t, 0, svc.ExitCode(30*time.Second), "exit status after SIGTERM; output:\n%s", tail(svc.Output(), 3000))
	final := finalAccounting(t, svc.Output(), ids...)
	for _, id := range ids {
		a := final[id]
		n := rc.Len(id)
		t.Logf("%s final: captured %d published %d dropped %v; XLEN %d", id, a.Captured, a.Published, a.Dropped, n)
		checkIdentity(t, a)
		assert.Equal(t, uint64(n), a.Published, "%s: published equals the entries in Redis", id)
	}
	var stored int64
	for _, l := range logged(svc.Output(), "settled frames of a failed round trip", "") {
		if l.Stored != nil {
			stored += *l.Stored
		}
	}
	t.Logf("frames of timed-out round trips that Redis stored anyway, counted published: %d", stored)
}
