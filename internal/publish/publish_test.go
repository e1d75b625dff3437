package publish

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/stats"
	"gstcapture/internal/testenv"
)

// logBuf collects log output for "one line per state change" checks.
type logBuf struct{ testenv.Output }

func (l *logBuf) lines(substr string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return out
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

type recorded struct {
	cameraID string
	seq      uint64
	sinkLat  time.Duration
	capLat   time.Duration
}

type fakeRecorder struct {
	mu        sync.Mutex
	published []recorded
	roundTrip int
	frames    int
}

func (r *fakeRecorder) PublishDuration(cameraID string, d time.Duration, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roundTrip++
	r.frames += n
}

func (r *fakeRecorder) Published(cameraID string, f *frame.Frame, _, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.published = append(r.published, recorded{cameraID, f.Seq, now.Sub(f.SinkTime), now.Sub(f.CaptureTime)})
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// runAsync starts Run and returns a function that stops it and waits.
func runAsync(p *Publisher, cam *stats.Camera, src Source) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx, cam, src)
	}()
	return func() {
		cancel()
		<-done
	}
}

// xrange reads raw entries, keeping field order (go-redis' XMessage is a map).
func xrange(t *testing.T, c *redis.Client, key string) [][]string {
	t.Helper()
	res, err := c.Do(ctxTimeout(t, 5*time.Second), "XRANGE", key, "-", "+").Slice()
	require.NoError(t, err)
	out := make([][]string, len(res))
	for i, e := range res {
		pair := e.([]any)
		kv := pair[1].([]any)
		for _, x := range kv {
			out[i] = append(out[i], x.(string))
		}
	}
	return out
}

func assertIdentity(t *testing.T, cam *stats.Camera, left int) {
	t.Helper()
	assert.Equal(t, cam.Captured(), cam.Published()+cam.DroppedTotal()+uint64(left),
		"captured = published + dropped + left in ring (published %d, dropped %v, left %d)",
		cam.Published(), cam.Snapshot(time.Now()).Dropped, left)
}

func TestPublishSchema(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	rec := &fakeRecorder{}
	p := New(c, Options{Batch: 4, Instance: "run1"}, nil, rec)
	cam := stats.NewCamera("cam-1")
	ring := newTestRing(64, cam)
	fs := newFrames(t)

	formats := []frame.Format{frame.BGR, frame.I420, frame.NV12, frame.GRAY8, frame.RGB}
	const n = 10
	for i := range n {
		f := fs.New(cam.ID, 33, 7, formats[i%len(formats)]) // odd sizes: padded strides
		if i%2 == 0 {
			f.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
			f.TraceState = "vendor=x"
		}
		if i == 3 {
			f.CaptureSource = frame.SourceArrival
			f.PTS = -1
		}
		ring.Push(f)
	}
	stop := runAsync(p, cam, ring)
	require.Eventually(t, func() bool { return cam.Published() == n }, 5*time.Second, 5*time.Millisecond)
	stop()

	entries := xrange(t, c, "frames:cam-1")
	require.Len(t, entries, n)
	ids := map[string]bool{}
	for _, e := range entries {
		seq, err := strconv.ParseUint(e[7], 10, 64)
		require.NoError(t, err)
		tf := fs.bySeq(seq)
		f := tf.Frame
		want := []string{
			"v", "1",
			"frame_id", FrameID("cam-1", "run1", seq),
			"camera_id", "cam-1",
			"seq", strconv.FormatUint(seq, 10),
			"ts", strconv.FormatInt(f.CaptureTime.UnixNano(), 10),
			"ts_source", string(f.CaptureSource),
			"pts", strconv.FormatInt(int64(f.PTS), 10),
			"width", "33",
			"height", "7",
			"format", string(f.Format),
			"stride", strconv.Itoa(f.Stride),
			"size_bytes", strconv.Itoa(len(tf.want)),
			"data", string(tf.want),
		}
		if f.TraceParent != "" {
			want = append(want, "traceparent", f.TraceParent, "tracestate", f.TraceState)
		}
		assert.Equal(t, want, e, "entry of seq %d", seq)
		assert.True(t, bytes.Equal(tf.want, []byte(e[25])), "binary data intact for seq %d", seq)
		assert.False(t, ids[e[3]], "frame_id %s unique", e[3])
		ids[e[3]] = true
	}
	assert.Equal(t, "-1", entries[3][13], "unknown pts")
	assert.Equal(t, "arrival", entries[3][11])

	fs.assertReleasedOnce(0)
	assertIdentity(t, cam, ring.Len())
	assert.True(t, p.Healthy())

	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.published, n)
	assert.Equal(t, n, rec.frames)
	assert.GreaterOrEqual(t, rec.roundTrip, n/4)
	for _, r := range rec.published {
		assert.Equal(t, "cam-1", r.cameraID)
		assert.GreaterOrEqual(t, r.sinkLat, time.Duration(0))
		assert.GreaterOrEqual(t, r.capLat, r.sinkLat, "capture precedes the appsink")
	}
}

