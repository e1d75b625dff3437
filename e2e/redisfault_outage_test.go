package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// rfConfig is the configuration of the Redis-fault tests: cameras cam1..camN
// of one camsim at 10 fps, 640x360 BGR, rings of ringSize frames, an
// unbounded stream (maxlen far above what a test writes, so XLEN counts
// every entry) and extra YAML (other top-level sections) appended.
func rfConfig(redisURL, camsimAddr string, cams, ringSize int, extra string) string {
	cfg := fmt.Sprintf(`
redis:
  url: %s
  maxlen: 100000
  retention: 1h
log: {level: info, format: json}
defaults:
  fps: 10
  format: BGR
  stall_timeout: 5s
  reconnect: {initial: 500ms, max: 2s}
  ring_size: %d
%s
cameras:
`, redisURL, ringSize, extra)
	for i := 1; i <= cams; i++ {
		cfg += fmt.Sprintf("  - id: cam%d\n    url: rtsp://%s/cam%d\n    codec: h264\n", i, camsimAddr, i)
	}
	return cfg
}

const (
	rfFPS       = 10
	rfFrameSize = 640 * 360 * 3 // BGR bytes per frame
)

// rfWaitPublishing waits until every key has more than n entries.
func rfWaitPublishing(t *testing.T, rc *redis.Client, svc *service, within time.Duration, n int64, keys ...string) {
	t.Helper()
	ctx := ctxT(t, within+10*time.Second)
	require.Eventually(t, func() bool {
		for _, k := range keys {
			if l, err := rc.XLen(ctx, k).Result(); err != nil || l <= n {
				return false
			}
		}
		return true
	}, within, 200*time.Millisecond, "%v did not reach %d entries; service output:\n%s", keys, n, tail(svc.Output(), 3000))
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
	rd := testenv.StartRedis(t)
	sim := startCamsim(t, camsimOpts{Cameras: cams, Codec: "h264", Size: "640x360", FPS: rfFPS})
	svc := startService(t, rfConfig(rd.URL, sim.Addr, cams, ringSize, "shutdown: {timeout: 10s}"))
	ids, keys := []string{"cam1", "cam2"}, []string{"frames:cam1", "frames:cam2"}
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr, MaxRetries: -1})
	defer rc.Close()

	rfWaitPublishing(t, rc, svc, 60*time.Second, 20, keys...)
	smp := rfStartSampler(t, svc, 500*time.Millisecond)
	time.Sleep(5 * time.Second)
	before, _ := rfReadProc(svc.cmd.Process.Pid)

	// Kill. Writes are held first so that the count of what this server
	// stored is exact; the XADDs it holds die with it, unexecuted.
	epoch1 := rfPauseAndCount(t, rc, keys...)
	tKill, peak := rfOutage(t, rd, svc, smp, outage)

	rd.Restart(t)
	tUp := time.Now()
	rfWaitPublishing(t, rc, svc, 30*time.Second, 10, keys...)
	resumed := time.Since(tUp)
	time.Sleep(5 * time.Second)
	end, _ := rfReadProc(svc.cmd.Process.Pid)
	smp.Stop()

	rfSignal(t, svc, syscall.SIGTERM)
	require.Equal(t, 0, svc.ExitCode(30*time.Second), "exit status after SIGTERM; output:\n%s", tail(svc.Output(), 3000))
	ctx := ctxT(t, 10*time.Second)
	epoch2 := map[string]int64{}
	for _, k := range keys {
		epoch2[k] = rc.XLen(ctx, k).Val()
	}

	// During the outage (after the first 3 s, until 2 s before the restart):
	// capture at ~fps, nothing published, every frame beyond what a ring
	// holds dropped as ring_overflow, none failing as redis_error.
	win := smp.Between(tKill.Add(3*time.Second), tKill.Add(outage-2*time.Second))
	require.GreaterOrEqual(t, len(win), 10, "samples during the outage")
	first, last := win[0], win[len(win)-1]
	for _, id := range ids {
		rate := rfRate(win, id)
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
		before.RSSMB, peak, end.RSSMB, ringsMB, before.Threads, end.Threads, before.FDs, end.FDs, resumed.Seconds())
	assert.Less(t, peak-before.RSSMB, ringsMB+64, "RSS growth during the outage (MB)")

	// Exact accounting from the final numbers.
	final := rfFinalAccounting(t, svc.Output(), ids...)
	for i, id := range ids {
		a := final[id]
		inRedis := epoch1[keys[i]] + epoch2[keys[i]]
		t.Logf("%s final: captured %d published %d dropped %v; entries in Redis %d (before kill %d + after restart %d)",
			id, a.Captured, a.Published, a.Dropped, inRedis, epoch1[keys[i]], epoch2[keys[i]])
		rfCheckIdentity(t, a)
		assert.Equal(t, uint64(inRedis), a.Published, "%s: published equals the entries actually stored in Redis", id)
		assert.Positive(t, a.Dropped["ring_overflow"], "%s: ring_overflow counted", id)
	}
}
