package gsthost

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
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
	if os.Getenv("GSTCAPTURE_GC_STRESS") != "" {
		// A GC every 100 µs: a go-gst wrapper that is not kept alive across
		// its C call is finalized during it. Before keep, 1 run in 4 of this
		// package crashed so; without it, about 1 in several hundred (CI).
		go func() {
			for {
				runtime.GC()
				time.Sleep(100 * time.Microsecond)
			}
		}()
	}
	os.Exit(m.Run())
}

// keep holds go-gst wrappers until the test ends. A v1.4.0 wrapper unrefs
// its object from its finalizer and nothing keeps it alive during its own
// C calls: a pipeline whose wrapper is last used by SetState can be
// disposed in the middle of that state change (SIGSEGV in
// gst_element_set_state, seen in CI).
func keep(t testing.TB, objs ...any) {
	t.Cleanup(func() { runtime.KeepAlive(objs) })
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

// frozenCount reads a camera's frozen pipelines, as liveness does.
type frozenCount struct{ cam *stats.Camera }

func (f frozenCount) Load() int64 { return int64(f.cam.Frozen()) }

// runSupervisor runs a supervisor whose handler records each frame on the
// camera, as capture's sink side does, before the collector takes it.
func runSupervisor(t *testing.T, spec Spec, hooks Hooks) (*stats.Camera, *collector, frozenCount, context.CancelFunc, chan struct{}) {
	t.Helper()
	cam := stats.NewCamera(spec.CameraID)
	col := &collector{}
	frozen := frozenCount{cam}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	handle := func(f *frame.Frame) {
		cam.FrameCaptured(f.SinkTime)
		col.handle(f)
	}
	sup := NewSupervisor(spec, cam, handle, log, nil, hooks)
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

	// Every rebuilt pipeline delivers its first frame at once, then nothing:
	// one frame a session is not a stream, so the camera stays stalled
	// across rebuilds instead of showing streaming for a stall_timeout each.
	require.Eventually(t, func() bool { return cam.ReconnectsByReason()["stall"] >= 3 }, 15*time.Second, 20*time.Millisecond)
	assert.GreaterOrEqual(t, cam.Captured(), uint64(3), "each rebuilt pipeline delivered its first frame")
	for _, tr := range cam.Transitions() {
		assert.NotEqual(t, stats.StateStreaming, tr.To, "one frame a session turned the camera streaming: %+v", tr)
	}
	assert.Equal(t, stats.StateStalled, cam.State())
}

// A teardown that misses its deadline is abandoned and counted as frozen,
// and the camera keeps being supervised. The abandoned pipeline's C objects
// outlive its Go wrappers: once the wedged call goes on, it finds the
// pipeline still there, however often the GC ran.
func TestSupervisorFrozenTeardown(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	unwedge := func() { once.Do(func() { close(release) }) }
	defer unwedge()
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
	assert.Equal(t, uint64(1), cam.Frozen())
	// Supervision continues past the abandoned pipeline.
	require.Eventually(t, func() bool { return cam.ReconnectsByReason()["eos"] >= 3 }, 10*time.Second, 20*time.Millisecond)
	for range 3 {
		runtime.GC() // finalizes the abandoned pipeline's wrappers
		time.Sleep(20 * time.Millisecond)
	}
	unwedge() // its SetState(NULL) runs now
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
}

// A pipeline whose start (SetState PLAYING) misses its deadline is
// abandoned at the deadline, counted as frozen once, gets a DOT dump, and
// the camera is rebuilt and streams.
func TestSupervisorFrozenStart(t *testing.T) {
	dotDir := t.TempDir()
	t.Setenv("GST_DEBUG_DUMP_DOT_DIR", dotDir)
	const deadline = 300 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	var starts atomic.Int64
	wedged := make(chan time.Time, 1)
	hooks := Hooks{BeforeStart: func(string) {
		if starts.Add(1) == 1 {
			wedged <- time.Now()
			<-release // wedge the first start only
		}
	}}
	spec := Spec{
		CameraID:         "frozenstart",
		Launch:           "videotestsrc name=src is-live=true num-buffers=5 ! video/x-raw,width=64,height=48,framerate=50/1 ! videoconvert ! video/x-raw,format=BGR ! appsink name=sink sync=false",
		StallTimeout:     2 * time.Second,
		ReconnectInitial: 100 * time.Millisecond,
		ReconnectMax:     200 * time.Millisecond,
		StartTimeout:     deadline,
	}
	cam, col, frozen, _, _ := runSupervisor(t, spec, hooks)
	var tWedged time.Time
	select {
	case tWedged = <-wedged:
	case <-time.After(10 * time.Second):
		t.Fatal("the supervisor never started a pipeline")
	}
	require.Eventually(t, func() bool { return frozen.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
	elapsed := time.Since(tWedged)
	t.Logf("wedged start abandoned after %s (deadline %s)", elapsed, deadline)
	assert.GreaterOrEqual(t, elapsed, deadline, "abandoned before its deadline")
	assert.Less(t, elapsed, deadline+2*time.Second, "abandoned long after its deadline")
	assert.Equal(t, uint64(1), cam.Frozen())
	assert.Equal(t, uint64(1), cam.ErrorsByType()["frozen"])

	// The camera is rebuilt: later pipelines start and stream.
	require.Eventually(t, func() bool { return cam.ReconnectsByReason()["eos"] >= 3 }, 10*time.Second, 20*time.Millisecond)
	assert.Positive(t, col.n.Load())
	assert.Equal(t, int64(1), frozen.Load(), "the abandoned pipeline is counted once (its teardown and dump are not counted again)")
	assert.Equal(t, uint64(1), cam.ReconnectsByReason()["error"], "the frozen start is one rebuild")
	dumps, err := filepath.Glob(filepath.Join(dotDir, "*-gstcapture-frozenstart-frozen.dot"))
	require.NoError(t, err)
	assert.Len(t, dumps, 1, "one DOT dump of the abandoned pipeline")
}

// The codec auto probe's start (SetState PAUSED) has the same deadline:
// every wedged probe is abandoned, counted as frozen, and retried.
func TestSupervisorFrozenProbeStart(t *testing.T) {
	wedged := make(chan struct{})
	defer close(wedged)
	hooks := Hooks{BeforeStart: func(string) { <-wedged }}
	spec := Spec{
		CameraID:         "frozenprobe",
		Codec:            CodecSpec{Name: CodecAuto, ProbeLaunch: "videotestsrc name=src is-live=true ! fakesink"},
		StallTimeout:     2 * time.Second,
		ReconnectInitial: 50 * time.Millisecond,
		ReconnectMax:     50 * time.Millisecond,
		StartTimeout:     200 * time.Millisecond,
	}
	cam, _, frozen, _, _ := runSupervisor(t, spec, hooks)
	require.Eventually(t, func() bool { return frozen.Load() >= 2 }, 10*time.Second, 10*time.Millisecond)
	assert.GreaterOrEqual(t, cam.ReconnectsByReason()["error"], uint64(1), "retried after the frozen probe")
	assert.Contains(t, cam.Snapshot(time.Now()).LastError, "codec auto probe did not start within 200ms")
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
