package validate

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
	"time"

	"gstcapture/internal/frame"
)

// benchCheck measures Check on a noise frame: no rule triggers, so every
// sample is read, hashed and summed — the common, full-cost path.
func benchCheck(b *testing.B, fm frame.Format, w, h int) {
	f := build(b, fm, w, h, 0, noisy(0, 255, 42))
	v := New(DefaultRules())
	now := time.Now()
	b.SetBytes(int64(len(f.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if res := v.Check(f, now); res.Failed {
			b.Fatalf("noise frame failed: %+v", res)
		}
	}
}

func BenchmarkCheck720pBGR(b *testing.B)   { benchCheck(b, frame.BGR, 1280, 720) }
func BenchmarkCheck1080pBGR(b *testing.B)  { benchCheck(b, frame.BGR, 1920, 1080) }
func BenchmarkCheck1080pI420(b *testing.B) { benchCheck(b, frame.I420, 1920, 1080) }

// BenchmarkCheck720pJPEG: a 720p JPEG of noise (a large one), checked for
// its headers and hashed whole for the frozen rule.
func BenchmarkCheck720pJPEG(b *testing.B) {
	raw := build(b, frame.GRAY8, 1280, 720, 0, noisy(0, 255, 42))
	img := image.NewGray(image.Rect(0, 0, 1280, 720))
	copy(img.Pix, raw.Data)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		b.Fatal(err)
	}
	f := &frame.Frame{Format: frame.JPEG, Width: 1280, Height: 720, Data: buf.Bytes()}
	v := New(DefaultRules())
	now := time.Now()
	b.SetBytes(int64(len(f.Data)))
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Millisecond)
		if res := v.Check(f, now); res.Failed {
			b.Fatalf("failed: %+v", res)
		}
	}
}
