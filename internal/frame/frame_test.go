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
