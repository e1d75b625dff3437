// Package pipelines holds the GStreamer graph of a camera as one declarative
// template per codec (h264.tmpl, h265.tmpl, embedded), renders it from typed
// parameters into a gst-launch-1.0 line, and picks the decoder element.
//
// A rendered line never contains credentials: the location is the
// credential-free Camera.Location, and user-id/user-pw are set on the
// element named "src" by the code that builds the pipeline. The line can be
// pasted into gst-launch-1.0 for debugging.
//
// Fixed element names: rtspsrc "src", decoder "dec", sink "sink".
//
// It may import only the standard library, internal/config and
// internal/frame; never go-gst.
package pipelines
