package ring

import (
	"testing"
)

// consume drains r on every Ready signal until done is closed, as the
// publisher does, and returns when it has stopped.
func consume(r *Ring[*item], done <-chan struct{}) <-chan struct{} {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		batch := make([]*item, 0, 16)
		for {
			select {
			case <-r.Ready():
				for {
					batch = r.PopBatch(batch[:0])
					if len(batch) == 0 {
						break
					}
				}
			case <-done:
				return
			}
		}
	}()
	return stopped
}

// BenchmarkPushPop is one streaming thread feeding one publisher.
func BenchmarkPushPop(b *testing.B) {
	r := newRing(64, &drops{})
	done := make(chan struct{})
	stopped := consume(r, done)
	// Frames are reused: Release is idempotent, so evicting one again is
	// harmless and the loop measures only the ring.
	f := &item{}
	b.ReportAllocs()
	for b.Loop() {
		r.Push(f)
	}
	b.StopTimer()
	close(done)
	<-stopped
}

// BenchmarkPushPopParallel is many producers contending on one ring, the
// worst case for the mutex.
func BenchmarkPushPopParallel(b *testing.B) {
	r := newRing(64, &drops{})
	done := make(chan struct{})
	stopped := consume(r, done)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		f := &item{}
		for pb.Next() {
			r.Push(f)
		}
	})
	b.StopTimer()
	close(done)
	<-stopped
}