func TestMaxLenApproximateTrimming(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	const maxLen, total = 200, 3000
	cases := []struct {
		name  string
		w, h  int
		slack int64
	}{
		// Tiny entries: "~" trims whole radix-tree nodes
		// (stream-node-max-entries, default 100), so the length stays at
		// least MaxLen and under MaxLen + one node.
		{"tiny", 8, 8, 100},
		// Real frames exceed stream-node-max-bytes (4 KiB): one entry per
		// node, so trimming is in effect exact.
		{"frame", 64, 64, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := New(c, Options{MaxLen: maxLen, Batch: 32}, nil, nil)
			cam := stats.NewCamera("trim-" + tc.name)
			ring := newTestRing(total, cam)
			fs := newFrames(t)
			for range total {
				ring.Push(fs.New(cam.ID, tc.w, tc.h, frame.GRAY8))
			}
			require.Equal(t, total, p.Flush(ctxTimeout(t, 10*time.Second), cam, ring))

			n, err := c.XLen(ctxTimeout(t, time.Second), StreamKey(DefaultStream, cam.ID)).Result()
			require.NoError(t, err)
			t.Logf("XLEN after %d XADD MAXLEN ~ %d of %dx%d: %d", total, maxLen, tc.w, tc.h, n)
			assert.GreaterOrEqual(t, n, int64(maxLen))
			assert.LessOrEqual(t, n, int64(maxLen)+tc.slack)
			fs.assertReleasedOnce(0)
			assertIdentity(t, cam, 0)
		})
	}
}

// MaxLen 0 (redis.maxlen: 0) sends XADD without MAXLEN: nothing is trimmed.
func TestMaxLenZeroKeepsEveryEntry(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	const total = 1500 // above a node's 100 entries, so "~" trimming would show
	p := New(c, Options{MaxLen: 0, Batch: 32}, nil, nil)
	cam := stats.NewCamera("untrimmed")
	ring := newTestRing(total, cam)
	fs := newFrames(t)
	for range total {
		ring.Push(fs.New(cam.ID, 8, 8, frame.GRAY8))
	}
	// A MAXLEN 0 clause would empty the stream on every XADD.
	require.Equal(t, total, p.Flush(ctxTimeout(t, 10*time.Second), cam, ring))

	n, err := c.XLen(ctxTimeout(t, time.Second), StreamKey(DefaultStream, cam.ID)).Result()
	require.NoError(t, err)
	assert.Equal(t, int64(total), n)
	fs.assertReleasedOnce(0)
	assertIdentity(t, cam, 0)
}

