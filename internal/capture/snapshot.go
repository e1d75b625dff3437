package capture

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"gstcapture/internal/frame"
)

// snapshotter copies a frame only when someone asked for one, so the
// sink goroutine pays one atomic load per frame otherwise.
type snapshotter struct {
	want atomic.Bool
	mu   sync.Mutex
	last *frame.Picture
	wait chan struct{}
}

func (s *snapshotter) offer(f *frame.Frame) {
	if !s.want.Load() {
		return
	}
	p := &frame.Picture{CameraID: f.CameraID, Seq: f.Seq, At: f.SinkTime, Width: f.Width, Height: f.Height,
		Stride: f.Stride, Format: f.Format, Data: append([]byte(nil), f.Data...)}
	s.mu.Lock()
	s.last = p
	s.want.Store(false)
	if s.wait != nil {
		close(s.wait)
		s.wait = nil
	}
	s.mu.Unlock()
}

// latest asks for the next valid frame and waits up to ctx for it; when no
// frame comes (camera down), it returns the last copy taken, if any.
func (s *snapshotter) latest(ctx context.Context) *frame.Picture {
	s.mu.Lock()
	if s.wait == nil {
		s.wait = make(chan struct{})
	}
	ch := s.wait
	s.want.Store(true)
	s.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// ErrUnknownCamera is returned for an id that is not configured.
var ErrUnknownCamera = errors.New("unknown camera")

// Snapshot returns a copy of camera id's newest valid frame, waiting up to
// wait for a fresh one; nil when the camera has not delivered any yet.
func (s *Service) Snapshot(ctx context.Context, id string, wait time.Duration) (*frame.Picture, error) {
	c := s.camera(id)
	if c == nil {
		return nil, ErrUnknownCamera
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return c.snap.latest(ctx), nil
}
