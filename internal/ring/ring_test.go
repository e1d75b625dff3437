package ring

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// item stands in for a frame: released at most once, as frame.Frame is.
type item struct {
	Seq      uint64
	Data     []byte
	released atomic.Bool
	release  func()
}

func (it *item) Release() {
	if it.released.CompareAndSwap(false, true) && it.release != nil {
		it.release()
	}
}

func (it *item) Released() bool       { return it.released.Load() }
func (it *item) Size() int            { return len(it.Data) }
func (it *item) SetRelease(fn func()) { it.release = fn }

// drops counts what the ring reports, as the camera's counters do.
type drops struct{ overflow, closed atomic.Uint64 }

func (d *drops) RingOverflow(n int) { d.overflow.Add(uint64(n)) }
func (d *drops) RingClosed(n int)   { d.closed.Add(uint64(n)) }
func (d *drops) total() uint64      { return d.overflow.Load() + d.closed.Load() }

// newRing is New for the test's items; rep may be nil.
func newRing(capacity int, rep *drops) *Ring[*item] {
	if rep == nil {
		return New[*item](capacity, nil)
	}
	return New[*item](capacity, rep)
}

// tracker hands out frames whose release function counts calls, so a test
// can prove each frame was given back exactly once.
type tracker struct {
	releases []atomic.Int32
	frames   []*item
}

func newTracker(n int) *tracker {
	t := &tracker{releases: make([]atomic.Int32, n), frames: make([]*item, n)}
	for i := range n {
		f := &item{Seq: uint64(i), Data: []byte{byte(i)}}
		f.SetRelease(func() { t.releases[i].Add(1) })
		t.frames[i] = f
	}
	return t
}

func (t *tracker) released(i int) int32 { return t.releases[i].Load() }

// assertAllReleasedOnce checks no frame leaked and none was given back twice.
func (t *tracker) assertAllReleasedOnce(tb testing.TB) {
	tb.Helper()
	for i := range t.frames {
		if n := t.released(i); n != 1 {
			tb.Errorf("frame %d released %d times, want 1", i, n)
		}
	}
}

func seqs(fs []*item) []uint64 {
	out := make([]uint64, len(fs))
	for i, f := range fs {
		out[i] = f.Seq
	}
	return out
}

func TestNewPanicsOnZeroCapacity(t *testing.T) {
	assert.Panics(t, func() { newRing(0, nil) })
	r := newRing(1, nil)
	assert.Equal(t, 1, r.Cap())
	assert.Equal(t, 0, r.Len())
}

func TestFIFO(t *testing.T) {
	tr := newTracker(5)
	r := newRing(8, &drops{})
	for _, f := range tr.frames {
		r.Push(f)
	}
	assert.Equal(t, 5, r.Len())

	got := r.PopBatch(make([]*item, 0, 2))
	assert.Equal(t, []uint64{0, 1}, seqs(got))
	got = r.PopBatch(make([]*item, 0, 10))
	assert.Equal(t, []uint64{2, 3, 4}, seqs(got))
	assert.Empty(t, r.PopBatch(make([]*item, 0, 10)))
	assert.Equal(t, 0, r.Len())
	for i := range tr.frames {
		assert.Zero(t, tr.released(i), "ring released popped frame %d", i)
	}
}

func TestPopBatchAppendsToDst(t *testing.T) {
	tr := newTracker(3)
	r := newRing(4, nil)
	for _, f := range tr.frames {
		r.Push(f)
	}
	dst := make([]*item, 1, 3)
	dst[0] = &item{Seq: 99}
	dst = r.PopBatch(dst)
	assert.Equal(t, []uint64{99, 0, 1}, seqs(dst))
	// A full dst takes nothing.
	assert.Len(t, r.PopBatch(dst), 3)
	assert.Equal(t, 1, r.Len())
}

func TestWrapAround(t *testing.T) {
	const capacity = 3
	tr := newTracker(100)
	r := newRing(capacity, nil)
	var popped []uint64
	dst := make([]*item, 0, 2)
	for i, f := range tr.frames {
		r.Push(f)
		if i%2 == 1 {
			for _, f := range r.PopBatch(dst[:0]) {
				popped = append(popped, f.Seq)
			}
		}
	}
	for i := range popped {
		assert.Equal(t, uint64(i), popped[i])
	}
	assert.Len(t, popped, 100)
}