func TestRedisDownAndBack(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	logs := &logBuf{}
	p := New(c, Options{Batch: 8, MaxLen: 1000, Timeout: 500 * time.Millisecond}, logs.logger(), nil)
	cam := stats.NewCamera("cam-fault")
	ring := newTestRing(32, cam)
	fs := newFrames(t)

	// Producer: ~1 kHz small frames, like a streaming thread that never waits.
	prodCtx, stopProd := context.WithCancel(context.Background())
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-prodCtx.Done():
				return
			case <-tick.C:
				ring.Push(fs.New(cam.ID, 16, 16, frame.BGR))
			}
		}
	}()
	stopRun := runAsync(p, cam, ring)

	require.Eventually(t, func() bool { return cam.Published() > 100 }, 5*time.Second, 5*time.Millisecond)
	require.True(t, p.Healthy())

	rs.Stop()
	require.Eventually(t, func() bool { return !p.Healthy() }, 5*time.Second, 5*time.Millisecond)
	assert.Error(t, p.ping(ctxTimeout(t, time.Second), cam.ID))
	// The round trip in flight at the kill failed; its frames are dropped
	// (redis_error), or unconfirmed until Redis answers again.
	pending, _ := p.Unconfirmed(cam.ID)
	failed := cam.Dropped(stats.DropRedisError) + uint64(pending)
	assert.Positive(t, failed, "the round trip cut by the kill is counted")
	publishedWhileDown := cam.Published()
	overflowAtDown := cam.Dropped(stats.DropRingOverflow)
	time.Sleep(1500 * time.Millisecond) // several failed attempts and growing backoff
	// While Redis is down the publisher takes no more frames: the ring keeps
	// the newest and drops the oldest.
	assert.Equal(t, publishedWhileDown, cam.Published(), "nothing published while Redis is down")
	assert.Greater(t, cam.Dropped(stats.DropRingOverflow), overflowAtDown+100,
		"the ring dropped oldest while Redis was down (pushed at up to 1 kHz for 1.5 s, holds 32)")
	pending, _ = p.Unconfirmed(cam.ID)
	assert.Equal(t, failed, cam.Dropped(stats.DropRedisError)+uint64(pending),
		"no more frames fail while Redis is down: they wait in the ring")

	rs.Restart(t)
	require.Eventually(t, func() bool { return cam.Published() > publishedWhileDown+100 }, 10*time.Second, 10*time.Millisecond,
		"publishing resumes by itself")
	require.True(t, p.Healthy())

	stopProd()
	<-prodDone
	stopRun()

	assertIdentity(t, cam, ring.Len())
	fs.assertReleasedOnce(ring.Len())

	down, back := logs.lines("redis down"), logs.lines("redis back")
	t.Logf("redis_error drops %d in %d log lines", failed, len(down))
	require.NotEmpty(t, down)
	require.NotEmpty(t, back)
	// One line per state change, never one per failure: down and back alternate.
	all := logs.lines("redis ")
	for i, line := range all {
		if i%2 == 0 {
			assert.Contains(t, line, "redis down", "line %d", i)
		} else {
			assert.Contains(t, line, "redis back", "line %d", i)
		}
	}
	assert.Len(t, down, 1, "one line for the whole outage, however many attempts failed")
	pending, _ = p.Unconfirmed(cam.ID)
	assert.Zero(t, pending, "the cut round trip was settled once Redis answered")
	assert.Contains(t, down[0], "camera_id=cam-fault")

	// Drain the rest; now every frame is accounted for and released.
	p.Flush(ctxTimeout(t, 5*time.Second), cam, ring)
	assertIdentity(t, cam, 0)
	fs.assertReleasedOnce(0)
}

func TestFlushPublishesRemaining(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	p := New(c, Options{Batch: 16}, nil, nil)
	cam := stats.NewCamera("cam-flush")
	ring := newTestRing(100, cam)
	fs := newFrames(t)
	for range 100 {
		ring.Push(fs.New(cam.ID, 32, 32, frame.BGR))
	}
	assert.Equal(t, 100, p.Flush(ctxTimeout(t, 5*time.Second), cam, ring))
	assert.Zero(t, ring.Len())
	assert.Equal(t, uint64(100), cam.Published())
	assert.Zero(t, cam.Dropped(stats.DropShutdown))
	n, err := c.XLen(ctxTimeout(t, time.Second), "frames:cam-flush").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(100), n)
	fs.assertReleasedOnce(0)
	assertIdentity(t, cam, 0)

	// A Flush whose deadline has already passed only drops.
	ring.Push(fs.New(cam.ID, 32, 32, frame.BGR))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.Zero(t, p.Flush(ctx, cam, ring))
	assert.Equal(t, uint64(1), cam.Dropped(stats.DropShutdown))
	fs.assertReleasedOnce(0)
	assertIdentity(t, cam, 0)
}

func TestFlushRedisDownRespectsDeadline(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	logs := &logBuf{}
	p := New(c, Options{Batch: 16}, logs.logger(), nil)
	cam := stats.NewCamera("cam-flush-down")
	ring := newTestRing(1000, cam)
	fs := newFrames(t)
	for range 1000 {
		ring.Push(fs.New(cam.ID, 32, 32, frame.BGR))
	}
	rs.Stop()

	const deadline = 400 * time.Millisecond
	start := time.Now()
	published := p.Flush(ctxTimeout(t, deadline), cam, ring)
	took := time.Since(start)

	assert.Zero(t, published)
	assert.Less(t, took, deadline+300*time.Millisecond, "Flush returns at its deadline")
	assert.Greater(t, cam.Dropped(stats.DropShutdown), uint64(0))
	assert.False(t, p.Healthy())
	assert.Zero(t, ring.Len())
	fs.assertReleasedOnce(0)
	assertIdentity(t, cam, 0)
	assert.Len(t, logs.lines("shutdown deadline passed"), 1)
	t.Logf("flush with redis down: %s, redis_error %d, shutdown %d", took.Round(time.Millisecond),
		cam.Dropped(stats.DropRedisError), cam.Dropped(stats.DropShutdown))
}

