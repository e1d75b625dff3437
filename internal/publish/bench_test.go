package publish

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"gstcapture/internal/frame"
	"gstcapture/internal/stats"
	"gstcapture/internal/testenv"
)

// baselineFPS keeps each size's unbatched frames/s so the pipelined run of
// the same size can report its speed-up measured in the same process.
var baselineFPS sync.Map // "WxH" -> float64

// BenchmarkXAddPipelined publishes BGR frames to a local redis-server
// (160x90 shows the round-trip-bound regime where batching pays off)
// through the real round-trip path (encode, pipelined XADD, release,
// count). One op is one frame. batch=1 is the baseline; batch=16 reports
// x_vs_batch1 against it.
func BenchmarkXAddPipelined(b *testing.B) {
	rs := testenv.StartRedis(b)
	client := rs.Client(b)
	sizes := []struct{ w, h int }{{160, 90}, {640, 360}, {1280, 720}, {1920, 1080}}
	for _, sz := range sizes {
		for _, batch := range []int{1, DefaultBatch} {
			name := fmt.Sprintf("%dx%d/batch=%d", sz.w, sz.h, batch)
			b.Run(name, func(b *testing.B) {
				stride, size, err := frame.Layout(frame.BGR, sz.w, sz.h)
				if err != nil {
					b.Fatal(err)
				}
				pix := make([]byte, size)
				for i := range pix {
					pix[i] = byte(i * 7)
				}
				// Large entries fill a stream node each, so "~" trims close to
				// MaxLen and Redis memory stays near MaxLen frames.
				p := New(client, Options{MaxLen: 32, Batch: batch, Timeout: 30 * time.Second, Instance: "bench"}, nil, nil)
				cam := stats.NewCamera(fmt.Sprintf("bench-%dx%d", sz.w, sz.h))
				w := p.newWorker(cam)
				frames := make([]frame.Frame, batch)
				ptrs := make([]*frame.Frame, batch)
				ctx := context.Background()
				now := time.Now()
				var seq uint64

				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for done := 0; done < b.N; {
					n := min(batch, b.N-done)
					for i := range n {
						seq++
						frames[i] = frame.Frame{
							Seq: seq, CaptureTime: now, CaptureSource: frame.SourceRTCP, SinkTime: now,
							PTS: -1, Width: sz.w, Height: sz.h, Stride: stride, Format: frame.BGR, Data: pix,
						}
						ptrs[i] = &frames[i]
					}
					if _, err := w.send(ctx, ptrs[:n]); err != nil {
						b.Fatal(err)
					}
					done += n
				}
				b.StopTimer()
				fps := float64(b.N) / b.Elapsed().Seconds()
				b.ReportMetric(fps, "frames/s")
				key := fmt.Sprintf("%dx%d", sz.w, sz.h)
				if batch == 1 {
					baselineFPS.Store(key, fps)
				} else if base, ok := baselineFPS.Load(key); ok {
					b.ReportMetric(fps/base.(float64), "x_vs_batch1")
				}
				if got := cam.Published(); got != uint64(b.N) {
					b.Fatalf("published %d of %d", got, b.N)
				}
			})
		}
	}
}
