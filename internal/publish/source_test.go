package publish

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"gstcapture/internal/frame"
	"gstcapture/internal/ring"
	"gstcapture/internal/stats"
)

// testRing is the real ring as the camera's sink side feeds it: a push
// counts the frame captured first, as capture does before the ring gets it.
type testRing struct {
	*ring.Ring[*frame.Frame]
	cam  *stats.Camera
	held atomic.Bool // PopBatch takes nothing while set (pushAll)
}

func newTestRing(size int, cam *stats.Camera) *testRing {
	return &testRing{Ring: ring.New[*frame.Frame](size, cam), cam: cam}
}

func (r *testRing) Push(f *frame.Frame) {
	r.cam.FrameCaptured(time.Now())
	r.Ring.Push(f)
}

func (r *testRing) PopBatch(dst []*frame.Frame) []*frame.Frame {
	if r.held.Load() {
		return dst
	}
	return r.Ring.PopBatch(dst)
}

// pushAll queues frames at once, so that the publisher takes them as one
// batch (on its next poll at the latest).
func (r *testRing) pushAll(fs []*frame.Frame) {
	r.held.Store(true)
	for _, f := range fs {
		r.Push(f)
	}
	r.held.Store(false)
}

// frames makes test frames and checks that each is released exactly once
// and only after its bytes were written: release scribbles over the pixels,
// as GStreamer reusing the buffer would, so an early release shows up as
// corrupt data in Redis.
type frames struct {
	t        testing.TB
	mu       sync.Mutex
	all      []*trackedFrame
	seq      uint64
	released atomic.Int64
}

type trackedFrame struct {
	*frame.Frame
	want     []byte // pristine copy of the pixels
	releases atomic.Int32
}

func newFrames(t testing.TB) *frames { return &frames{t: t} }

func (fs *frames) New(cameraID string, w, h int, format frame.Format) *frame.Frame {
	stride, size, err := frame.Layout(format, w, h)
	if err != nil {
		fs.t.Fatal(err)
	}
	fs.mu.Lock()
	fs.seq++
	seq := fs.seq
	fs.mu.Unlock()
	pix := make([]byte, size)
	for i := range pix {
		pix[i] = byte(uint64(i)*31 + seq)
	}
	now := time.Now()
	f := &frame.Frame{
		CameraID:      cameraID,
		Seq:           seq,
		CaptureTime:   now.Add(-5 * time.Millisecond),
		CaptureSource: frame.SourceRTCP,
		SinkTime:      now,
		PTS:           time.Duration(seq) * 40 * time.Millisecond,
		Width:         w,
		Height:        h,
		Stride:        stride,
		Format:        format,
		Data:          pix,
	}
	tf := &trackedFrame{Frame: f, want: append([]byte(nil), pix...)}
	f.SetRelease(func() {
		tf.releases.Add(1)
		fs.released.Add(1)
		for i := range pix {
			pix[i] = 0xEE
		}
	})
	fs.mu.Lock()
	fs.all = append(fs.all, tf)
	fs.mu.Unlock()
	return f
}

// NewJPEG returns a JPEG frame of n bytes (SOI, filler, EOI: the publisher
// does not read them).
func (fs *frames) NewJPEG(cameraID string, w, h, n int) *frame.Frame {
	f := fs.New(cameraID, 8, 8, frame.GRAY8)
	data := make([]byte, n)
	copy(data, []byte{0xFF, 0xD8})
	copy(data[n-2:], []byte{0xFF, 0xD9})
	fs.mu.Lock()
	tf := fs.all[len(fs.all)-1]
	fs.mu.Unlock()
	f.Format, f.Width, f.Height, f.Stride, f.Data = frame.JPEG, w, h, 0, data
	tf.want = append([]byte(nil), data...)
	return f
}

// assertReleasedOnce checks every frame made so far, except the ones still
// waiting in the ring, was released exactly once.
func (fs *frames) assertReleasedOnce(left int) {
	fs.t.Helper()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	notReleased := 0
	for _, tf := range fs.all {
		switch n := tf.releases.Load(); n {
		case 0:
			notReleased++
		case 1:
		default:
			fs.t.Errorf("frame seq %d released %d times", tf.Seq, n)
		}
	}
	assert.Equal(fs.t, left, notReleased, "frames not released (should be exactly those left in the ring)")
}

func (fs *frames) bySeq(seq uint64) *trackedFrame {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.all[seq-1]
}
