// Package appsink owns the hot path out of GStreamer: the appsink
// new-sample callback, mapping each buffer and handing a zero-copy view of
// its pixels onward as a *frame.Frame, and giving the sample back to
// GStreamer explicitly when the frame is released.
//
// go-gst v1.4.0 frees C objects only from Go finalizers, which lets RSS grow
// by gigabytes at video rates; so the per-frame path here is plain cgo with
// explicit gst_buffer_unmap and gst_sample_unref, and go-gst is used only to
// find the element. It may import go-gst, internal/frame and the standard
// library; only this package and internal/gsthost may import go-gst.
package appsink
