package shm

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
)

func testFrame(seq uint64, w, h int, fill byte) *frame.Frame {
	stride, size, _ := frame.Layout(frame.BGR, w, h)
	return &frame.Frame{Seq: seq, Width: w, Height: h, Stride: stride, Format: frame.BGR, Data: bytes.Repeat([]byte{fill}, size)}
}

func newWriter(t *testing.T, dir string, slots int) *Writer {
	w := NewWriter(WriterOptions{Dir: dir, CameraID: "cam-1", Instance: "t0.ab", Slots: slots, GID: -1})
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func TestPutAndRead(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, dir, 3)
	f := testFrame(7, 5, 3, 0x42)
	loc, err := w.Put(f)
	require.NoError(t, err)
	assert.Equal(t, Name("cam-1", "t0.ab", 1), loc.Segment)
	assert.Equal(t, 0, loc.Slot)
	assert.Equal(t, uint64(2), loc.Gen, "the first write of a slot ends at generation 2")

	st, err := os.Stat(filepath.Join(dir, loc.Segment))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), st.Mode().Perm(), "segment files are 0640")
	assert.Equal(t, SegmentBytes(3, len(f.Data)), st.Size())

	seg, err := Open(dir, loc.Segment)
	require.NoError(t, err)
	defer seg.Close()
	assert.Equal(t, Caps{Format: frame.BGR, Width: 5, Height: 3, Stride: 16, Bytes: 48}, seg.Caps)
	assert.Equal(t, "cam-1", seg.CameraID)
	assert.Equal(t, 3, seg.Slots())
	got, err := seg.Copy(nil, loc, len(f.Data))
	require.NoError(t, err)
	assert.Equal(t, f.Data, got)
	v, err := seg.View(loc, len(f.Data))
	require.NoError(t, err)
	assert.Equal(t, f.Data, v)
	require.NoError(t, seg.Check(loc))
}

func TestLappedSlotIsDetected(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, dir, 2)
	first, err := w.Put(testFrame(1, 4, 4, 1))
	require.NoError(t, err)
	seg, err := Open(dir, first.Segment)
	require.NoError(t, err)
	defer seg.Close()
	view, err := seg.View(first, 48)
	require.NoError(t, err)

	second, err := w.Put(testFrame(2, 4, 4, 2))
	require.NoError(t, err)
	assert.Equal(t, 1, second.Slot)
	require.NoError(t, seg.Check(first), "slot 0 is not lapped by a write to slot 1")

	third, err := w.Put(testFrame(3, 4, 4, 3)) // slot 0 again
	require.NoError(t, err)
	assert.Equal(t, 0, third.Slot)
	assert.Equal(t, uint64(4), third.Gen)
	assert.ErrorIs(t, seg.Check(first), ErrLapped, "the view taken before the lap must fail its check")
	assert.Equal(t, byte(3), view[0], "the view now shows the new frame: hence the check")
	_, err = seg.Copy(nil, first, 48)
	assert.ErrorIs(t, err, ErrLapped)
	_, err = seg.View(first, 48)
	assert.ErrorIs(t, err, ErrLapped)
	got, err := seg.Copy(nil, third, 48)
	require.NoError(t, err)
	assert.Equal(t, bytes.Repeat([]byte{3}, 48), got)
}

func TestOddGenerationIsAWriteInProgress(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, dir, 2)
	loc, err := w.Put(testFrame(1, 4, 4, 1))
	require.NoError(t, err)
	gen(w.seg.mem, 0).Store(loc.Gen + 1) // as the writer does before copying
	seg, err := Open(dir, loc.Segment)
	require.NoError(t, err)
	defer seg.Close()
	assert.ErrorIs(t, seg.Check(loc), ErrLapped)
	assert.ErrorIs(t, seg.Check(Loc{Segment: loc.Segment, Slot: 0, Gen: loc.Gen + 1}), ErrLapped, "an odd generation is never a frame")
}

