package ring

import (
	"fmt"
	"sync"
)

// Item is what a ring holds: a frame, in gstcapture. Release gives the
// item's resources back (the ring calls it for items it evicts or refuses);
// Size is the bytes it holds, for the byte limit.
type Item interface {
	comparable
	Release()
	Size() int
}

// Reporter is told of the items the ring let go of itself, never handing
// them out: the camera's counters implement it (*stats.Camera). Calls come
// from Push, on the producer's goroutine, and must not block.
type Reporter interface {
	// RingOverflow: the n oldest items were evicted to make room.
	RingOverflow(n int)
	// RingClosed: n items were pushed after Close, and released.
	RingClosed(n int)
}

// Ring is a bounded FIFO of items for one camera. It is safe for any number
// of producers and one consumer.
type Ring[T Item] struct {
	rep   Reporter
	ready chan struct{}

	mu       sync.Mutex
	buf      []T
	head     int   // index of the oldest item
	n        int   // items queued
	bytes    int64 // Size of the items queued
	maxBytes int64 // bound on bytes besides the count; 0 = none
	closed   bool
}

// New returns an empty ring holding at most capacity items whose drops are
// reported to rep (which may be nil, e.g. in tests). It panics if capacity
// < 1, which is a programming error: config validation bounds the value.
func New[T Item](capacity int, rep Reporter) *Ring[T] {
	if capacity < 1 {
		panic(fmt.Sprintf("ring: capacity %d, want >= 1", capacity))
	}
	return &Ring[T]{
		rep:   rep,
		ready: make(chan struct{}, 1),
		buf:   make([]T, capacity),
	}
}

// SetByteLimit bounds the bytes queued besides the item count: a Push
// evicts the oldest items until the new one fits, and the newest item is
// always kept, however large. 0 removes the bound. Items queued beyond a
// lowered limit go with the next Push.
func (r *Ring[T]) SetByteLimit(n int64) {
	r.mu.Lock()
	r.maxBytes = max(n, 0)
	r.mu.Unlock()
}

// Push queues it and never blocks. When the ring is full (its capacity, or
// its byte limit) the oldest items are evicted, released and reported as
// RingOverflow. After Close, it itself is released and reported as
// RingClosed. The zero T (a nil frame) is ignored. The caller must not
// touch it afterwards.
func (r *Ring[T]) Push(it T) {
	var zero T
	if it == zero {
		return
	}
	var evicted [4]T
	out := evicted[:0] // evictions beyond 4 (a lowered byte limit) are rare
	sz := int64(it.Size())
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		it.Release()
		if r.rep != nil {
			r.rep.RingClosed(1)
		}
		return
	}
	for r.n > 0 && (r.n == len(r.buf) || (r.maxBytes > 0 && r.bytes+sz > r.maxBytes)) {
		old := r.buf[r.head]
		r.buf[r.head] = zero
		r.head = r.wrap(r.head + 1)
		r.n--
		r.bytes -= int64(old.Size())
		out = append(out, old)
	}
	r.buf[r.wrap(r.head+r.n)] = it
	r.n++
	r.bytes += sz
	r.mu.Unlock()

	// Release runs the GStreamer unmap/unref; keep it out of the lock.
	for _, old := range out {
		old.Release()
	}
	if len(out) > 0 && r.rep != nil {
		r.rep.RingOverflow(len(out))
	}
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

// PopBatch appends up to cap(dst)-len(dst) of the oldest items to dst in
// FIFO order and returns it; it never blocks and never allocates. Ownership
// of the returned items passes to the caller.
func (r *Ring[T]) PopBatch(dst []T) []T {
	room := cap(dst) - len(dst)
	if room <= 0 {
		return dst
	}
	var zero T
	r.mu.Lock()
	k := min(room, r.n)
	for range k {
		it := r.buf[r.head]
		r.bytes -= int64(it.Size())
		dst = append(dst, it)
		r.buf[r.head] = zero // don't pin the item after it left
		r.head = r.wrap(r.head + 1)
	}
	r.n -= k
	r.mu.Unlock()
	return dst
}

// Ready is signalled after each Push (a buffered channel of one; signals
// coalesce). A receive means "the ring may be non-empty", so the consumer
// should drain with PopBatch until it returns nothing. Close does not close it.
func (r *Ring[T]) Ready() <-chan struct{} { return r.ready }

// Len returns the number of items queued.
func (r *Ring[T]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Cap returns the ring's capacity in items.
func (r *Ring[T]) Cap() int { return len(r.buf) }

// Bytes returns the bytes queued.
func (r *Ring[T]) Bytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

// Close stops the ring: later Pushes release their item and report
// RingClosed. It returns the items still queued, oldest first, which the
// caller now owns and must flush or release. Calling Close again returns nil.
func (r *Ring[T]) Close() []T {
	var zero T
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	out := make([]T, 0, r.n)
	for range r.n {
		out = append(out, r.buf[r.head])
		r.buf[r.head] = zero
		r.head = r.wrap(r.head + 1)
	}
	r.n = 0
	r.bytes = 0
	return out
}

// wrap maps i in [0, 2*cap) back into the buffer; cheaper than %.
func (r *Ring[T]) wrap(i int) int {
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	return i
}
