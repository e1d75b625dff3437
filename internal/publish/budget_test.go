package publish

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/stats"
	"gstcapture/internal/testenv"
)

const (
	bgr720  = 1280 * 720 * 3
	bgr1080 = 1920 * 1080 * 3
)

// jemalloc's classes: a quarter of the power of two below apart.
func TestAllocClass(t *testing.T) {
	for _, tc := range []struct{ n, want int64 }{
		{1, 8}, {8, 8}, {9, 16}, {1000, 1024}, {1025, 1280},
		{bgr720, 3 << 20}, {bgr1080, 6 << 20}, {4 << 20, 4 << 20}, {4<<20 + 1, 5 << 20},
	} {
		assert.Equal(t, tc.want, allocClass(tc.n), "allocClass(%d)", tc.n)
	}
	assert.Equal(t, int64(3<<20+entryOverhead), EntryCost(bgr720))
}

func TestPlanFitsTheBudget(t *testing.T) {
	loads := map[string]Load{"a": {FPS: 10, FrameBytes: bgr720}, "b": {FPS: 10, FrameBytes: bgr720}}
	// Unbounded: retention·fps each.
	got := Plan(loads, 10*time.Second, 0, 0, 1)
	assert.Equal(t, Limit{MaxLen: 100, Retention: 10 * time.Second}, got["a"])

	// 300 MB of Redis, auto share: 225 MB for 2 × 31.5 MB/s.
	budget := int64(float64(300<<20) * AutoShare)
	got = Plan(loads, 10*time.Second, 0, budget, 1)
	for _, id := range []string{"a", "b"} {
		l := got[id]
		assert.True(t, l.Shortened, id)
		assert.Equal(t, l.MaxLen, got["a"].MaxLen, "the same history for every camera")
		assert.InDelta(t, float64(l.MaxLen)/10, l.Retention.Seconds(), 1e-9)
	}
	assert.LessOrEqual(t, Footprint(loads, got), budget, "the streams at their limits fit the budget")
	assert.Greater(t, Footprint(loads, map[string]Limit{"a": {MaxLen: got["a"].MaxLen + 1}, "b": {MaxLen: got["b"].MaxLen + 1}}), budget,
		"one more entry each would not fit")

	// The cap still applies, and is not "shortened by the budget".
	got = Plan(loads, 10*time.Second, 5, budget, 1)
	assert.Equal(t, Limit{MaxLen: 5, Retention: 500 * time.Millisecond}, got["a"])

	// Too small for even one entry each: one each, said so.
	got = Plan(loads, 10*time.Second, 0, 1<<20, 1)
	assert.Equal(t, Limit{MaxLen: 1, Retention: 100 * time.Millisecond, Shortened: true}, got["a"])

	// Before its first frame a camera takes no share and keeps retention.
	got = Plan(map[string]Load{"a": {FPS: 10, FrameBytes: bgr1080}, "new": {FPS: 5}}, 10*time.Second, 0, budget, 1)
	assert.Equal(t, Limit{MaxLen: 50, Retention: 10 * time.Second}, got["new"])
	assert.True(t, got["a"].Shortened)

	// A smaller factor (after OOM replies) shrinks every share.
	full := Plan(loads, 10*time.Second, 0, budget, 1)["a"].MaxLen
	assert.Less(t, Plan(loads, 10*time.Second, 0, budget, 0.5)["a"].MaxLen, full)
}

func TestParseMemoryInfo(t *testing.T) {
	info := "# Memory\r\nused_memory:1032096\r\nmaxmemory:314572800\r\nmaxmemory_human:300.00M\r\nmaxmemory_policy:noeviction\r\n"
	n, pol := parseMemoryInfo(info)
	assert.Equal(t, int64(314572800), n)
	assert.Equal(t, "noeviction", pol)
}