func TestNewCapsStartANewSegment(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, dir, 2)
	a, err := w.Put(testFrame(1, 4, 4, 1))
	require.NoError(t, err)
	b, err := w.Put(testFrame(2, 8, 2, 2))
	require.NoError(t, err)
	assert.NotEqual(t, a.Segment, b.Segment)
	assert.Equal(t, 0, b.Slot, "a new segment starts at slot 0")
	_, err = os.Stat(filepath.Join(dir, a.Segment))
	assert.ErrorIs(t, err, os.ErrNotExist, "the old segment is removed")
	_, err = Open(dir, a.Segment)
	assert.Error(t, err)
	seg, err := Open(dir, b.Segment)
	require.NoError(t, err)
	defer seg.Close()
	assert.Equal(t, 8, seg.Caps.Width)

	require.NoError(t, w.Close())
	_, err = os.Stat(filepath.Join(dir, b.Segment))
	assert.ErrorIs(t, err, os.ErrNotExist, "Close removes the segment")
}

func TestSegmentNamesAreUniqueInARun(t *testing.T) {
	dir := t.TempDir()
	var n atomic.Uint64
	a := NewWriter(WriterOptions{Dir: dir, CameraID: "a", Instance: "i", Slots: 2, GID: -1, Counter: &n})
	b := NewWriter(WriterOptions{Dir: dir, CameraID: "a", Instance: "i", Slots: 2, GID: -1, Counter: &n})
	defer a.Close()
	defer b.Close()
	la, err := a.Put(testFrame(1, 2, 2, 0))
	require.NoError(t, err)
	lb, err := b.Put(testFrame(1, 2, 2, 0))
	require.NoError(t, err, "a rebuilt camera's writer must not collide with the old one's file")
	assert.NotEqual(t, la.Segment, lb.Segment)
}

// TestSweepRemovesOnlyDeadWritersFiles: a segment whose writer died is
// removed; a live writer's (here another process holding the lock is
// simulated by this process's own writer) stays, as do other files.
func TestSweepRemovesOnlyDeadWritersFiles(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, dir, 2)
	live, err := w.Put(testFrame(1, 2, 2, 0))
	require.NoError(t, err)
	dead := filepath.Join(dir, Name("cam-2", "old.1", 3))
	require.NoError(t, os.WriteFile(dead, []byte("x"), 0o640))
	other := filepath.Join(dir, "not-ours")
	require.NoError(t, os.WriteFile(other, []byte("x"), 0o640))

	removed, err := Sweep(dir)
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Base(dead)}, removed)
	assert.FileExists(t, filepath.Join(dir, live.Segment))
	assert.FileExists(t, other)
}

// TestSweepSparesAnotherProcesssLock: flock(1) in a child process holds a
// segment file's lock, as a gstcapture in another container would.
func TestSweepSparesAnotherProcesssLock(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, Name("cam-3", "x.1", 1))
	require.NoError(t, os.WriteFile(path, []byte("x"), 0o640))
	cmd := exec.Command("flock", "-x", path, "sleep", "30")
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	require.Eventually(t, func() bool {
		f, err := os.Open(path)
		if err != nil {
			return false
		}
		defer f.Close()
		// Held by the child: our own try fails.
		return tryLock(f) != nil
	}, 5e9, 1e7)
	removed, err := Sweep(dir)
	require.NoError(t, err)
	assert.Empty(t, removed)
	assert.FileExists(t, path)
}

func TestOpenRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir, "../etc/passwd")
	assert.ErrorContains(t, err, "not a gstcapture segment file name")
	name := Name("c", "i", 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), make([]byte, 8192), 0o640))
	_, err = Open(dir, name)
	assert.ErrorContains(t, err, "bad magic")
	_, err = Open(dir, Name("c", "i", 2))
	assert.ErrorContains(t, err, "no such file")
}

