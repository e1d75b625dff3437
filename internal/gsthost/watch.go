package gsthost

// The stream watch: C pad probes and signal handlers installed on every
// pipeline gsthost builds (watch.c, watch.h), and its Go handle.

/*
#cgo pkg-config: gstreamer-1.0 gstreamer-sdp-1.0 gio-2.0
#include <stdlib.h>
#include "watch.h"
*/
import "C"

import (
	"strings"
	"unsafe"

	"github.com/go-gst/go-gst/gst"
)

// streamWatch is the Go handle of one pipeline's gh_watch: the SDP check
// and stream selection on rtspsrc, the keyframe gate and decoder counts on
// the decoder, the rate gate, and the decoder's CORRUPTED flag carried
// across the JPEG encoder. See gh_watch_attach.
type streamWatch struct {
	c *C.gh_watch
	// Counts already reported to the Ledger.
	skipped, in, out uint64
	// gated is the count of frames the keyframe gate held back (lost or
	// joining), as of the last sync.
	gated uint64
}

// attachWatch installs the watch on p; codec is the configured codec or ""
// (no SDP check).
func attachWatch(p *gst.Pipeline, codec string) *streamWatch {
	return newWatch(p, codec, false)
}

func newWatch(p *gst.Pipeline, codec string, describeOnly bool) *streamWatch {
	d := C.int(0)
	if describeOnly {
		d = 1
	}
	var cExp, cCodec *C.char
	if enc, ok := sdpEncoding[codec]; ok {
		cExp = C.CString(enc)
		defer C.free(unsafe.Pointer(cExp))
	}
	cCodec = C.CString(codec)
	defer C.free(unsafe.Pointer(cCodec))
	return &streamWatch{c: C.gh_watch_attach((*C.GstElement)(unsafe.Pointer(p.Instance())), cExp, cCodec, d)}
}

// release drops the Go reference; call it once the pipeline is stopped or
// abandoned. Callbacks still pending hold their own references.
func (w *streamWatch) release() {
	if w != nil && w.c != nil {
		C.gh_watch_unref(C.gpointer(w.c))
		w.c = nil
	}
}

// tlsErrors returns the GTlsCertificateFlags of the rtsps certificate
// rtspsrc refused, 0 when none was.
func (w *streamWatch) tlsErrors() uint { return uint(C.gh_watch_tls_errors(w.c)) }

// announced returns the video encodings of the camera's SDP, in its order,
// and whether the SDP has arrived.
func (w *streamWatch) announced() ([]string, bool) {
	p := C.gh_watch_announced(w.c)
	if p == nil {
		return nil, false
	}
	defer C.g_free(C.gpointer(p))
	s := C.GoString(p)
	if s == "" {
		return []string{}, true
	}
	return strings.Split(s, ","), true
}

// sync reports what the watch counted since the last call to l, and
// reports whether the keyframe gate held back a frame since then: frames
// are arriving, but none can be decoded before the next keyframe.
func (w *streamWatch) sync(l Ledger) (gating bool) {
	if w == nil || w.c == nil {
		return false
	}
	var skipped, joining, in, out C.guint64
	C.gh_watch_counts(w.c, &skipped, &joining, &in, &out)
	if g := uint64(skipped) + uint64(joining); g != w.gated {
		gating = true
		w.gated = g
	}
	delta := func(now uint64, last *uint64) uint64 {
		if now <= *last {
			return 0
		}
		d := now - *last
		*last = now
		return d
	}
	ds, di, do := delta(uint64(skipped), &w.skipped), delta(uint64(in), &w.in), delta(uint64(out), &w.out)
	if ds|di|do != 0 {
		l.StreamCounts(ds, di, do)
	}
	return gating
}

// refusedAll reports whether the watch refused every stream of the SDP.
func (w *streamWatch) refusedAll() bool { return C.gh_watch_refused(w.c) != 0 }

// protocols returns rtspsrc's GstRTSPLowerTrans flags (0 without rtspsrc).
func (w *streamWatch) protocols() uint { return uint(C.gh_watch_protocols(w.c)) }
