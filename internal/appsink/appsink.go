package appsink

/*
#cgo pkg-config: gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0
#include "appsink.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-gst/go-gst/gst"

	"gstcapture/internal/frame"
)

// Handler receives each frame on the GStreamer streaming thread. It owns the
// frame and must release it (directly or through whoever it hands it to).
// It must not block.
type Handler func(f *frame.Frame)

// Sink is the Go side of one appsink element.
type Sink struct {
	elem    *C.GstAppSink
	handle  cgo.Handle
	handler Handler
	now     func() time.Time

	pool sync.Pool
	// lastFormat caches the Go string of the last C format name so the hot
	// path does not allocate a string per frame.
	lastFormatPtr *C.gchar
	lastFormat    frame.Format

	// PullErrors counts samples that could not be turned into frames.
	PullErrors atomic.Uint64
	closed     atomic.Bool
}

// slot pairs a frame with the C state that keeps its pixels alive, so one
// allocation serves both and is pooled.
type slot struct {
	c       C.gc_frame
	f       frame.Frame
	sink    *Sink
	release func()
}

// Attach installs the new-sample callback on elem, which must be an appsink.
// Call Detach after the pipeline is in the NULL state.
func Attach(elem *gst.Element, h Handler) (*Sink, error) {
	if elem == nil {
		return nil, errors.New("appsink: no element")
	}
	if name := elem.GetFactory().GetName(); name != "appsink" {
		return nil, fmt.Errorf("appsink: element %q is a %s, not an appsink", elem.GetName(), name)
	}
	s := &Sink{elem: (*C.GstAppSink)(unsafe.Pointer(elem.Unsafe())), handler: h, now: time.Now}
	s.pool.New = func() any {
		sl := &slot{sink: s}
		sl.release = sl.giveBack
		return sl
	}
	s.handle = cgo.NewHandle(s)
	C.gc_attach(s.elem, C.uintptr_t(s.handle))
	return s, nil
}

// Detach removes the callback so no new frame is delivered. Frames already
// handed out stay valid until released: each holds its own sample reference.
func (s *Sink) Detach() {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	C.gc_detach(s.elem)
}

// Free deletes the callback handle. Call it only once the pipeline is in
// the NULL state: a streaming thread still inside GStreamer could otherwise
// look up a deleted handle. An abandoned (frozen) pipeline keeps its handle.
func (s *Sink) Free() {
	s.Detach()
	s.handle.Delete()
}

func (sl *slot) giveBack() {
	C.gc_release(&sl.c)
	sl.f.Reset()
	sl.sink.pool.Put(sl)
}

//export gcOnNewSample
func gcOnNewSample(elem *C.GstAppSink, h C.uintptr_t) C.int {
	s, ok := cgo.Handle(h).Value().(*Sink)
	if !ok || s.closed.Load() {
		return C.GST_FLOW_OK
	}
	s.onSample(elem)
	return C.GST_FLOW_OK
}

func (s *Sink) onSample(elem *C.GstAppSink) {
	sl := s.pool.Get().(*slot)
	if rc := C.gc_pull(elem, &sl.c); rc != 0 {
		s.PullErrors.Add(1)
		s.pool.Put(sl)
		return
	}
	now := s.now()
	f := &sl.f
	f.SetRelease(sl.release)
	f.SinkTime = now
	f.CaptureTime = now
	f.CaptureSource = frame.SourceArrival
	if ntp := int64(sl.c.ntp_unix_ns); ntp > 0 {
		f.CaptureTime = time.Unix(0, ntp)
		f.CaptureSource = frame.SourceRTCP
	}
	f.PTS = time.Duration(sl.c.pts)
	f.Width, f.Height, f.Stride = int(sl.c.width), int(sl.c.height), int(sl.c.stride)
	f.Format = s.format(sl.c.format)
	f.Corrupt = sl.c.corrupt != 0
	f.Data = unsafe.Slice((*byte)(unsafe.Pointer(sl.c._map.data)), int(sl.c._map.size))
	s.handler(f)
}

func (s *Sink) format(p *C.gchar) frame.Format {
	// Only the streaming thread of this sink calls this, so no lock.
	if p != s.lastFormatPtr {
		s.lastFormatPtr, s.lastFormat = p, frame.Format(C.GoString(p))
	}
	return s.lastFormat
}