func TestViewRejectsOutOfRange(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, dir, 2)
	loc, err := w.Put(testFrame(1, 2, 2, 0))
	require.NoError(t, err)
	seg, err := Open(dir, loc.Segment)
	require.NoError(t, err)
	defer seg.Close()
	_, err = seg.View(Loc{Slot: 2, Gen: loc.Gen}, 16)
	assert.ErrorContains(t, err, "slot 2 out of range")
	_, err = seg.View(loc, 4097)
	assert.ErrorContains(t, err, "does not fit a slot")
}

// TestConcurrentReaderNeverReturnsATornFrame: a writer laps a 2-slot ring
// as fast as it can while a reader copies; every copy that passes its check
// is one frame's bytes, all alike.
func TestConcurrentReaderNeverReturnsATornFrame(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, dir, 2)
	const n = 4000
	locs := make(chan Loc, 1)
	first, err := w.Put(testFrame(0, 64, 64, 0))
	require.NoError(t, err)
	seg, err := Open(dir, first.Segment)
	require.NoError(t, err)
	defer seg.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(locs)
		for i := 1; i <= n; i++ {
			loc, err := w.Put(testFrame(uint64(i), 64, 64, byte(i)))
			if err != nil {
				t.Error(err)
				return
			}
			select {
			case locs <- loc:
			default:
			}
		}
	}()
	var ok, lapped int
	var buf []byte
	for loc := range locs {
		b, err := seg.Copy(buf, loc, 64*64*3)
		if err != nil {
			require.ErrorIs(t, err, ErrLapped)
			lapped++
			continue
		}
		buf = b
		for _, c := range b {
			if c != b[0] {
				t.Fatalf("a copy that passed its check is torn: %d and %d", b[0], c)
			}
		}
		ok++
	}
	wg.Wait()
	t.Logf("%d frames read whole, %d lapped", ok, lapped)
	assert.Positive(t, ok)
}

// TestVariableSizeFramesShareASegment: frames of one caps whose size
// varies (JPEG) stay in one segment while they fit a slot; a larger one
// starts a segment with room to spare.
func TestVariableSizeFramesShareASegment(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, dir, 2)
	jpeg := func(n int, fill byte) *frame.Frame {
		return &frame.Frame{Seq: 1, Width: 64, Height: 64, Format: "JPEG", Data: bytes.Repeat([]byte{fill}, n)}
	}
	a, err := w.Put(jpeg(5000, 1))
	require.NoError(t, err)
	b, err := w.Put(jpeg(3000, 2)) // smaller, and up to the slot's 8192
	require.NoError(t, err)
	c, err := w.Put(jpeg(8192, 3))
	require.NoError(t, err)
	assert.Equal(t, a.Segment, b.Segment)
	assert.Equal(t, a.Segment, c.Segment)
	d, err := w.Put(jpeg(9000, 4))
	require.NoError(t, err)
	assert.NotEqual(t, a.Segment, d.Segment, "a frame larger than a slot needs a new segment")
	seg, err := Open(dir, d.Segment)
	require.NoError(t, err)
	defer seg.Close()
	got, err := seg.Copy(nil, d, 9000)
	require.NoError(t, err)
	assert.Equal(t, bytes.Repeat([]byte{4}, 9000), got)
	_, err = seg.View(d, 13500)
	assert.NoError(t, err, "grown by half: 13500 bytes fit a slot of 16384")
}

// TestOpenRejectsOverflowingHeader: slots x slot_bytes that overflow int64
// must not pass the bounds check (a reader would slice out of range).
func TestOpenRejectsOverflowingHeader(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, dir, 2)
	loc, err := w.Put(testFrame(1, 2, 2, 0))
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dir, loc.Segment))
	require.NoError(t, err)
	binary.LittleEndian.PutUint64(b[offSlotBytes:], 0x6000000000000000)
	name := Name("evil", "i", 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o640))
	_, err = Open(dir, name)
	assert.ErrorContains(t, err, "header does not fit the file")
}
