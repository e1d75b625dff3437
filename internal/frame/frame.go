package frame

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Format is a published format: a raw video format name as GStreamer
// spells it, or JPEG.
type Format string

// Formats gstcapture can emit.
const (
	BGR   Format = "BGR"
	RGB   Format = "RGB"
	I420  Format = "I420"
	NV12  Format = "NV12"
	GRAY8 Format = "GRAY8"
	// JPEG is one baseline JPEG picture per frame (image/jpeg caps): Data
	// is the JPEG file's bytes, Stride is 0, and the size varies with the
	// picture.
	JPEG Format = "JPEG"
)

// Formats lists every supported format, for validation messages.
var Formats = []Format{BGR, RGB, I420, NV12, GRAY8, JPEG}

// ParseFormat returns the Format named s, or an error naming the valid ones.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown format %q (want one of BGR, RGB, I420, NV12, GRAY8, JPEG)", s)
}

// Compressed reports whether frames of f are compressed pictures whose
// size varies (JPEG) rather than raw pixels laid out by Layout.
func (f Format) Compressed() bool { return f == JPEG }

// CaptureSource says where a frame's capture time came from.
type CaptureSource string

const (
	// SourceRTCP means the camera's RTCP sender reports (NTP) gave the time.
	SourceRTCP CaptureSource = "rtcp"
	// SourceArrival means the time the frame reached the appsink.
	SourceArrival CaptureSource = "arrival"
)

// Frame is one decoded picture. Data is a view into GStreamer memory, valid
// only until Release is called; whoever holds the frame last must call it.
type Frame struct {
	CameraID      string
	Seq           uint64
	CaptureTime   time.Time
	CaptureSource CaptureSource
	// SinkTime is when the frame left the appsink (monotonic clock reading),
	// used for appsink → Redis latency.
	SinkTime time.Time
	PTS      time.Duration // -1 when the buffer had none
	Width    int
	Height   int
	Stride   int // bytes per row of the first plane
	Format   Format
	Data     []byte
	// Corrupt is set when the decoder flagged the buffer as corrupted.
	Corrupt bool
	// PullError is set when the sample left the appsink but could not be
	// read (its caps are neither raw video nor JPEG, or its buffer could not be mapped):
	// the frame has only its times, no pixels, and is counted as dropped.
	PullError bool
	// Flags names the validation rules with action pass that the frame
	// failed, comma-separated ("black"); empty when none. It becomes the
	// Redis entry's flags field.
	Flags string
	// TraceParent and TraceState carry W3C trace context for the frame,
	// written into its Redis entry.
	TraceParent string
	TraceState  string
	// Span identifies the frame's capture span so later stages (publish) can
	// attach child spans without parsing TraceParent.
	Span SpanRef

	released atomic.Bool
	release  func()
}

// SpanRef is a trace span identity in plain types (this package imports
// only the standard library).
type SpanRef struct {
	TraceID [16]byte
	SpanID  [8]byte
	Flags   byte
	Valid   bool
}

// SetRelease installs the function that gives the pixels back.
func (f *Frame) SetRelease(fn func()) { f.release = fn }

// Release gives the pixels back to GStreamer. It is safe to call more than
// once and on a nil frame; only the first call has an effect.
func (f *Frame) Release() {
	if f == nil || !f.released.CompareAndSwap(false, true) {
		return
	}
	f.Data = nil
	// The release function may hand the frame back to its pool, where the
	// next sample reuses it at once: nothing may touch f after the call.
	fn := f.release
	f.release = nil
	if fn != nil {
		fn()
	}
}

// Size returns the bytes of pixels the frame holds (internal/ring's byte
// limit).
func (f *Frame) Size() int { return len(f.Data) }

// Released reports whether Release has run.
func (f *Frame) Released() bool { return f.released.Load() }

// Reset clears a frame for reuse from a pool.
func (f *Frame) Reset() {
	*f = Frame{}
}

func roundUp4(n int) int { return (n + 3) &^ 3 }
func roundUp2(n int) int { return (n + 1) &^ 1 }

// Layout returns the stride of the first plane and the total size in bytes
// of a frame with GStreamer's default (unpadded, 4-byte row aligned) layout,
// which is what videoconvert produces in system memory. A compressed format
// (JPEG) has no layout: it is an error.
func Layout(f Format, width, height int) (stride, size int, err error) {
	if width <= 0 || height <= 0 {
		return 0, 0, fmt.Errorf("invalid size %dx%d", width, height)
	}
	switch f {
	case BGR, RGB:
		stride = roundUp4(width * 3)
		return stride, stride * height, nil
	case GRAY8:
		stride = roundUp4(width)
		return stride, stride * height, nil
	case I420:
		stride = roundUp4(width)
		cstride := roundUp4(roundUp2(width) / 2)
		ch := roundUp2(height) / 2
		return stride, stride*height + 2*cstride*ch, nil
	case NV12:
		stride = roundUp4(width)
		ch := roundUp2(height) / 2
		return stride, stride*height + stride*ch, nil
	case JPEG:
		return 0, 0, fmt.Errorf("format %s is compressed: no raw layout", f)
	}
	return 0, 0, fmt.Errorf("unknown format %q", f)
}

// Picture is an owned copy of one frame's pixels (for snapshots), safe to
// keep after the frame is released.
type Picture struct {
	CameraID string
	Seq      uint64
	At       time.Time
	Width    int
	Height   int
	Stride   int
	Format   Format
	Data     []byte
}

// SizeEstimate follows the size of one camera's frames for what is sized
// per frame: its ring's byte limit (memory.budget) and its stream's MAXLEN
// (redis.memory_budget). A raw frame's size is fixed by its format and
// size, and is taken as it is. A JPEG frame's size varies with the
// picture, so the estimate is a running mean, each frame weighing
// 1/sizeWeight, and a new estimate is reported only once the mean has
// moved by more than 1/sizeSlack of the one reported: the budgets follow
// the picture's detail without being planned again for every frame. A new
// format or picture size starts the estimate again from its first frame.
//
// A SizeEstimate is for one goroutine.
type SizeEstimate struct {
	mean          float64
	told          int64
	format        Format
	width, height int
}

const (
	sizeWeight = 16 // a time constant of 1.6 s at 10 fps
	sizeSlack  = 8  // 12.5 %
)

// Observe takes frame f's size into the estimate and returns the estimate
// in bytes, and whether it differs from the one Observe last returned
// (true for the first frame).
func (e *SizeEstimate) Observe(f *Frame) (bytes int64, changed bool) {
	n := int64(len(f.Data))
	if e.told == 0 || !f.Format.Compressed() || f.Format != e.format || f.Width != e.width || f.Height != e.height {
		changed = n != e.told
		e.mean, e.told, e.format, e.width, e.height = float64(n), n, f.Format, f.Width, f.Height
		return n, changed
	}
	e.mean += (float64(n) - e.mean) / sizeWeight
	if d := e.mean - float64(e.told); d > float64(e.told)/sizeSlack || -d > float64(e.told)/sizeSlack {
		e.told = max(int64(e.mean+0.5), 1)
		return e.told, true
	}
	return e.told, false
}
