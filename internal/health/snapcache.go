package health

import (
	"sync"

	"gstcapture/internal/frame"
)

// snapCache encodes each camera's snapshot once per frame: every viewer
// asking while a frame is newest gets the same JPEG, a camera has at most
// one encode running (viewers who come meanwhile share it), and at most
// slots cameras are encoded at a time. A request that would need one
// more is refused (429) rather than queued: a storm of viewers must not
// take memory or CPU from capture.
type snapCache struct {
	slots chan struct{}

	mu   sync.Mutex
	byID map[string]*snapEntry
}

// snapEntry is one camera's newest encode, or the one in progress.
type snapEntry struct {
	seq      uint64
	encoding bool          // guarded by snapCache.mu: the encode has not finished
	done     chan struct{} // closed when jpeg/err are set
	jpeg     []byte
	err      error
}

func newSnapCache(slots int) *snapCache {
	return &snapCache{slots: make(chan struct{}, max(slots, 1)), byID: map[string]*snapEntry{}}
}

// get returns pic's JPEG, encoding it if nobody has; busy is true when it
// would have had to encode and every slot was taken.
func (c *snapCache) get(pic *frame.Picture, quality int) (img []byte, busy bool, err error) {
	c.mu.Lock()
	e := c.byID[pic.CameraID]
	if e != nil && (e.seq == pic.Seq || e.encoding) {
		// This frame's encode, or the camera's previous frame still being
		// encoded (a frame older at most): share it rather than start a
		// second encode for the same camera.
		c.mu.Unlock()
		<-e.done
		return e.jpeg, false, e.err
	}
	select {
	case c.slots <- struct{}{}:
	default:
		c.mu.Unlock()
		return nil, true, nil
	}
	e = &snapEntry{seq: pic.Seq, encoding: true, done: make(chan struct{})}
	c.byID[pic.CameraID] = e
	c.mu.Unlock()

	e.jpeg, e.err = EncodeJPEG(pic, quality)
	close(e.done)
	c.mu.Lock()
	e.encoding = false
	c.mu.Unlock()
	<-c.slots
	return e.jpeg, false, e.err
}

// forget drops camera id's encode: the camera is gone, and one added later
// under its id starts its seq again.
func (c *snapCache) forget(id string) {
	c.mu.Lock()
	delete(c.byID, id)
	c.mu.Unlock()
}
