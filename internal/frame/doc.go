// Package frame holds the Frame type that travels from the appsink's Sink
// goroutine through validation and the ring to the Redis publisher, the pixel layout
// rules (strides, sizes) of the raw formats gstcapture emits, and the size
// estimate the budgets plan with (exact for raw frames, a running mean for
// JPEG).
//
// It owns no C memory itself: a Frame carries a release function set by the
// producer (internal/appsink) that unmaps and unrefs the GStreamer buffer.
// It may import only the standard library.
package frame
