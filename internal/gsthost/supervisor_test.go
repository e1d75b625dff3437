package gsthost

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/stats"
)

func TestMain(m *testing.M) {
	Init(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
	os.Exit(m.Run())
}

// collector counts frames handed out by a supervisor and releases them.
type collector struct {
	n    atomic.Int64
	mu   sync.Mutex
	last frame.Frame
}

func (c *collector) handle(f *frame.Frame) {
	c.n.Add(1)
	c.mu.Lock()
	c.last = frame.Frame{Width: f.Width, Height: f.Height, Stride: f.Stride, Format: f.Format, Data: nil}
	c.mu.Unlock()
	f.Release()
}

func runSupervisor(t *testing.T, spec Spec, hooks Hooks) (*stats.Camera, *collector, *atomic.Int64, context.CancelFunc, chan struct{}) {
	t.Helper()
	cam := stats.NewCamera(spec.CameraID)
	col := &collector{}
	frozen := &atomic.Int64{}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sup := NewSupervisor(spec, cam, col.handle, log, nil, frozen, hooks)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sup.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("supervisor did not stop")
		}
	})
	return cam, col, frozen, cancel, done
}

// A source that ends (EOS) is rebuilt, and frames keep coming.
func TestSupervisorRebuildsOnEOS(t *testing.T) {
	spec := Spec{
		CameraID:         "eos",
		Launch:           "videotestsrc name=src is-live=true num-buffers=10 ! video/x-raw,width=64,height=48,framerate=50/1 ! videoconvert ! video/x-raw,format=BGR ! appsink name=sink sync=false",
		StallTimeout:     2 * time.Second,
		ReconnectInitial: 100 * time.Millisecond,
		ReconnectMax:     200 * time.Millisecond,
	}
	cam, col, _, _, _ := runSupervisor(t, spec, Hooks{})
	require.Eventually(t, func() bool { return cam.ReconnectsByReason()["eos"] >= 3 }, 15*time.Second, 20*time.Millisecond)
	assert.GreaterOrEqual(t, col.n.Load(), int64(30), "frames across rebuilds")
	col.mu.Lock()
	assert.Equal(t, frame.BGR, col.last.Format)
	assert.Equal(t, 64, col.last.Width)
	col.mu.Unlock()
}

// A pipeline that stops delivering frames is rebuilt after stall_timeout.
func TestSupervisorWatchdog(t *testing.T) {
	spec := Spec{
		CameraID: "stall",
		// One frame every 10 s: after the first, nothing for far longer than stall_timeout.
		Launch:           "videotestsrc name=src is-live=true ! video/x-raw,width=64,height=48,framerate=1/10 ! videoconvert ! video/x-raw,format=BGR ! appsink name=sink sync=false",
		StallTimeout:     time.Second,
		ReconnectInitial: 100 * time.Millisecond,
		ReconnectMax:     200 * time.Millisecond,
	}
	cam, _, _, _, _ := runSupervisor(t, spec, Hooks{})
	start := time.Now()
	require.Eventually(t, func() bool { return cam.ReconnectsByReason()["stall"] >= 1 }, 10*time.Second, 20*time.Millisecond)
	elapsed := time.Since(start)
	t.Logf("stall detected after %s (stall_timeout 1s)", elapsed)
	assert.Less(t, elapsed, 3*time.Second)
	assert.Equal(t, stats.StateStalled, cam.State())
}

// A teardown that misses its deadline is abandoned and counted as frozen,
// and the camera keeps being supervised.
func TestSupervisorFrozenTeardown(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var blocked atomic.Int64
	hooks := Hooks{BeforeTeardown: func(string) {
		if blocked.Add(1) == 1 {
			<-release // wedge the first teardown only
		}
	}}
	spec := Spec{
		CameraID:         "frozen",
		Launch:           "videotestsrc name=src is-live=true num-buffers=5 ! video/x-raw,width=64,height=48,framerate=50/1 ! videoconvert ! video/x-raw,format=BGR ! appsink name=sink sync=false",
		StallTimeout:     2 * time.Second,
		ReconnectInitial: 100 * time.Millisecond,
		ReconnectMax:     200 * time.Millisecond,
		TeardownTimeout:  300 * time.Millisecond,
	}
	cam, _, frozen, _, _ := runSupervisor(t, spec, hooks)
	require.Eventually(t, func() bool { return frozen.Load() == 1 }, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, uint64(1), cam.Frozen.Load())
	// Supervision continues past the abandoned pipeline.
	require.Eventually(t, func() bool { return cam.ReconnectsByReason()["eos"] >= 3 }, 10*time.Second, 20*time.Millisecond)
}

// An unparsable launch string is an error state, retried with backoff, not a crash.
func TestSupervisorBadLaunch(t *testing.T) {
	spec := Spec{CameraID: "bad", Launch: "nosuchelement ! appsink name=sink", StallTimeout: time.Second,
		ReconnectInitial: 100 * time.Millisecond, ReconnectMax: 100 * time.Millisecond}
	cam, _, _, _, _ := runSupervisor(t, spec, Hooks{})
	require.Eventually(t, func() bool { return cam.ReconnectsByReason()["error"] >= 2 }, 5*time.Second, 20*time.Millisecond)
	assert.Equal(t, stats.StateError, cam.State())
	assert.Contains(t, cam.Snapshot(time.Now()).LastError, "nosuchelement")
}

func TestProbe(t *testing.T) {
	assert.Contains(t, Version(), "GStreamer 1.")
	assert.True(t, HasElement("videoconvert"))
	assert.False(t, HasElement("definitely-not-an-element"))
}
