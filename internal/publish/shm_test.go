package publish

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/shm"
	"gstcapture/internal/stats"
	"gstcapture/internal/testenv"
)

// TestShmEntries: a camera with slots writes entries without data that
// end with shm_segment, shm_slot and shm_gen, and the slot they name holds
// the frame's pixels; its MAXLEN is capped at the slots, also in what the
// camera is told (health).
func TestShmEntries(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	p := New(c, Options{Batch: 4, Instance: "run1"}, nil, nil)
	cam := stats.NewCamera("cam-shm")
	dir := t.TempDir()
	w := shm.NewWriter(shm.WriterOptions{Dir: dir, CameraID: cam.ID, Instance: "run1", Slots: 8, GID: -1})
	defer w.Close()
	p.AddCamera(cam, 10)
	p.SetSlots(cam.ID, w)
	ring := newTestRing(64, cam)
	fs := newFrames(t)
	const n = 6
	for range n {
		ring.Push(fs.New(cam.ID, 33, 7, frame.BGR))
	}
	stop := runAsync(p, cam, ring)
	require.Eventually(t, func() bool { return cam.Published() == n }, 5*time.Second, 5*time.Millisecond)
	stop()
	fs.assertReleasedOnce(0)
	assertIdentity(t, cam, 0)
	assert.Equal(t, int64(8), cam.Snapshot(time.Now()).RedisMaxLen, "MAXLEN capped at the slots")

	entries := xrange(t, c, "frames:cam-shm")
	require.Len(t, entries, n)
	for _, e := range entries {
		require.Len(t, e, 2*15, "12 fields before data, no data, 3 shm fields: %q", e[:24])
		assert.Equal(t, []string{"size_bytes", strconv.Itoa(100 * 7)}, e[22:24])
		assert.Equal(t, FieldShmSegment, e[24])
		assert.Equal(t, FieldShmSlot, e[26])
		assert.Equal(t, FieldShmGen, e[28])
		slot, _ := strconv.Atoi(e[27])
		gen, _ := strconv.ParseUint(e[29], 10, 64)
		seq, _ := strconv.ParseUint(e[7], 10, 64)
		seg, err := shm.Open(dir, e[25])
		require.NoError(t, err)
		got, err := seg.Copy(nil, shm.Loc{Segment: e[25], Slot: slot, Gen: gen}, 700)
		require.NoError(t, err, "entry of seq %d", seq)
		assert.Equal(t, fs.bySeq(seq).want, got, "the slot holds seq %d's pixels", seq)
		require.NoError(t, seg.Close())
	}

	// Back to delivery redis: data again, no cap.
	p.SetSlots(cam.ID, nil)
	ring.Push(fs.New(cam.ID, 33, 7, frame.BGR))
	stop = runAsync(p, cam, ring)
	require.Eventually(t, func() bool { return cam.Published() == n+1 }, 5*time.Second, 5*time.Millisecond)
	stop()
	entries = xrange(t, c, "frames:cam-shm")
	assert.Equal(t, "data", entries[n][24])
	assert.Equal(t, int64(100), cam.Snapshot(time.Now()).RedisMaxLen, "retention 10 s at 10 fps")
}

// failingSlots refuses every frame, as a full shm.dir would.
type failingSlots struct{}

func (failingSlots) Put(*frame.Frame) (shm.Loc, error) {
	return shm.Loc{}, errors.New("shm: camera cam-full: segment /dev/shm/x: reserve: no space left on device")
}
func (failingSlots) Slots() int               { return 4 }
func (failingSlots) Segment() (string, int64) { return "", 0 }

// TestShmErrorDrops: a frame without a slot is dropped as shm_error and
// released, the error logged once, and nothing is written for it.
func TestShmErrorDrops(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	var log logBuf
	p := New(c, Options{Batch: 4}, log.logger(), nil)
	cam := stats.NewCamera("cam-full")
	p.AddCamera(cam, 10)
	p.SetSlots(cam.ID, failingSlots{})
	ring := newTestRing(64, cam)
	fs := newFrames(t)
	for range 10 {
		ring.Push(fs.New(cam.ID, 8, 8, frame.GRAY8))
	}
	stop := runAsync(p, cam, ring)
	require.Eventually(t, func() bool { return cam.Dropped(stats.DropShmError) == 10 }, 5*time.Second, 5*time.Millisecond)
	stop()
	fs.assertReleasedOnce(0)
	assertIdentity(t, cam, 0)
	assert.Zero(t, cam.Published())
	assert.Len(t, log.lines("delivery shm: frames dropped"), 1, "one log line for one error")
	assert.Contains(t, log.String(), "no space left on device")
	n, err := c.Exists(ctxTimeout(t, time.Second), "frames:cam-full").Result()
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.True(t, p.Healthy(), "a shm error is not Redis down")
}