func TestOverflowEvictsOldest(t *testing.T) {
	cam := &drops{}
	tr := newTracker(7)
	r := newRing(3, cam)
	for _, f := range tr.frames {
		r.Push(f)
	}
	assert.Equal(t, 3, r.Len())
	assert.Equal(t, uint64(4), cam.overflow.Load())
	assert.Equal(t, uint64(4), cam.total())
	for i := range 4 {
		assert.EqualValues(t, 1, tr.released(i), "evicted frame %d", i)
	}
	got := r.PopBatch(make([]*item, 0, 8))
	assert.Equal(t, []uint64{4, 5, 6}, seqs(got))
	for _, f := range got {
		assert.False(t, f.Released(), "queued frame %d was released", f.Seq)
		f.Release()
	}
	tr.assertAllReleasedOnce(t)
}

func TestCapacityOne(t *testing.T) {
	cam := &drops{}
	tr := newTracker(3)
	r := newRing(1, cam)
	for _, f := range tr.frames {
		r.Push(f)
	}
	got := r.PopBatch(make([]*item, 0, 4))
	assert.Equal(t, []uint64{2}, seqs(got))
	assert.Equal(t, uint64(2), cam.overflow.Load())
}

func TestReadySignals(t *testing.T) {
	tr := newTracker(3)
	r := newRing(4, nil)
	select {
	case <-r.Ready():
		t.Fatal("ready before any push")
	default:
	}
	// Signals coalesce: three pushes, one pending signal, never a block.
	for _, f := range tr.frames {
		r.Push(f)
	}
	select {
	case <-r.Ready():
	default:
		t.Fatal("no ready signal after push")
	}
	select {
	case <-r.Ready():
		t.Fatal("signals did not coalesce")
	default:
	}
}

func TestClose(t *testing.T) {
	cam := &drops{}
	tr := newTracker(6)
	r := newRing(4, cam)
	for _, f := range tr.frames[:3] {
		r.Push(f)
	}
	r.PopBatch(make([]*item, 0, 1))[0].Release()

	rest := r.Close()
	assert.Equal(t, []uint64{1, 2}, seqs(rest))
	for _, f := range rest {
		assert.False(t, f.Released(), "Close released frame %d it handed back", f.Seq)
	}
	assert.Equal(t, 0, r.Len())
	assert.Nil(t, r.Close(), "second Close")

	// After Close a push is released at once and counted as shutdown.
	for _, f := range tr.frames[3:] {
		r.Push(f)
	}
	for i := 3; i < 6; i++ {
		assert.EqualValues(t, 1, tr.released(i))
	}
	assert.Equal(t, uint64(3), cam.closed.Load())
	assert.Equal(t, 0, r.Len())
	assert.Empty(t, r.PopBatch(make([]*item, 0, 4)))

	for _, f := range rest {
		f.Release()
	}
	tr.assertAllReleasedOnce(t)
}

func TestPushNilIgnored(t *testing.T) {
	r := newRing(2, nil)
	r.Push(nil)
	assert.Equal(t, 0, r.Len())
}