// TestRedisFullIsNotDown: a real redis-server at its maxmemory refuses XADD
// with OOM. Here another tenant fills it after the shares were set. Those
// frames are dropped as redis_oom, Redis is "full", not "down", every share
// shrinks and the stream is trimmed, and publishing goes on within
// maxmemory.
func TestRedisFullIsNotDown(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	const maxmemory = 24 << 20
	require.NoError(t, c.ConfigSet(ctxTimeout(t, 5*time.Second), "maxmemory", strconv.Itoa(maxmemory)).Err())
	logs := &logBuf{}
	p := New(c, Options{Batch: 2, Retention: 10 * time.Second}, logs.logger(), nil)
	cam := stats.NewCamera("cam")
	var mu sync.Mutex
	var limits []Limit
	p.AddCamera(limitsOf{cam, func(l Limit) { mu.Lock(); limits = append(limits, l); mu.Unlock() }}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.WatchMemory(ctx)
	require.Eventually(t, func() bool { return p.MemoryBudget() > 0 }, 5*time.Second, 10*time.Millisecond, "budget from INFO")
	ring := newTestRing(8, cam)
	fs := newFrames(t)
	stop := runAsync(p, cam, ring)

	push := func(n int) (full, down bool, peak int64) {
		for i := 0; i < n; i++ {
			ring.Push(fs.New(cam.ID, 640, 480, frame.BGR)) // 900 KiB: 1 MiB in Redis
			time.Sleep(25 * time.Millisecond)
			full, down = full || p.Full(), down || !p.Healthy()
			if i%5 == 0 {
				peak = max(peak, testenv.UsedMemory(t, c))
			}
		}
		return full, down, peak
	}
	_, _, peak := push(40)
	beforeFiller := cam.Published()
	assert.Zero(t, cam.Dropped(stats.DropRedisOOM), "the shares fit maxmemory: no OOM")
	// Another tenant takes what is left, 1 MiB at a time (one 8 MiB SET
	// would be refused: its argument counts while it is read).
	chunk := strings.Repeat("x", 1<<20)
	for i := 0; i < 8; i++ {
		if err := c.Append(ctxTimeout(t, 5*time.Second), "filler", chunk).Err(); err != nil {
			require.Contains(t, err.Error(), "OOM", "filler chunk %d", i)
			break
		}
	}
	wasFull, wasDown, peak2 := push(80)
	require.Eventually(t, func() bool { return ring.Len() == 0 }, 10*time.Second, 10*time.Millisecond)
	stop()

	assert.True(t, wasFull, "Redis refused XADD for want of memory once the filler took its room")
	assert.False(t, wasDown, "an OOM reply is not Redis down")
	assert.NotZero(t, cam.Dropped(stats.DropRedisOOM), "refused frames are counted as redis_oom")
	assert.Zero(t, cam.Dropped(stats.DropRedisError))
	assert.Greater(t, cam.Published()-beforeFiller, uint64(60), "publishing goes on once the shares shrank")
	assert.Len(t, logs.lines("redis full"), 1, "said once")
	assert.Empty(t, logs.lines("redis down"))
	n, err := c.XLen(ctxTimeout(t, 5*time.Second), "frames:cam").Result()
	require.NoError(t, err)
	mu.Lock()
	last := limits[len(limits)-1]
	mu.Unlock()
	assert.True(t, last.Shortened)
	assert.LessOrEqual(t, n, last.MaxLen, "the stream is trimmed to its shrunk MAXLEN")
	assert.LessOrEqual(t, max(peak, peak2), int64(maxmemory)+2<<20, "used_memory stays about at maxmemory (a frame in flight)")
	t.Logf("maxlen %d (retention %s), %d published, %d redis_oom, peak used_memory %d then %d, of %d",
		last.MaxLen, last.Retention, cam.Published(), cam.Dropped(stats.DropRedisOOM), peak, peak2, maxmemory)
	fs.assertReleasedOnce(0)
	assertIdentity(t, cam, 0)
}

// OOM replies close together shrink the shares once; five minutes without
// one undo a shrink, so a passing spike does not cut the history for good.
func TestShrinkCoalescesAndRegrows(t *testing.T) {
	b := newBudget(10*time.Second, 0, 100<<20, testLogger())
	n := b.add("a", 10)
	b.resize("a", 1<<20)
	full := n.Load()
	require.Equal(t, int64(97), full, "(100 MiB - 2 entries) / (1 MiB + 512 B) per entry / 10 fps = 9.79 s")
	t0 := time.Now()
	assert.True(t, b.shrink(t0))
	once := n.Load()
	assert.Less(t, once, full)
	assert.False(t, b.shrink(t0.Add(500*time.Millisecond)), "the same event")
	assert.Equal(t, once, n.Load())
	assert.True(t, b.shrink(t0.Add(1500*time.Millisecond)))
	twice := n.Load()
	assert.Less(t, twice, once)
	b.regrow(t0.Add(4 * time.Minute))
	assert.Equal(t, twice, n.Load(), "too soon")
	b.regrow(t0.Add(7 * time.Minute))
	assert.Equal(t, once, n.Load(), "one shrink undone")
	b.regrow(t0.Add(13 * time.Minute))
	assert.Equal(t, full, n.Load(), "back to the full share")
}

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// limitsOf hands each limit the camera is told to a test as well.
type limitsOf struct {
	*stats.Camera
	got func(Limit)
}

func (l limitsOf) SetRetention(maxLen int64, retention time.Duration, shortened bool) {
	l.got(Limit{MaxLen: maxLen, Retention: retention, Shortened: shortened})
	l.Camera.SetRetention(maxLen, retention, shortened)
}

// JPEG frames vary in size: the budget plans with their running mean
// (frame.SizeEstimate), so MAXLEN is what the mean gives, not what the
// last frame happened to weigh; the entries say JPEG, stride 0 and their
// own size.
func TestBudgetWithJPEGFrames(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	p := New(c, Options{Batch: 8, Retention: 10 * time.Second, MemoryBudget: 4 << 20}, testLogger(), nil)
	cam := stats.NewCamera("jpeg")
	p.AddCamera(cam, 10)
	ring := newTestRing(400, cam)
	fs := newFrames(t)
	var sizes []int
	for i := range 300 {
		n := 100_000 + []int{0, 5000, -5000, 8000, -8000}[i%5]
		sizes = append(sizes, n)
		ring.Push(fs.NewJPEG(cam.ID, 1280, 720, n))
	}
	require.Equal(t, 300, p.Flush(ctxTimeout(t, 20*time.Second), cam, ring))
	// (4 MiB - 2 entries) / (10 fps x EntryCost(100000)) = 3.44 s: 34 entries.
	const wantMaxLen = 34
	require.Equal(t, int64(114688+512), EntryCost(100_000))
	s := cam.Snapshot(time.Now())
	assert.Equal(t, int64(wantMaxLen), s.RedisMaxLen)
	assert.True(t, s.RetentionShortened)
	key := StreamKey(DefaultStream, cam.ID)
	n, err := c.XLen(ctxTimeout(t, time.Second), key).Result()
	require.NoError(t, err)
	assert.Equal(t, int64(wantMaxLen), n, "one entry per stream node: trimmed exactly")
	msgs, err := c.XRevRangeN(ctxTimeout(t, time.Second), key, "+", "-", 5).Result()
	require.NoError(t, err)
	for i, m := range msgs {
		want := sizes[len(sizes)-1-i]
		assert.Equal(t, "JPEG", m.Values[FieldFormat])
		assert.Equal(t, "0", m.Values[FieldStride])
		assert.Equal(t, strconv.Itoa(want), m.Values[FieldSizeBytes])
		assert.Len(t, m.Values[FieldData], want)
		assert.Equal(t, [2]string{"1280", "720"}, [2]string{m.Values[FieldWidth].(string), m.Values[FieldHeight].(string)})
	}
	fs.assertReleasedOnce(0)
	assertIdentity(t, cam, 0)
}
