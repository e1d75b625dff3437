package frame

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLayout(t *testing.T) {
	cases := []struct {
		f            Format
		w, h         int
		stride, size int
	}{
		{BGR, 1280, 720, 3840, 3840 * 720},
		{BGR, 641, 360, 1924, 1924 * 360},
		{RGB, 2, 2, 8, 16},
		{GRAY8, 641, 3, 644, 644 * 3},
		{I420, 1280, 720, 1280, 1280*720 + 2*640*360},
		{I420, 641, 361, 644, 644*361 + 2*324*181},
		{NV12, 1920, 1080, 1920, 1920*1080 + 1920*540},
	}
	for _, c := range cases {
		stride, size, err := Layout(c.f, c.w, c.h)
		require.NoError(t, err)
		assert.Equal(t, c.stride, stride, "%s %dx%d stride", c.f, c.w, c.h)
		assert.Equal(t, c.size, size, "%s %dx%d size", c.f, c.w, c.h)
	}
	_, _, err := Layout("YUY2", 2, 2)
	assert.Error(t, err)
	_, _, err = Layout(BGR, 0, 2)
	assert.Error(t, err)
}

func TestReleaseOnce(t *testing.T) {
	n := 0
	f := &Frame{Data: []byte{1}}
	f.SetRelease(func() { n++ })
	f.Release()
	f.Release()
	assert.Equal(t, 1, n)
	assert.True(t, f.Released())
	assert.Nil(t, f.Data)
	var nilFrame *Frame
	nilFrame.Release()
}

// Release lets go of the frame before its release function runs, because
// that function may put the frame back in a pool where the next sample
// reuses it at once (internal/appsink does). Run with -race.
func TestReleaseLetsGoBeforeGivingBack(t *testing.T) {
	pool := make(chan *Frame, 1)
	f := &Frame{Data: []byte{1}}
	f.SetRelease(func() { pool <- f })
	reused := make(chan struct{})
	var secondRelease bool
	go func() {
		g := <-pool
		g.Reset()
		g.Data = []byte{2}
		g.SetRelease(func() { secondRelease = true })
		close(reused)
	}()
	f.Release()
	<-reused
	f.Release() // the next sample's release function must still be set
	assert.True(t, secondRelease)
}

func TestJPEGFormat(t *testing.T) {
	f, err := ParseFormat("JPEG")
	require.NoError(t, err)
	assert.Equal(t, JPEG, f)
	assert.True(t, JPEG.Compressed())
	assert.False(t, BGR.Compressed())
	_, _, err = Layout(JPEG, 640, 360)
	assert.ErrorContains(t, err, "compressed")
	_, err = ParseFormat("jpeg")
	assert.ErrorContains(t, err, "GRAY8, JPEG")
}

// A raw frame's size is taken as it is; a JPEG frame's is a running mean
// that is reported again only once it moves by more than an eighth.
func TestSizeEstimate(t *testing.T) {
	var e SizeEstimate
	obs := func(f Format, w, n int) (int64, bool) {
		return e.Observe(&Frame{Format: f, Width: w, Height: 10, Data: make([]byte, n)})
	}
	n, ch := obs(BGR, 10, 300)
	assert.Equal(t, [2]any{int64(300), true}, [2]any{n, ch})
	n, ch = obs(BGR, 10, 300)
	assert.Equal(t, [2]any{int64(300), false}, [2]any{n, ch})
	n, ch = obs(BGR, 20, 600)
	assert.Equal(t, [2]any{int64(600), true}, [2]any{n, ch}, "a raw size change is exact at once")

	// Another format starts again from its first frame.
	n, ch = obs(JPEG, 20, 1000)
	assert.Equal(t, [2]any{int64(1000), true}, [2]any{n, ch})
	// Frames within a few percent: the estimate stays where it was.
	reports := 0
	for i := range 200 {
		if _, ch := obs(JPEG, 20, 960+(i%5)*20); ch {
			reports++
		}
	}
	assert.Zero(t, reports, "sizes within 4%% of the estimate report nothing")
	// The picture gets busier: sizes double; the estimate follows in a
	// few steps, not once per frame.
	var last int64
	for range 100 {
		if n, ch := obs(JPEG, 20, 2000); ch {
			reports++
			last = n
		}
	}
	assert.InDelta(t, 2000, last, 2000/8, "the estimate reached the new mean")
	assert.Less(t, reports, 10, "reported in steps of 1/8")
	assert.Positive(t, reports)
	// A new picture size restarts the estimate.
	n, ch = obs(JPEG, 40, 5000)
	assert.Equal(t, [2]any{int64(5000), true}, [2]any{n, ch})
}
