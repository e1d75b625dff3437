// Package frame holds the Frame type that travels from the appsink's Sink
// goroutine through validation and the ring to the Redis publisher, and the pixel layout
// rules (strides, sizes) of the raw formats gstcapture emits.
//
// It owns no C memory itself: a Frame carries a release function set by the
// producer (internal/appsink) that unmaps and unrefs the GStreamer buffer.
// It may import only the standard library.
package frame
