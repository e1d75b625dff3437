package health

import (
	"bytes"
	"image/jpeg"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
)

func testPicture(t *testing.T, cam string, seq uint64) *frame.Picture {
	stride, size, err := frame.Layout(frame.BGR, 64, 48)
	require.NoError(t, err)
	return &frame.Picture{CameraID: cam, Seq: seq, Width: 64, Height: 48, Stride: stride, Format: frame.BGR, Data: make([]byte, size)}
}

// Every viewer of one frame gets the same encode; a frame nobody encoded
// yet, with every slot taken, is refused instead of queued.
func TestSnapCacheSharesAndBounds(t *testing.T) {
	c := newSnapCache(1)
	pic := testPicture(t, "a", 7)
	var wg sync.WaitGroup
	out := make([][]byte, 50)
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, busy, err := c.get(pic, 85)
			assert.NoError(t, err)
			if !busy {
				out[i] = img
			}
		}()
	}
	wg.Wait()
	var first []byte
	for _, img := range out {
		if img == nil {
			continue
		}
		if first == nil {
			first = img
		}
		assert.Same(t, &first[0], &img[0], "one encode shared by every viewer of frame 7")
	}
	require.NotNil(t, first)
	_, err := jpeg.Decode(bytes.NewReader(first))
	require.NoError(t, err)

	// An encode of camera b in progress: b's next frame shares it.
	running := &snapEntry{seq: 1, encoding: true, done: make(chan struct{})}
	c.mu.Lock()
	c.byID["b"] = running
	c.mu.Unlock()
	go func() { running.jpeg = []byte{1}; close(running.done) }() // before or after get looks: either way it shares
	img, busy, _ := c.get(testPicture(t, "b", 2), 85)
	assert.False(t, busy)
	assert.Equal(t, []byte{1}, img, "frame 2 of b shares frame 1's encode, still running when asked")

	c.slots <- struct{}{} // another camera's encode is running
	_, busy, _ = c.get(testPicture(t, "c", 1), 85)
	assert.True(t, busy, "a new frame with no slot free: 429")
	img, busy, _ = c.get(pic, 85)
	assert.False(t, busy, "frame 7 is encoded already: no slot needed")
	assert.Same(t, &first[0], &img[0])
	<-c.slots
}

// A removed camera's encode is dropped: it holds a JPEG, and a camera added
// later under its id starts its seq again, so its frame 1 must not get the
// old camera's picture.
func TestSnapCacheForgetsARemovedCamera(t *testing.T) {
	c := newSnapCache(1)
	old := testPicture(t, "a", 1)
	old.Data[0] = 255
	first, _, err := c.get(old, 85)
	require.NoError(t, err)
	c.forget("a")
	assert.Empty(t, c.byID)
	again, _, err := c.get(testPicture(t, "a", 1), 85)
	require.NoError(t, err)
	assert.NotSame(t, &first[0], &again[0], "the new camera's frame 1 is encoded anew")
}