func TestFlushDeadlineMidRoundTrip(t *testing.T) {
	// A Redis that accepts the connection but never answers: the round trip
	// is cut by Flush's deadline, and those frames count as shutdown drops,
	// not redis_error, without marking Redis down.
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	p := New(c, Options{Batch: 16, Timeout: 5 * time.Second}, nil, nil)
	cam := stats.NewCamera("cam-hang")
	ring := newTestRing(100, cam)
	fs := newFrames(t)
	for range 40 {
		ring.Push(fs.New(cam.ID, 8, 8, frame.GRAY8))
	}
	// CLIENT PAUSE WRITE holds every write command for the pause duration.
	require.NoError(t, c.Do(ctxTimeout(t, time.Second), "CLIENT", "PAUSE", "3000", "WRITE").Err())

	start := time.Now()
	assert.Zero(t, p.Flush(ctxTimeout(t, 300*time.Millisecond), cam, ring))
	assert.Less(t, time.Since(start), time.Second)
	assert.Equal(t, uint64(40), cam.Dropped(stats.DropShutdown))
	assert.Zero(t, cam.Dropped(stats.DropRedisError))
	assert.True(t, p.Healthy())
	fs.assertReleasedOnce(0)
	assertIdentity(t, cam, 0)
}

// A camera's worker pings a Redis it saw fail until it answers: each
// failure keeps it down, an answer brings it back, one line each.
func TestPingAndHealthy(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	logs := &logBuf{}
	p := New(c, Options{}, logs.logger(), nil)
	w := p.newWorker(stats.NewCamera("cam-ping"))
	ping := func() error {
		_, err := w.recover(ctxTimeout(t, time.Second))
		return err
	}
	assert.True(t, p.Healthy())
	require.NoError(t, ping())

	rs.Stop()
	assert.Error(t, ping())
	assert.Error(t, ping())
	assert.False(t, p.Healthy())

	rs.Restart(t)
	require.NoError(t, ping())
	assert.True(t, p.Healthy())
	assert.Len(t, logs.lines("redis down"), 1)
	assert.Len(t, logs.lines("redis back"), 1)
}

func TestManyCamerasOnePublisher(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	p := New(c, Options{Batch: 4}, nil, nil)
	fs := newFrames(t)
	type camRing struct {
		cam  *stats.Camera
		ring *testRing
		stop func()
	}
	var cams []camRing
	for i := range 4 {
		cam := stats.NewCamera(fmt.Sprintf("cam-%d", i))
		ring := newTestRing(1000, cam)
		cams = append(cams, camRing{cam, ring, runAsync(p, cam, ring)})
	}
	var wg sync.WaitGroup
	for _, cr := range cams {
		wg.Go(func() {
			for range 200 {
				cr.ring.Push(fs.New(cr.cam.ID, 16, 16, frame.GRAY8))
				time.Sleep(100 * time.Microsecond)
			}
		})
	}
	wg.Wait()
	for _, cr := range cams {
		require.Eventually(t, func() bool { return cr.cam.Published() == 200 }, 5*time.Second, 5*time.Millisecond)
		cr.stop()
		n, err := c.XLen(ctxTimeout(t, time.Second), "frames:"+cr.cam.ID).Result()
		require.NoError(t, err)
		assert.Equal(t, int64(200), n)
		assertIdentity(t, cr.cam, 0)
	}
	fs.assertReleasedOnce(0)
}

func TestNewDefaults(t *testing.T) {
	logs := &logBuf{}
	p := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), Options{}, logs.logger(), nil)
	assert.Len(t, logs.lines("ContextTimeoutEnabled=false"), 1, "warns about a client that ignores deadlines")
	o := p.Options()
	assert.Equal(t, DefaultStream, o.Stream)
	assert.Equal(t, DefaultBatch, o.Batch)
	assert.Equal(t, DefaultTimeout, o.Timeout)
	assert.NotEmpty(t, o.Instance)
}

// While Redis is down the worker retries on internal/backoff's schedule:
// from minBackoff, doubling, capped at maxBackoff, each delay in
// [base/2, base] (equal jitter).
func TestRetryBackoff(t *testing.T) {
	b := retryBackoff()
	want := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000}
	for i, w := range want {
		w *= time.Millisecond
		d := b.Next()
		assert.LessOrEqual(t, d, w, "step %d", i)
		assert.GreaterOrEqual(t, d, w/2, "jitter within half, step %d", i)
	}
	b.Reset()
	assert.LessOrEqual(t, b.Next(), minBackoff)
}
