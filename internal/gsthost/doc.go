// Package gsthost owns GStreamer itself: initialisation, routing GStreamer's
// log into log/slog, probing which elements exist, and one supervisor per
// camera that builds a pipeline from its rendered launch string, watches its
// bus and frame flow, tears it down with deadlines and rebuilds it after a
// backoff. Each pipeline gets a stream watch (watch.go): the camera's SDP
// checked against the configured codec, or read first to choose one
// (codec.go, codec auto), video streams only, a keyframe gate after loss,
// decoder in/out counts and a rate gate in front of videorate.
//
// Every GStreamer call that can block runs with a deadline: start (PLAYING,
// the codec auto probe's PAUSED), teardown (NULL) and the DOT dump. A
// pipeline whose call misses its deadline is abandoned and counted as frozen
// once.
//
// A supervisor reports its camera's state, reconnects, errors (a frozen
// pipeline is an error of type frozen, counted once), hand-off overflow
// and stream counts to a Ledger it declares (the camera's counters), and
// reads the camera's newest frame time there for its stall watchdog;
// frames go from the appsink straight to the camera's handler.
//
// It may import go-gst, internal/appsink, internal/backoff,
// internal/stats and the standard library. Only this package and
// internal/appsink may import go-gst.
package gsthost
