package ring

import (
	"fmt"
	"sync"

	"gstcapture/internal/frame"
	"gstcapture/internal/stats"
)

// Ring is a bounded FIFO of frames for one camera. It is safe for any number
// of producers and one consumer.
type Ring struct {
	cam   *stats.Camera
	ready chan struct{}

	mu       sync.Mutex
	buf      []*frame.Frame
	head     int   // index of the oldest frame
	n        int   // frames queued
	bytes    int64 // pixel bytes of the frames queued
	maxBytes int64 // bound on bytes besides the count; 0 = none
	closed   bool
}

// New returns an empty ring holding at most capacity frames whose drops are
// counted on cam (which may be nil, e.g. in tests). It panics if capacity < 1,
// which is a programming error: config validation bounds the value.
func New(capacity int, cam *stats.Camera) *Ring {
	if capacity < 1 {
		panic(fmt.Sprintf("ring: capacity %d, want >= 1", capacity))
	}
	return &Ring{
		cam:   cam,
		ready: make(chan struct{}, 1),
		buf:   make([]*frame.Frame, capacity),
	}
}

// SetByteLimit bounds the pixel bytes queued besides the frame count: a
// Push evicts the oldest frames until the new one fits, and the newest
// frame is always kept, however large. 0 removes the bound. Frames queued
// beyond a lowered limit go with the next Push.
func (r *Ring) SetByteLimit(n int64) {
	r.mu.Lock()
	r.maxBytes = max(n, 0)
	r.mu.Unlock()
}

// Push queues f and never blocks. When the ring is full (its capacity, or
// its byte limit) the oldest frames are evicted, released and counted as
// DropRingOverflow. After Close, f itself is released and counted as
// DropShutdown. A nil f is ignored.
func (r *Ring) Push(f *frame.Frame) {
	if f == nil {
		return
	}
	var evicted [4]*frame.Frame
	out := evicted[:0] // evictions beyond 4 (a lowered byte limit) are rare
	sz := int64(len(f.Data))
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		f.Release()
		r.drop(stats.DropShutdown)
		return
	}
	for r.n > 0 && (r.n == len(r.buf) || (r.maxBytes > 0 && r.bytes+sz > r.maxBytes)) {
		old := r.buf[r.head]
		r.buf[r.head] = nil
		r.head = r.wrap(r.head + 1)
		r.n--
		r.bytes -= int64(len(old.Data))
		out = append(out, old)
	}
	r.buf[r.wrap(r.head+r.n)] = f
	r.n++
	r.bytes += sz
	r.mu.Unlock()

	// Release runs the GStreamer unmap/unref; keep it out of the lock.
	for _, old := range out {
		old.Release()
	}
	if len(out) > 0 && r.cam != nil {
		r.cam.Drop(stats.DropRingOverflow, uint64(len(out)))
	}
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

// PopBatch appends up to cap(dst)-len(dst) of the oldest frames to dst in
// FIFO order and returns it; it never blocks and never allocates. Ownership
// of the returned frames passes to the caller.
func (r *Ring) PopBatch(dst []*frame.Frame) []*frame.Frame {
	room := cap(dst) - len(dst)
	if room <= 0 {
		return dst
	}
	r.mu.Lock()
	k := min(room, r.n)
	for range k {
		f := r.buf[r.head]
		r.bytes -= int64(len(f.Data))
		dst = append(dst, f)
		r.buf[r.head] = nil // don't pin the frame after it left
		r.head = r.wrap(r.head + 1)
	}
	r.n -= k
	r.mu.Unlock()
	return dst
}

// Ready is signalled after each Push (a buffered channel of one; signals
// coalesce). A receive means "the ring may be non-empty", so the consumer
// should drain with PopBatch until it returns nothing. Close does not close it.
func (r *Ring) Ready() <-chan struct{} { return r.ready }

// Len returns the number of frames queued.
func (r *Ring) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Cap returns the ring's capacity in frames.
func (r *Ring) Cap() int { return len(r.buf) }

// Bytes returns the pixel bytes queued.
func (r *Ring) Bytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

// Close stops the ring: later Pushes release their frame and count
// DropShutdown. It returns the frames still queued, oldest first, which the
// caller now owns and must flush or release. Calling Close again returns nil.
func (r *Ring) Close() []*frame.Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	out := make([]*frame.Frame, 0, r.n)
	for range r.n {
		out = append(out, r.buf[r.head])
		r.buf[r.head] = nil
		r.head = r.wrap(r.head + 1)
	}
	r.n = 0
	r.bytes = 0
	return out
}

func (r *Ring) drop(reason stats.DropReason) {
	if r.cam != nil {
		r.cam.Drop(reason, 1)
	}
}

// wrap maps i in [0, 2*cap) back into the buffer; cheaper than %.
func (r *Ring) wrap(i int) int {
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	return i
}
