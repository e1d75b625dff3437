package e2e

import (
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

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
	rd := testenv.StartRedis(t)
	sim := startCamsim(t, camsimOpts{Cameras: cams, Codec: "h264", Size: "640x360", FPS: rfFPS})
	svc := startService(t, rfConfig(rd.URL, sim.Addr, cams, 16, ""))
	ids, keys := []string{"cam1", "cam2"}, []string{"frames:cam1", "frames:cam2"}
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr, MaxRetries: -1})
	defer rc.Close()

	rfWaitPublishing(t, rc, svc, 60*time.Second, 20, keys...)
	pid := rfPID(t, rc)
	smp := rfStartSampler(t, svc, 250*time.Millisecond)
	time.Sleep(3 * time.Second)

	type span struct{ from, to time.Time }
	var frozen []span
	for range freezes {
		thaw := rfFreeze(t, pid)
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
			rate := rfRate(win, id)
			t.Logf("freeze %d, %s: %.2f frames/s captured, published %d -> %d", i+1, id, rate,
				win[0].Cams[id].Published, win[len(win)-1].Cams[id].Published)
			assert.InDelta(t, rfFPS, rate, 2, "freeze %d, %s: frames_captured per second while Redis is frozen", i+1, id)
		}
	}
	all := smp.Between(slowFrom, slowTo)
	for _, id := range ids {
		rate := rfRate(all, id)
		a, b := all[0].Cams[id], all[len(all)-1].Cams[id]
		t.Logf("%s over the slow phase (%.0f s): %.2f frames/s captured, published +%d, dropped %v -> %v",
			id, slowTo.Sub(slowFrom).Seconds(), rate, b.Published-a.Published, a.Dropped, b.Dropped)
		assert.InDelta(t, rfFPS, rate, 2, "%s: frames_captured per second over the slow phase", id)
		assert.Greater(t, b.Dropped["ring_overflow"], a.Dropped["ring_overflow"], "%s: the full ring dropped oldest frames", id)
		assert.Greater(t, b.Published, a.Published, "%s: publishing went on between freezes", id)
	}

	rfSignal(t, svc, syscall.SIGTERM)
	require.Equal(t, 0, svc.ExitCode(30*time.Second), "exit status after SIGTERM; output:\n%s", tail(svc.Output(), 3000))
	final := rfFinalAccounting(t, svc.Output(), ids...)
	ctx := ctxT(t, 10*time.Second)
	for i, id := range ids {
		a := final[id]
		n := rc.XLen(ctx, keys[i]).Val()
		t.Logf("%s final: captured %d published %d dropped %v; XLEN %d", id, a.Captured, a.Published, a.Dropped, n)
		rfCheckIdentity(t, a)
		assert.Equal(t, uint64(n), a.Published, "%s: published equals the entries in Redis", id)
	}
	var stored int64
	for _, l := range rfLogs(svc.Output()) {
		if l.Msg == "settled frames of a failed round trip" && l.Stored != nil {
			stored += *l.Stored
		}
	}
	t.Logf("frames of timed-out round trips that Redis stored anyway, counted published: %d", stored)
}
