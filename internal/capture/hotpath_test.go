package capture

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"gstcapture/internal/config"
	"gstcapture/internal/frame"
	"gstcapture/internal/stats"
	"gstcapture/internal/telemetry"
	"gstcapture/internal/validate"
)

// framePool hands out frames the way internal/appsink does: releasing a
// frame resets it and puts it back for the next sample at once, so anything
// still reading a frame after handing it on reads a reused one.
type framePool struct {
	free chan *frame.Frame
	rng  *rand.Rand
}

func newFramePool(n int) *framePool {
	p := &framePool{free: make(chan *frame.Frame, n), rng: rand.New(rand.NewPCG(1, 2))}
	for range n {
		p.free <- &frame.Frame{}
	}
	return p
}

// get returns a 16x16 GRAY8 frame of noise, which passes validation, or
// nil when every frame is still held downstream.
func (p *framePool) get() *frame.Frame {
	var f *frame.Frame
	select {
	case f = <-p.free:
	default:
		return nil
	}
	data := make([]byte, 16*16)
	for i := range data {
		data[i] = byte(p.rng.Uint32())
	}
	now := time.Now()
	f.SinkTime, f.CaptureTime, f.CaptureSource = now, now, frame.SourceArrival
	f.Width, f.Height, f.Stride, f.Format, f.Data = 16, 16, 16, frame.GRAY8, data
	f.SetRelease(func() {
		f.Reset()
		p.free <- f
	})
	return f
}

func newTestCamera(t *testing.T, id string, rules validate.Rules) (*camera, *telemetry.Metrics, *telemetry.Tracer) {
	t.Helper()
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "")
	}
	m := telemetry.NewMetrics(nil, []string{id}, telemetry.BuildInfo{})
	// Every span sampled, so the tracer reads every frame it is given.
	tr, err := telemetry.NewTracer(context.Background(), m, telemetry.TracingOptions{SampleRatio: 1, Exporter: tracetest.NewNoopExporter()},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = tr.Shutdown(ctx)
	})
	cam := config.Camera{ID: id, Settings: config.Settings{RingSize: 4}}
	return newCamera(Plan{Camera: cam}, stats.NewCamera(id), rules, m.Camera(id), tr), m, tr
}

// The sink side lets go of each frame once the ring has it: a
// publisher goroutine that records, releases and so resets frames as fast as
// it can must never race with onFrame (run with -race), and every frame is
// accounted for.
func TestOnFrameLetsGoAfterHandOff(t *testing.T) {
	const frames = 3000
	c, m, tr := newTestCamera(t, "cam", validate.DefaultRules())
	rec := m.PublishRecorder(tr)
	pool := newFramePool(8)

	var published atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the publisher: what publish.worker.send does with a batch
		defer wg.Done()
		buf := make([]*frame.Frame, 0, 2)
		for {
			batch := c.ring.PopBatch(buf[:0])
			for _, f := range batch {
				now := time.Now()
				rec.Published(f.CameraID, f, now, now)
				f.Release()
				published.Add(1)
			}
			if len(batch) > 0 {
				continue
			}
			select {
			case <-c.ring.Ready():
			case <-stop:
				return
			}
		}
	}()
	go func() { // a snapshot client asking for the newest frame
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			if p := c.snap.latest(ctx); p != nil {
				assert.Equal(t, "cam", p.CameraID)
			}
			cancel()
		}
	}()

	for sent := 0; sent < frames; {
		f := pool.get()
		if f == nil {
			time.Sleep(10 * time.Microsecond) // everything is downstream
			continue
		}
		c.onFrame(f)
		sent++
	}
	close(stop)
	wg.Wait()
	left := c.ring.Close()
	for _, f := range left {
		f.Release()
	}

	st := c.stats
	assert.EqualValues(t, frames, st.Captured())
	assert.EqualValues(t, frames, published.Load()+st.DroppedTotal()+uint64(len(left)),
		"captured = published + dropped + left in ring")
	assert.Len(t, pool.free, cap(pool.free), "every frame given back")
}

// A rule with action pass keeps the frame: it goes into the ring marked with
// the rule (the Redis flags field) and is counted as flagged, not dropped.
func TestOnFramePassFlagsFrame(t *testing.T) {
	rules := validate.DefaultRules()
	rules.Black.Action = validate.Pass
	c, _, _ := newTestCamera(t, "cam", rules)
	black := func(corrupt bool) *frame.Frame {
		return &frame.Frame{Width: 16, Height: 16, Stride: 16, Format: frame.GRAY8, Data: make([]byte, 16*16),
			SinkTime: time.Now(), Corrupt: corrupt}
	}

	c.onFrame(black(false))
	c.onFrame(black(true)) // corrupt is still dropped
	got := c.ring.PopBatch(make([]*frame.Frame, 0, 4))
	require.Len(t, got, 1)
	assert.Equal(t, "black", got[0].Flags)
	assert.EqualValues(t, 1, got[0].Seq)

	st := c.stats
	assert.EqualValues(t, 1, st.Flagged(stats.DropBlack))
	assert.Zero(t, st.Dropped(stats.DropBlack))
	assert.EqualValues(t, 1, st.Dropped(stats.DropCorrupt))
	assert.Equal(t, map[string]uint64{"black": 1}, st.Snapshot(time.Now()).Flagged)

	// A frame that passes every rule carries no flags.
	c.onFrame(newFramePool(1).get())
	got = c.ring.PopBatch(make([]*frame.Frame, 0, 4))
	require.Len(t, got, 1)
	assert.Empty(t, got[0].Flags)
}

// A sample the appsink could not read is captured and dropped as
// pull_error by onFrame, so captured = published + dropped still holds.
func TestOnFramePullErrorIsDropped(t *testing.T) {
	c, _, _ := newTestCamera(t, "cam", validate.DefaultRules())
	released := false
	f := &frame.Frame{PullError: true, SinkTime: time.Now()}
	f.SetRelease(func() { released = true })
	c.onFrame(f)
	c.onFrame(newFramePool(1).get())

	st := c.stats
	assert.EqualValues(t, 2, st.Captured())
	assert.EqualValues(t, 1, st.Dropped(stats.DropPullError))
	assert.EqualValues(t, 1, st.DroppedTotal(), "nothing else: not validated as a size failure")
	assert.True(t, released)
	assert.Equal(t, 1, c.ring.Len(), "only the readable frame is queued")
	assert.Equal(t, st.Captured(), st.Published()+st.DroppedTotal()+uint64(c.ring.Len()))
}

// A frame above max_width x max_height is captured and dropped as
// oversize, released, and not taken for the camera's newest frame (the
// supervisor ends the pipeline instead of seeing a stream).
func TestOnFrameOversizeIsDropped(t *testing.T) {
	c, _, _ := newTestCamera(t, "cam", validate.DefaultRules())
	c.plan.Camera.Settings.MaxWidth, c.plan.Camera.Settings.MaxHeight = 8, 8
	pool := newFramePool(1)
	c.onFrame(pool.get()) // 16x16

	st := c.stats
	assert.EqualValues(t, 1, st.Captured())
	assert.EqualValues(t, 1, st.Dropped(stats.DropOversize))
	assert.Equal(t, map[string]uint64{"oversize": 1}, st.Snapshot(time.Now()).Dropped, "/health shows it")
	assert.True(t, st.LastFrame().IsZero())
	assert.Zero(t, c.ring.Len())
	assert.Len(t, pool.free, 1, "released")
	assert.Equal(t, st.Captured(), st.Published()+st.DroppedTotal()+uint64(c.ring.Len()))
}
