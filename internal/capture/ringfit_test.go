package capture

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
