package appsink

import (
	"bytes"
	"image"
	"image/jpeg"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/testenv"
)

func TestMain(m *testing.M) {
	gst.Init(nil)
	os.Exit(m.Run())
}

// run plays launch until EOS, handing every frame to h, and returns the
// hand-off queue's overflow count.
func run(t *testing.T, launch string, h Handler) uint64 {
	t.Helper()
	p, err := gst.NewPipelineFromString(launch)
	require.NoError(t, err)
	el, err := p.GetElementByName("sink")
	require.NoError(t, err)
	sink, err := Attach(el, h)
	require.NoError(t, err)
	require.NoError(t, p.SetState(gst.StatePlaying))
	bus := p.GetPipelineBus()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		m := bus.TimedPop(gst.ClockTime(100 * time.Millisecond))
		if m == nil {
			continue
		}
		if m.Type() == gst.MessageError {
			t.Fatalf("pipeline error: %v", m.ParseError())
		}
		if m.Type() == gst.MessageEOS {
			break
		}
	}
	sink.Detach()
	overflow := sink.Overflow()
	require.NoError(t, p.SetState(gst.StateNull))
	sink.Free()
	// go-gst v1.4.0 unrefs from finalizers and keeps no wrapper alive during
	// its own C calls: without this the pipeline can be disposed in the
	// middle of SetState (SIGSEGV in gst_element_set_state).
	runtime.KeepAlive(p)
	return overflow
}

func rssBytes(t *testing.T) int64 {
	b, err := testenv.RSSBytes(0)
	require.NoError(t, err)
	return b
}

// Frames carry the caps' geometry and a zero-copy view of the pixels.
func TestFrameFields(t *testing.T) {
	var got []*frame.Frame
	var mu sync.Mutex
	run(t, "videotestsrc num-buffers=3 pattern=solid-color foreground-color=0xffff0000 ! video/x-raw,format=BGR,width=322,height=240,framerate=25/1 ! appsink name=sink sync=false", func(f *frame.Frame) {
		mu.Lock()
		got = append(got, f) // held past the pipeline's NULL state on purpose
		mu.Unlock()
	})
	require.Len(t, got, 3)
	stride, size, err := frame.Layout(frame.BGR, 322, 240)
	require.NoError(t, err)
	for i, f := range got {
		assert.Equal(t, frame.BGR, f.Format)
		assert.Equal(t, 322, f.Width)
		assert.Equal(t, 240, f.Height)
		assert.Equal(t, stride, f.Stride, "GStreamer pads BGR rows to 4 bytes like frame.Layout")
		assert.Len(t, f.Data, size)
		// Solid red in BGR order, still readable after the pipeline stopped.
		assert.Equal(t, []byte{0, 0, 255}, f.Data[:3], "frame %d pixel 0", i)
		assert.Equal(t, time.Duration(i)*40*time.Millisecond, f.PTS)
		assert.Equal(t, frame.SourceArrival, f.CaptureSource)
		assert.False(t, f.Corrupt)
		f.Release()
		assert.Nil(t, f.Data)
	}
}

// A JPEG sample (image/jpeg caps) is a frame of format JPEG with the caps'
// size, stride 0, and the encoder's bytes as they are: a whole JPEG file.
func TestJPEGFrame(t *testing.T) {
	var got []*frame.Frame
	run(t, "videotestsrc num-buffers=2 pattern=solid-color foreground-color=0xffff0000 ! video/x-raw,format=I420,width=322,height=240,framerate=25/1 ! jpegenc quality=90 ! image/jpeg ! appsink name=sink sync=false", func(f *frame.Frame) {
		got = append(got, f)
	})
	require.Len(t, got, 2)
	for i, f := range got {
		assert.False(t, f.PullError)
		assert.Equal(t, frame.JPEG, f.Format)
		assert.Equal(t, [3]int{322, 240, 0}, [3]int{f.Width, f.Height, f.Stride})
		assert.Equal(t, time.Duration(i)*40*time.Millisecond, f.PTS)
		require.Greater(t, len(f.Data), 4)
		assert.Equal(t, []byte{0xff, 0xd8}, f.Data[:2], "SOI")
		assert.Equal(t, []byte{0xff, 0xd9}, f.Data[len(f.Data)-2:], "EOI")
		img, err := jpeg.Decode(bytes.NewReader(f.Data))
		require.NoError(t, err)
		assert.Equal(t, image.Rect(0, 0, 322, 240), img.Bounds())
		r, g, b, _ := img.At(100, 100).RGBA()
		assert.Greater(t, r>>8, uint32(225), "red, through limited-range I420")
		assert.Less(t, g>>8, uint32(30), "red")
		assert.Less(t, b>>8, uint32(30), "red")
		f.Release()
		assert.Nil(t, f.Data)
	}
}

