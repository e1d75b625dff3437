package stats

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReasonSet(t *testing.T) {
	var s ReasonSet
	assert.True(t, s.Empty())
	assert.Equal(t, "", s.String())
	s = s.Add(DropFrozen).Add(DropBlack)
	assert.True(t, s.Has(DropBlack))
	assert.False(t, s.Has(DropUniform))
	assert.Equal(t, "black,frozen", s.String(), "label order, not insertion order")
	assert.Equal(t, "corrupt,ring_overflow", ReasonSet(0).Add(DropRingOverflow).Add(DropCorrupt).String())
	assert.Zero(t, testing.AllocsPerRun(10, func() { _ = s.String() }), "validation sets come from a table")
}

func TestValidationReasons(t *testing.T) {
	var names []string
	for _, r := range ValidationReasons() {
		names = append(names, r.String())
	}
	assert.Equal(t, []string{"black", "uniform", "frozen", "size", "corrupt"}, names)
}

// Flagged frames are counted per rule and reported next to the drops, but
// they are kept, so they stay out of the accounting identity.
func TestFlaggedInSnapshot(t *testing.T) {
	c := NewCamera("cam-1")
	c.Flag(ReasonSet(0).Add(DropBlack))
	c.Flag(ReasonSet(0).Add(DropBlack).Add(DropCorrupt))
	assert.EqualValues(t, 2, c.Flagged(DropBlack))
	assert.EqualValues(t, 1, c.Flagged(DropCorrupt))
	assert.Zero(t, c.Flagged(DropRingOverflow))
	assert.Zero(t, c.DroppedTotal())

	raw, err := json.Marshal(c.Snapshot(time.Now()))
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(raw, &got))
	assert.Equal(t, map[string]any{"black": 2.0, "corrupt": 1.0}, got["frames_flagged"])

	raw, err = json.Marshal(NewCamera("cam-2").Snapshot(time.Now()))
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"frames_flagged":{}`)
}

func TestReasonNames(t *testing.T) {
	var names []string
	for _, r := range Reasons() {
		names = append(names, r.String())
	}
	assert.Equal(t, []string{"black", "uniform", "frozen", "size", "corrupt", "ring_overflow", "redis_error",
		"shutdown", "handoff_overflow", "pull_error", "redis_oom", "oversize", "fenced", "shm_error"}, names)
	assert.Equal(t, "unknown", DropReason(-1).String())
	assert.Equal(t, "unknown", numReasons.String())
	assert.Equal(t, "ring_overflow,oversize", ReasonSet(0).Add(DropOversize).Add(DropRingOverflow).String(), "label order")
}

// The label sets are typed once here; telemetry emits a series for each.
func TestLabelSets(t *testing.T) {
	assert.Equal(t, []ReconnectReason{"error", "eos", "stall", "timeout", "unauthorized", "no_frames", "restart"}, ReconnectReasons())
	assert.Equal(t, []ErrorType{"core", "library", "resource", "stream", "other", "unauthorized", "timeout", "stall", "build", "frozen"}, ErrorTypes())
}

// Every report, from whichever part of the path, lands in one camera's
// counters, and captured = published + dropped by reason holds over them.
func TestReportsKeepTheIdentity(t *testing.T) {
	c := NewCamera("cam")
	now := time.Now()
	for range 10 {
		c.FrameCaptured(now) // the sink side
	}
	c.Drop(DropPullError, 1) // the sink side
	c.Drop(DropBlack, 1)     // the sink side: validation
	c.HandoffOverflow(2)     // gsthost: captured and dropped at once
	c.CapturedDropped(DropOversize, 1)
	c.RingOverflow(3)         // ring
	c.RingClosed(1)           // ring, after Close
	c.Stored(2)               // publish
	c.Drop(DropRedisError, 1) // publish
	c.Drop(DropRedisOOM, 1)   // publish

	assert.EqualValues(t, 13, c.Captured())
	assert.EqualValues(t, 2, c.Published())
	assert.EqualValues(t, 2, c.Dropped(DropHandoff))
	assert.EqualValues(t, 1, c.Dropped(DropOversize))
	assert.EqualValues(t, 3, c.Dropped(DropRingOverflow))
	assert.EqualValues(t, 1, c.Dropped(DropShutdown))
	assert.EqualValues(t, 11, c.DroppedTotal())
	assert.Equal(t, c.Captured(), c.Published()+c.DroppedTotal())
	assert.Equal(t, now.UnixNano(), c.LastFrame().UnixNano(), "only FrameCaptured moves the newest frame")

	s := c.Snapshot(now)
	assert.EqualValues(t, 13, s.Captured)
	assert.EqualValues(t, 2, s.Published)
	assert.Equal(t, map[string]uint64{"pull_error": 1, "black": 1, "handoff_overflow": 2, "oversize": 1,
		"ring_overflow": 3, "shutdown": 1, "redis_error": 1, "redis_oom": 1}, s.Dropped)
	require.NotNil(t, s.LastFrameAgeSeconds)
	assert.Zero(t, *s.LastFrameAgeSeconds)
}

func TestLastFrameBeforeAny(t *testing.T) {
	c := NewCamera("cam")
	c.HandoffOverflow(5)
	assert.True(t, c.LastFrame().IsZero())
	assert.Nil(t, c.Snapshot(time.Now()).LastFrameAgeSeconds)
}

// A frozen pipeline is counted once, as an error of type frozen: the
// camera's Frozen, its snapshot and the registry's total all read it.
func TestFrozenCountedOnce(t *testing.T) {
	r := NewRegistry()
	a, b := r.Add("a"), r.Add("b")
	a.Error(ErrFrozen)
	a.Error(ErrStall)
	b.Error(ErrFrozen)
	b.Error(ErrFrozen)
	assert.EqualValues(t, 1, a.Frozen())
	assert.EqualValues(t, 1, a.Snapshot(time.Now()).Frozen)
	assert.Equal(t, map[ErrorType]uint64{ErrFrozen: 1, ErrStall: 1}, a.ErrorsByType())
	assert.EqualValues(t, 3, r.Frozen())

	// A removed camera's abandoned pipelines are still leaked: liveness
	// keeps counting them.
	require.True(t, r.Remove("b"))
	assert.EqualValues(t, 3, r.Frozen())
}

func TestReconnects(t *testing.T) {
	c := NewCamera("cam")
	c.Reconnect(ReconnectEOS)
	c.Reconnect(ReconnectEOS)
	c.Reconnect(ReconnectStall)
	assert.EqualValues(t, 3, c.Reconnects())
	assert.EqualValues(t, 3, c.Snapshot(time.Now()).Reconnects)
	got := c.ReconnectsByReason()
	assert.Equal(t, map[ReconnectReason]uint64{ReconnectEOS: 2, ReconnectStall: 1}, got)
	got[ReconnectEOS] = 99
	assert.EqualValues(t, 2, c.ReconnectsByReason()[ReconnectEOS], "a copy")
}

func TestStateAndDecoder(t *testing.T) {
	c := NewCamera("cam")
	assert.Equal(t, StateStarting, c.State())
	assert.True(t, c.SetState(StateError, "boom"))
	assert.False(t, c.SetState(StateError, ""), "same state")
	assert.Equal(t, "boom", c.Snapshot(time.Now()).LastError, "kept until streaming")
	assert.True(t, c.SetState(StateStreaming, ""))
	assert.Empty(t, c.Snapshot(time.Now()).LastError)

	assert.True(t, c.SetDecoder("h264", "avdec_h264"))
	assert.False(t, c.SetDecoder("h264", "avdec_h264"))
	assert.True(t, c.SetDecoder("h265", "avdec_h265"))
	s := c.Snapshot(time.Now())
	assert.Equal(t, "h265", s.Codec)
	assert.Equal(t, "avdec_h265", s.Decoder)
}

func TestStreamCounts(t *testing.T) {
	c := NewCamera("cam")
	c.StreamCounts(2, 10, 7)
	c.StreamCounts(1, 5, 5)
	in, out := c.DecoderFrames()
	assert.EqualValues(t, 15, in)
	assert.EqualValues(t, 12, out)
	s := c.Snapshot(time.Now())
	assert.EqualValues(t, 3, s.SkippedUndecodable)
	assert.EqualValues(t, 3, s.DiscardedByDecoder)
	assert.Zero(t, s.Captured, "lost before capture, outside the identity")
}

// fps averages the complete seconds of the window before now.
func TestFPS(t *testing.T) {
	c := NewCamera("cam")
	base := time.Unix(1_000_000, 0)
	for sec := range 4 {
		for i := range 10 {
			c.FrameCaptured(base.Add(time.Duration(sec)*time.Second + time.Duration(i)*100*time.Millisecond))
		}
	}
	assert.InDelta(t, 10, c.Snapshot(base.Add(4*time.Second)).FPS, 1e-9)
	assert.InDelta(t, 0, c.Snapshot(base.Add(20*time.Second)).FPS, 1e-9, "old seconds fall out")
}

// Remove takes the camera's counters and snapshot, and tells whoever keeps
// something per camera, in the one call.
func TestRegistryRemove(t *testing.T) {
	r := NewRegistry()
	r.Add("b").FrameCaptured(time.Now())
	r.Add("a")
	assert.Same(t, r.Add("a"), r.Add("a"), "Add returns the existing camera")
	var told []string
	r.OnRemove(func(id string) { told = append(told, id) })

	assert.True(t, r.Remove("b"))
	_, ok := r.Get("b")
	assert.False(t, ok)
	require.Len(t, r.All(), 1)
	assert.Equal(t, "a", r.All()[0].ID)
	assert.Equal(t, []string{"b"}, told)
	assert.False(t, r.Remove("b"), "removed once")
	assert.Equal(t, []string{"b"}, told, "nothing to tell the second time")

	// A camera added again under the same id starts from zero.
	assert.Zero(t, r.Add("b").Captured())
}

// Reporters on several goroutines and readers at once (run with -race).
func TestConcurrentReports(t *testing.T) {
	r := NewRegistry()
	c := r.Add("cam")
	const n = 2000
	var wg sync.WaitGroup
	wg.Go(func() {
		for range n {
			c.FrameCaptured(time.Now())
			c.Drop(DropBlack, 1)
		}
	})
	wg.Go(func() {
		for range n {
			c.RingOverflow(1)
			c.Stored(1)
		}
	})
	wg.Go(func() {
		for range n {
			c.HandoffOverflow(1)
			c.Reconnect(ReconnectError)
			c.Error(ErrCore)
		}
	})
	wg.Go(func() {
		for range n / 10 {
			_ = c.Snapshot(time.Now())
			_ = r.Frozen()
			_ = r.All()
		}
	})
	wg.Wait()
	assert.EqualValues(t, 2*n, c.Captured())
	assert.EqualValues(t, 3*n, c.DroppedTotal())
	assert.EqualValues(t, n, c.Published())
	assert.EqualValues(t, n, c.ErrorsByType()[ErrCore])
}
