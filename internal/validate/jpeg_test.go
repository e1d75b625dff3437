package validate

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/stats"
)

// jpegFrame encodes a w x h picture of one grey level v (a black one for
// v 0) as a JPEG frame, as the encoder hands it to the sink.
func jpegFrame(t testing.TB, w, h int, v uint8) *frame.Frame {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = v
	}
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, img, &jpeg.Options{Quality: 85}))
	return &frame.Frame{Format: frame.JPEG, Width: w, Height: h, Data: b.Bytes()}
}

// Black and uniform do not run on JPEG frames: a black JPEG is published.
func TestJPEGSkipsPixelRules(t *testing.T) {
	for _, v := range []uint8{0, 128} {
		res := New(DefaultRules()).Check(jpegFrame(t, 64, 48, v), t0)
		assert.Equal(t, Result{}, res, "grey level %d", v)
	}
	assert.Equal(t, []string{"black", "uniform"}, DefaultRules().PixelRulesSkipped(frame.JPEG))
	off := DefaultRules()
	off.Black.Action, off.Uniform.Action = Off, Off
	assert.Empty(t, off.PixelRulesSkipped(frame.JPEG))
	off.Uniform.Action = Pass
	assert.Equal(t, []string{"uniform"}, off.PixelRulesSkipped(frame.JPEG))
	assert.Empty(t, DefaultRules().PixelRulesSkipped(frame.BGR))
}

// size: the buffer must be one whole JPEG of the frame's width and height.
func TestJPEGSize(t *testing.T) {
	good := jpegFrame(t, 64, 48, 90)
	d := good.Data
	// A JPEG with an APP segment and fill bytes before the frame header,
	// as other encoders write them, is whole too.
	app := append([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, 'E', 'x', 'i', 'f', 0xFF, 0xFF}, d[2:]...)
	sofAt := bytes.Index(d, []byte{0xFF, 0xC0})
	require.Positive(t, sofAt)
	sosAt := bytes.Index(d, []byte{0xFF, 0xDA})
	require.Greater(t, sosAt, sofAt)
	noSOF := append(append([]byte{}, d[:sofAt]...), d[sosAt:]...) // a scan before any frame header
	cases := []struct {
		name string
		f    *frame.Frame
		ok   bool
	}{
		{"whole", good, true},
		{"APP segment and fill bytes", &frame.Frame{Format: frame.JPEG, Width: 64, Height: 48, Data: app}, true},
		{"truncated: no EOI", &frame.Frame{Format: frame.JPEG, Width: 64, Height: 48, Data: d[:len(d)-10]}, false},
		{"not a JPEG", &frame.Frame{Format: frame.JPEG, Width: 64, Height: 48, Data: bytes.Repeat([]byte{0x11}, 500)}, false},
		{"empty", &frame.Frame{Format: frame.JPEG, Width: 64, Height: 48}, false},
		{"SOI and EOI only", &frame.Frame{Format: frame.JPEG, Width: 64, Height: 48, Data: []byte{0xFF, 0xD8, 0xFF, 0xD9}}, false},
		{"caps say another width", &frame.Frame{Format: frame.JPEG, Width: 65, Height: 48, Data: d}, false},
		{"caps say another height", &frame.Frame{Format: frame.JPEG, Width: 64, Height: 47, Data: d}, false},
		{"no size in the caps", &frame.Frame{Format: frame.JPEG, Data: d}, false},
		{"no frame header before the scan", &frame.Frame{Format: frame.JPEG, Width: 64, Height: 48, Data: noSOF}, false},
		{"larger than 3 bytes a pixel and headroom", &frame.Frame{Format: frame.JPEG, Width: 4, Height: 4,
			Data: append(append([]byte{0xFF, 0xD8}, make([]byte, jpegHeadroom+48)...), 0xFF, 0xD9)}, false},
		{"segment length past the end", &frame.Frame{Format: frame.JPEG, Width: 64, Height: 48, Data: []byte{0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF, 0x00, 0xFF, 0xD9}}, false},
	}
	for _, c := range cases {
		res := New(DefaultRules()).Check(c.f, t0)
		if c.ok {
			assert.Equal(t, Result{}, res, c.name)
			continue
		}
		assert.Equal(t, Result{Failed: true, Reason: stats.DropSize, Drop: true}, res, c.name)
	}
	// With size off a broken JPEG goes on, unchecked.
	r := DefaultRules()
	r.Size.Action = Off
	assert.Equal(t, Result{}, New(r).Check(cases[2].f, t0))
}

// frozen: the same bytes for After; any change of the bytes restarts it.
func TestJPEGFrozen(t *testing.T) {
	r := DefaultRules()
	r.Frozen.After = 2 * time.Second
	v := New(r)
	a, b := jpegFrame(t, 64, 48, 90), jpegFrame(t, 64, 48, 91)
	require.NotEqual(t, a.Data, b.Data)
	assert.False(t, v.Check(a, t0).Failed)
	assert.False(t, v.Check(a, t0.Add(1900*time.Millisecond)).Failed)
	same := &frame.Frame{Format: frame.JPEG, Width: 64, Height: 48, Data: bytes.Clone(a.Data)} // equal bytes, another buffer
	assert.Equal(t, Result{Failed: true, Reason: stats.DropFrozen, Drop: true}, v.Check(same, t0.Add(2*time.Second)))
	assert.False(t, v.Check(b, t0.Add(3*time.Second)).Failed, "changed: no longer frozen")
	assert.False(t, v.Check(a, t0.Add(4*time.Second)).Failed, "back to a: the clock starts again")
}

// corrupt: the decoder's flag (carried across the encoder) drops a JPEG
// frame like a raw one.
func TestJPEGCorrupt(t *testing.T) {
	f := jpegFrame(t, 64, 48, 90)
	f.Corrupt = true
	assert.Equal(t, Result{Failed: true, Reason: stats.DropCorrupt, Drop: true}, New(DefaultRules()).Check(f, t0))
}

func TestJPEGCheckDoesNotAllocate(t *testing.T) {
	f := jpegFrame(t, 1280, 720, 90)
	v := New(DefaultRules())
	now := t0
	allocs := testing.AllocsPerRun(50, func() {
		now = now.Add(100 * time.Millisecond)
		v.Check(f, now)
	})
	assert.Zero(t, allocs)
}
