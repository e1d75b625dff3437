package gsthost

import (
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/stats"
)

// in is one buffer pushed into a test pipeline.
type in struct {
	pts   time.Duration
	flags gst.BufferFlags
}

const (
	key   = gst.BufferFlags(0)
	delta = gst.BufferFlagDeltaUnit
	disc  = gst.BufferFlagDiscont
)

// pushThrough runs "appsrc name=src ! middle ! appsink name=sink" with the
// stream watch attached, pushes bufs, and returns the PTS of every buffer
// that reaches the sink, with the camera stats the watch synced into.
func pushThrough(t *testing.T, middle string, bufs []in) ([]time.Duration, *stats.Camera) {
	t.Helper()
	out, cam := pushThroughFlags(t, middle, bufs)
	pts := make([]time.Duration, len(out))
	for i, o := range out {
		pts[i] = o.pts
	}
	return pts, cam
}

// pushThroughFlags is pushThrough returning each output buffer's PTS and
// flags.
func pushThroughFlags(t *testing.T, middle string, bufs []in) ([]in, *stats.Camera) {
	t.Helper()
	p, err := gst.NewPipelineFromString("appsrc name=src format=time caps=video/x-raw,format=GRAY8,width=8,height=8,framerate=25/1 ! " +
		middle + " ! appsink name=sink sync=false")
	require.NoError(t, err)
	keep(t, p)
	w := attachWatch(p, "")
	defer w.release()
	srcEl, err := p.GetElementByName("src")
	require.NoError(t, err)
	sinkEl, err := p.GetElementByName("sink")
	require.NoError(t, err)
	src, sink := app.SrcFromElement(srcEl), app.SinkFromElement(sinkEl)
	require.NoError(t, p.SetState(gst.StatePlaying))
	defer func() { _ = p.SetState(gst.StateNull) }()

	var out []in
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			s := sink.TryPullSample(gst.ClockTime(5 * time.Second))
			if s == nil {
				return // EOS (or stuck: the caller's count check fails)
			}
			b := s.GetBuffer()
			out = append(out, in{time.Duration(b.PresentationTimestamp()), b.GetFlags()})
		}
	}()
	for _, b := range bufs {
		buf := gst.NewBufferFromBytes(make([]byte, 64))
		buf.SetPresentationTimestamp(gst.ClockTime(b.pts))
		if b.flags != 0 {
			buf.SetFlags(b.flags)
		}
		require.Equal(t, gst.FlowOK, src.PushBuffer(buf))
	}
	src.EndStream()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("pipeline did not drain")
	}
	cam := stats.NewCamera("t")
	w.sync(cam)
	return out, cam
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// The keyframe gate skips delta frames from a discontinuity to the next
// keyframe, counts them once the stream has started (the frames before the
// first keyframe are waited out, not lost), and counts frames into and out
// of "dec".
func TestKeyframeGate(t *testing.T) {
	bufs := []in{
		{ms(0), delta | disc}, // joined mid-GOP: nothing to decode it against
		{ms(40), delta},
		{ms(80), key},
		{ms(120), delta},
		{ms(160), delta | disc}, // packets lost before this frame
		{ms(200), delta},
		{ms(240), key},
		{ms(280), delta},
		{ms(320), key | disc}, // a loss right before a keyframe costs nothing
		{ms(360), delta},
	}
	out, cam := pushThrough(t, "identity name=dec", bufs)
	assert.Equal(t, []time.Duration{ms(80), ms(120), ms(240), ms(280), ms(320), ms(360)}, out)
	s := cam.Snapshot(time.Now())
	assert.EqualValues(t, 2, s.SkippedUndecodable, "the two after the loss at 160 ms, not the two before the first keyframe")
	assert.EqualValues(t, 0, s.DiscardedByDecoder)
	in, dout := cam.DecoderFrames()
	assert.EqualValues(t, 6, in)
	assert.EqualValues(t, 6, dout)
}

