package appsink

/*
#cgo pkg-config: gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0
#include "appsink.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-gst/go-gst/gst"

	"gstcapture/internal/frame"
)

// Handler receives each frame on the sink's goroutine, in order. It owns
// the frame and must release it (directly or through whoever it hands it
// to). It must not block: frames queue behind it. A sample that could not
// be read arrives too, as a frame with PullError set and no pixels, so that
// the handler, which counts captured frames, counts it captured and dropped.
type Handler func(f *frame.Frame)

// Sink is the Go side of one appsink element. GStreamer's streaming thread
// never runs Go code: a C callback queues each sample (appsink.c) and wakes
// the sink's goroutine through an eventfd. A cgo callback into Go on a C
// thread leaves the Go processor it used parked in a "system call" until the
// runtime's monitor (sysmon) takes it back, which keeps sysmon polling
// (docs/performance.md, "Why gstcapture costs what it costs").
type Sink struct {
	elem    *C.GstAppSink
	queue   *C.gc_queue
	wake    *os.File // the queue's eventfd, through Go's poller
	handler Handler
	done    chan struct{}

	pool sync.Pool
	// lastFormat caches the Go string of the last C format name so the hot
	// path does not allocate a string per frame.
	lastFormatPtr *C.gchar
	lastFormat    frame.Format

	closed atomic.Bool
}

// slot pairs a frame with the C state that keeps its pixels alive, so one
// allocation serves both and is pooled.
type slot struct {
	c       C.gc_frame
	f       frame.Frame
	sink    *Sink
	release func()
}

// Attach installs the new-sample callback on elem, which must be an appsink,
// and starts the goroutine that delivers its frames to h. Call Detach, then
// Free once the pipeline is in the NULL state.
func Attach(elem *gst.Element, h Handler) (*Sink, error) {
	if elem == nil {
		return nil, errors.New("appsink: no element")
	}
	if name := elem.GetFactory().GetName(); name != "appsink" {
		return nil, fmt.Errorf("appsink: element %q is a %s, not an appsink", elem.GetName(), name)
	}
	s := &Sink{elem: (*C.GstAppSink)(unsafe.Pointer(elem.Unsafe())), handler: h, done: make(chan struct{})}
	s.pool.New = func() any {
		sl := &slot{sink: s}
		sl.release = sl.giveBack
		return sl
	}
	s.queue = C.gc_attach(s.elem)
	if s.queue == nil {
		return nil, fmt.Errorf("appsink %q: no eventfd for the frame hand-off", elem.GetName())
	}
	// A non-blocking fd: os.NewFile registers it with Go's poller, so the
	// goroutine waits without holding a thread.
	s.wake = os.NewFile(uintptr(C.gc_queue_fd(s.queue)), "appsink-"+elem.GetName())
	live.Store(s, struct{}{})
	go s.run()
	return s, nil
}

// run delivers queued frames each time the callback signals, until Detach.
func (s *Sink) run() {
	defer close(s.done)
	var b [8]byte
	for {
		_, err := s.wake.Read(b[:])
		for s.deliver() {
		}
		if err != nil || s.closed.Load() {
			return
		}
	}
}

// Detach removes the callback so no new frame is queued, delivers the
// frames already queued and stops the goroutine. Frames handed out stay
// valid until released: each holds its own sample reference.
func (s *Sink) Detach() {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	C.gc_detach(s.elem)
	one := [8]byte{1}
	_, _ = s.wake.Write(one[:]) // wakes run, which sees closed after draining
	<-s.done
}

// Free drops what is still queued and closes the eventfd. Call it only
// once the pipeline is in the NULL state: a streaming thread still inside
// the callback could otherwise write to a closed (or reused) descriptor.
// An abandoned (frozen) pipeline is never freed: its sink stays in live,
// so not even the os.File finalizer closes the descriptor under it.
func (s *Sink) Free() {
	s.Detach()
	if _, ok := live.LoadAndDelete(s); !ok {
		return
	}
	C.gc_queue_free(s.queue)
	_ = s.wake.Close()
}

// live holds every attached sink until Free.
var live sync.Map

// Overflow counts frames dropped because the goroutine fell more than the
// hand-off queue behind the streaming thread.
func (s *Sink) Overflow() uint64 { return uint64(C.gc_queue_overflow(s.queue)) }

func (sl *slot) giveBack() {
	C.gc_release(&sl.c)
	sl.f.Reset()
	sl.sink.pool.Put(sl)
}

// deliver hands the oldest queued sample to the handler; false when none.
func (s *Sink) deliver() bool {
	sl := s.pool.Get().(*slot)
	rc := C.gc_take(s.queue, &sl.c)
	if rc == 1 {
		s.pool.Put(sl)
		return false
	}
	arrival := time.Unix(0, int64(sl.c.arrival_unix_ns))
	f := &sl.f
	f.SetRelease(sl.release)
	f.SinkTime = arrival
	f.CaptureTime = arrival
	f.CaptureSource = frame.SourceArrival
	if rc != 0 {
		// gc_take holds nothing on failure; releasing only returns the slot.
		f.PullError = true
		s.handler(f)
		return true
	}
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
	return true
}

func (s *Sink) format(p *C.gchar) frame.Format {
	// Only this sink's goroutine calls this, so no lock.
	if p != s.lastFormatPtr {
		s.lastFormatPtr, s.lastFormat = p, frame.Format(C.GoString(p))
	}
	return s.lastFormat
}
