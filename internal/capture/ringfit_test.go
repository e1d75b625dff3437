package capture

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/membudget"
	"gstcapture/internal/publish"
	"gstcapture/internal/stats"
	"gstcapture/internal/validate"
)

// The ring is sized in bytes from the camera's first frame within its share
// of memory.budget, again when the frame size changes, and the shortening
// is reported (stats and one warning per size).
func TestRingFitsTheShare(t *testing.T) {
	cam, _, _ := newTestCamera(t, "c", validate.DefaultRules())
	var logs bytes.Buffer
	const sz = 16 * 16 // the pool's GRAY8 frames
	// Room for the 10 frames before the ring, one batch of 2, and 3 in the ring.
	cam.fit = ringFit{share: (membudget.PreRingFrames + 2 + 3) * sz, batch: 2, log: slog.New(slog.NewJSONHandler(&logs, nil))}
	cam.plan.Camera.Settings.RingSize = 8
	cam.ring.SetByteLimit(0)
	require.Equal(t, 2, publish.BatchFrames(2, sz))

	pool := newFramePool(16)
	for range 6 {
		cam.onFrame(pool.get())
	}
	s := cam.stats.Snapshot(time.Now())
	assert.Equal(t, 3, s.RingFrames)
	assert.Equal(t, int64(3*sz), s.RingBytesLimit)
	assert.True(t, s.RingShortened)
	assert.Equal(t, 3, cam.ring.Len(), "the ring holds what its share allows")
	assert.Equal(t, uint64(3), cam.stats.Dropped(stats.DropRingOverflow), "the oldest went")
	assert.Equal(t, 1, bytes.Count(logs.Bytes(), []byte("its ring is shortened")), "one warning for the size")

	// A frame of a quarter the size: 4 times as many fit, up to ring_size.
	small := pool.get()
	small.Width, small.Height, small.Stride, small.Data = 8, 8, 8, small.Data[:64]
	cam.onFrame(small)
	s = cam.stats.Snapshot(time.Now())
	assert.Equal(t, 8, s.RingFrames, "at most ring_size")
	assert.False(t, s.RingShortened)
	assert.Equal(t, 1, bytes.Count(logs.Bytes(), []byte("its ring is shortened")), "no warning when it fits")
	for _, f := range cam.ring.Close() {
		f.Release()
	}
}

// JPEG frames vary in size: the ring is sized for their running mean, once
// for sizes that stay within an eighth of it (one warning, not one a
// frame), and its byte limit is the ring's whole room in the share.
func TestRingFitsVaryingJPEG(t *testing.T) {
	rules := validate.DefaultRules()
	rules.Size.Action = validate.Off // the frames below are not real JPEGs
	cam, _, _ := newTestCamera(t, "c", rules)
	var logs bytes.Buffer
	const mean = 1000
	share := int64((membudget.PreRingFrames + 2 + 3) * mean)
	cam.fit = ringFit{share: share, batch: 2, log: slog.New(slog.NewJSONHandler(&logs, nil))}
	cam.plan.Camera.Settings.RingSize = 8
	pool := newFramePool(16)
	for i := range 60 {
		f := pool.get()
		if f == nil {
			for _, f := range cam.ring.Close() {
				f.Release()
			}
			t.Fatal("pool empty")
		}
		n := mean + []int{0, 30, -30, 60, -60, 90, -90}[i%7] // within 9 % of the mean
		f.Format, f.Width, f.Height, f.Stride, f.Data = frame.JPEG, 64, 48, 0, make([]byte, n)
		cam.onFrame(f)
		// Let the ring hold what it holds: release all but the newest 3.
		for cam.ring.Len() > 3 {
			for _, g := range cam.ring.PopBatch(make([]*frame.Frame, 0, 1)) {
				g.Release()
			}
		}
	}
	s := cam.stats.Snapshot(time.Now())
	assert.Equal(t, 3, s.RingFrames)
	assert.True(t, s.RingShortened)
	assert.Equal(t, share-int64(membudget.PreRingFrames+2)*mean, s.RingBytesLimit, "sized for the first frame's size, which the mean stayed near")
	assert.Equal(t, 1, bytes.Count(logs.Bytes(), []byte("its ring is shortened")), "one warning, not one per frame size")
	for _, f := range cam.ring.Close() {
		f.Release()
	}
}