// Releasing frames explicitly keeps memory flat. Without it (go-gst leaving
// samples to the GC) 300 1080p BGR frames reach gigabytes.
func TestReleaseKeepsRSSFlat(t *testing.T) {
	const frames = 300
	before := rssBytes(t)
	var n int
	run(t, "videotestsrc num-buffers="+strconv.Itoa(frames)+" ! video/x-raw,format=BGR,width=1920,height=1080 ! appsink name=sink sync=false max-buffers=2", func(f *frame.Frame) {
		n++
		f.Release()
	})
	after := rssBytes(t)
	grow := after - before
	t.Logf("%d frames of 1920x1080 BGR (%.1f GB in total): RSS %d MB -> %d MB", n, float64(n)*1920*1080*3/1e9, before>>20, after>>20)
	require.Equal(t, frames, n)
	assert.Less(t, grow, int64(150<<20), "RSS grew by %d MB", grow>>20)
}

// A handler slower than the stream loses the oldest queued frames, counted,
// never blocks the streaming thread, and sees the rest in order.
func TestSlowHandlerOverflowIsCounted(t *testing.T) {
	const frames = 40
	var pts []time.Duration
	overflow := run(t, "videotestsrc num-buffers="+strconv.Itoa(frames)+" ! video/x-raw,format=GRAY8,width=64,height=48,framerate=25/1 ! appsink name=sink sync=false", func(f *frame.Frame) {
		pts = append(pts, f.PTS)
		f.Release()
		time.Sleep(20 * time.Millisecond)
	})
	t.Logf("%d delivered, %d dropped by the hand-off queue", len(pts), overflow)
	assert.Positive(t, overflow)
	assert.Equal(t, frames, len(pts)+int(overflow))
	for i := 1; i < len(pts); i++ {
		assert.Greater(t, pts[i], pts[i-1])
	}
}

// A sample that cannot be read as raw video (here audio) still reaches the
// handler, marked and without pixels, so that it is counted as captured and
// dropped (pull_error) instead of vanishing.
func TestUnreadableSampleReachesHandler(t *testing.T) {
	type seen struct {
		pullError bool
		data      int
		at        time.Time
	}
	var got []seen
	run(t, "audiotestsrc num-buffers=3 ! audio/x-raw,rate=8000 ! appsink name=sink sync=false", func(f *frame.Frame) {
		got = append(got, seen{f.PullError, len(f.Data), f.SinkTime})
		f.Release()
	})
	require.Len(t, got, 3)
	for i, s := range got {
		assert.True(t, s.pullError, "sample %d", i)
		assert.Zero(t, s.data, "sample %d has no pixels", i)
		assert.False(t, s.at.IsZero(), "sample %d keeps its arrival time", i)
	}

	// The slot goes back clean: the next readable sample is a normal frame.
	var ok []bool
	run(t, "videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8,width=16,height=16 ! appsink name=sink sync=false", func(f *frame.Frame) {
		ok = append(ok, !f.PullError && len(f.Data) == 16*16)
		f.Release()
	})
	assert.Equal(t, []bool{true, true}, ok)
}