// TestConcurrent runs producers against one consumer under -race and checks
// the accounting identity, per-producer FIFO order and exactly-once release.
func TestConcurrent(t *testing.T) {
	const (
		producers = 8
		perProd   = 5000
		capacity  = 16
	)
	cam := &drops{}
	tr := newTracker(producers * perProd)
	r := newRing(capacity, cam)

	var popped atomic.Uint64
	stop := make(chan struct{})
	consumerDone := make(chan error, 1)
	go func() {
		last := make([]int, producers)
		for i := range last {
			last[i] = -1
		}
		batch := make([]*item, 0, 4)
		check := func() error {
			for {
				batch = r.PopBatch(batch[:0])
				if len(batch) == 0 {
					return nil
				}
				for _, f := range batch {
					p, k := int(f.Seq)/perProd, int(f.Seq)%perProd
					if k <= last[p] {
						return fmt.Errorf("producer %d: frame %d popped after %d", p, k, last[p])
					}
					last[p] = k
					if f.Released() {
						return fmt.Errorf("frame %d popped already released", f.Seq)
					}
					f.Release()
				}
				popped.Add(uint64(len(batch)))
			}
		}
		for {
			select {
			case <-r.Ready():
				if err := check(); err != nil {
					consumerDone <- err
					return
				}
			case <-stop:
				consumerDone <- check()
				return
			}
		}
	}()

	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for k := range perProd {
				r.Push(tr.frames[p*perProd+k])
			}
		})
	}
	wg.Wait()
	close(stop)
	require.NoError(t, <-consumerDone)

	rest := r.Close()
	pushed := uint64(producers * perProd)
	dropped := cam.overflow.Load()
	assert.Equal(t, pushed, popped.Load()+dropped+uint64(len(rest)),
		"pushed == popped + dropped + queued (popped=%d dropped=%d queued=%d)", popped.Load(), dropped, len(rest))
	assert.Equal(t, dropped, cam.total())
	for _, f := range rest {
		f.Release()
	}
	tr.assertAllReleasedOnce(t)
}

// TestConcurrentClose races producers with Close: every frame must end up
// released exactly once, counted either as overflow, shutdown or returned.
func TestConcurrentClose(t *testing.T) {
	const producers, perProd = 4, 2000
	cam := &drops{}
	tr := newTracker(producers * perProd)
	r := newRing(8, cam)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for k := range perProd {
				r.Push(tr.frames[p*perProd+k])
			}
		})
	}
	var rest []*item
	wg.Go(func() { rest = r.Close() })
	wg.Wait()

	assert.Equal(t, uint64(producers*perProd),
		cam.overflow.Load()+cam.closed.Load()+uint64(len(rest)))
	for _, f := range rest {
		assert.False(t, f.Released())
		f.Release()
	}
	tr.assertAllReleasedOnce(t)
}

func TestZeroAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	tr := newTracker(4)
	r := newRing(2, &drops{})
	dst := make([]*item, 0, 2)
	allocs := testing.AllocsPerRun(100, func() {
		for _, f := range tr.frames {
			r.Push(f)
		}
		dst = r.PopBatch(dst[:0])
	})
	assert.Zero(t, allocs)
}

// A byte limit evicts the oldest frames until the new one fits, keeps the
// newest however large, counts each eviction as ring_overflow, and leaves
// the count bound working as before.
func TestByteLimit(t *testing.T) {
	cam := &drops{}
	tr := newTracker(8)
	for i, f := range tr.frames {
		f.Data = make([]byte, 100*(1+i%2)) // 100, 200, 100, 200, ...
	}
	r := newRing(32, cam)
	r.SetByteLimit(350)
	r.Push(tr.frames[0]) // 100
	r.Push(tr.frames[1]) // 300
	assert.Equal(t, int64(300), r.Bytes())
	r.Push(tr.frames[2]) // 400 > 350: frame 0 goes
	assert.Equal(t, 2, r.Len())
	assert.Equal(t, int64(300), r.Bytes())
	assert.Equal(t, uint64(1), cam.overflow.Load())
	assert.Equal(t, int32(1), tr.released(0))

	r.SetByteLimit(150)  // lowered: the next push evicts both queued frames
	r.Push(tr.frames[3]) // 200 alone is above the limit and still kept
	assert.Equal(t, []uint64{3}, seqs(r.PopBatch(make([]*item, 0, 8))))
	assert.Equal(t, int64(0), r.Bytes())
	assert.Equal(t, uint64(3), cam.overflow.Load())
	tr.frames[3].Release()

	r.SetByteLimit(0) // no byte bound: the count bound rules again
	for _, f := range tr.frames[4:] {
		r.Push(f)
	}
	assert.Equal(t, 4, r.Len())
	assert.Equal(t, int64(600), r.Bytes())
	for _, f := range r.Close() {
		f.Release()
	}
	assert.Equal(t, int64(0), r.Bytes())
	tr.assertAllReleasedOnce(t)
}
