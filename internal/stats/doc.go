// Package stats holds the per-camera counters and state that the capture
// path updates with atomics and that health, metrics and the API read.
//
// Frame accounting identity, per camera:
//
//	Captured = Published + sum(Dropped[reason]) + frames still in the ring
//
// It may import only the standard library and internal/frame.
package stats
