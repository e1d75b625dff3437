// Package gsthost owns GStreamer itself: initialisation, routing GStreamer's
// log into log/slog, probing which elements exist, and one supervisor per
// camera that builds a pipeline from its rendered launch string, watches its
// bus and frame flow, tears it down with deadlines and rebuilds it after a
// backoff.
//
// Every GStreamer call that can block runs with a deadline; a pipeline that
// misses its teardown deadline is abandoned and counted as frozen.
//
// It may import go-gst, internal/appsink, internal/backoff, internal/frame,
// internal/stats and the standard library. Only this package and
// internal/appsink may import go-gst.
package gsthost