// A camera that never sends a keyframe is not cut off for good.
func TestKeyframeGateGivesUp(t *testing.T) {
	bufs := []in{{ms(0), key}, {ms(40), delta | disc}}
	for i := 2; i < 400; i++ {
		bufs = append(bufs, in{ms(40 * i), delta})
	}
	out, cam := pushThrough(t, "identity name=dec", bufs)
	assert.EqualValues(t, 300, cam.Snapshot(time.Now()).SkippedUndecodable, "GH_GATE_MAX_RUN")
	assert.Len(t, out, 400-300)
}

// Frames the decoder swallows are counted as discarded by it.
func TestDecoderDiscardCount(t *testing.T) {
	var bufs []in
	for i := range 200 {
		f := delta
		if i%25 == 0 {
			f = key
		}
		bufs = append(bufs, in{ms(40 * i), f})
	}
	out, cam := pushThrough(t, "identity name=dec drop-probability=0.3", bufs)
	s := cam.Snapshot(time.Now())
	assert.Zero(t, s.SkippedUndecodable)
	in, dout := cam.DecoderFrames()
	assert.EqualValues(t, 200, in)
	assert.EqualValues(t, len(out), dout)
	assert.EqualValues(t, 200-len(out), s.DiscardedByDecoder)
	assert.Positive(t, s.DiscardedByDecoder)
}

// The decoder's CORRUPTED flag survives the JPEG encoder "enc" (which makes
// a new buffer per frame without it), on the frames that had it only;
// an encoder in the pipeline changes nothing else.
func TestCorruptFlagCrossesTheEncoder(t *testing.T) {
	const corrupt = gst.BufferFlagCorrupted
	bufs := []in{{ms(0), 0}, {ms(40), corrupt}, {ms(80), 0}, {ms(120), corrupt}, {ms(160), corrupt}, {ms(200), 0}}
	out, _ := pushThroughFlags(t, "jpegenc name=enc ! image/jpeg", bufs)
	require.Len(t, out, len(bufs))
	for i, o := range out {
		assert.Equal(t, bufs[i].pts, o.pts)
		assert.Equal(t, bufs[i].flags&corrupt != 0, o.flags&corrupt != 0, "frame at %s: CORRUPTED", o.pts)
	}
	// Without the watch's "enc" the flag is lost: what the probes are for.
	out, _ = pushThroughFlags(t, "jpegenc name=other ! image/jpeg", bufs)
	require.Len(t, out, len(bufs))
	for _, o := range out {
		assert.Zero(t, o.flags&corrupt, "jpegenc alone drops the flag (frame at %s)", o.pts)
	}
}

// The rate gate keeps videorate's 25 -> 10 fps pattern, and after a gap it
// does not let through a burst while videorate's schedule catches up.
func TestRateGateAfterGap(t *testing.T) {
	var bufs []in
	for i := range 50 { // 0 to 2 s at 25 fps
		bufs = append(bufs, in{ms(40 * i), key})
	}
	for i := range 50 { // a 3 s gap, then 2 s more
		bufs = append(bufs, in{ms(5000 + 40*i), key})
	}
	out, _ := pushThrough(t, "videorate drop-only=true max-rate=10", bufs)
	count := func(from, to int) int {
		n := 0
		for _, pts := range out {
			if pts >= ms(from) && pts < ms(to) {
				n++
			}
		}
		return n
	}
	assert.InDelta(t, 20, count(0, 2000), 1, "10 fps before the gap")
	// Without the gate videorate passes all 25 frames a second here.
	assert.InDelta(t, 10, count(5000, 6000), 1, "10 fps in the first second after the gap")
	assert.InDelta(t, 20, count(5000, 7000), 1, "10 fps after the gap")
	for i := 1; i < len(out); i++ {
		assert.GreaterOrEqual(t, out[i]-out[i-1], ms(80), "frames %v and %v", out[i-1], out[i])
	}
}
