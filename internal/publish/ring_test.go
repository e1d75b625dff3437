package publish

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/ring"
	"gstcapture/internal/stats"
	"gstcapture/internal/testenv"
)

var _ Source = (*ring.Ring[*frame.Frame])(nil)

// TestWithRealRing runs the publisher on internal/ring directly, without the test wrapper:
// a small ring that overflows while frames arrive faster than one batch.
func TestWithRealRing(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	p := New(c, Options{Batch: 8, MaxLen: 500}, nil, nil)
	cam := stats.NewCamera("cam-ring")
	r := ring.New[*frame.Frame](16, cam)
	fs := newFrames(t)
	stop := runAsync(p, cam, r)
	for range 2000 {
		cam.FrameCaptured(time.Now())
		r.Push(fs.New(cam.ID, 32, 32, frame.BGR))
	}
	require.Eventually(t, func() bool { return r.Len() == 0 }, 5*time.Second, 5*time.Millisecond)
	stop()
	p.Flush(ctxTimeout(t, 5*time.Second), cam, r)
	require.Empty(t, r.Close())
	assertIdentity(t, cam, 0)
	fs.assertReleasedOnce(0)
	t.Logf("published %d, ring_overflow %d", cam.Published(), cam.Dropped(stats.DropRingOverflow))
	require.Positive(t, cam.Published())
}
