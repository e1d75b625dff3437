// Package stats holds the per-camera counters and state that health,
// metrics and the API read, and the label sets they are counted under:
// drop reasons, reconnect reasons, error types and camera states, each
// typed once here.
//
// A Camera is the only writer of its counters. The packages a frame passes
// through report to it through small interfaces each declares for itself
// (ring.Reporter, publish.Tally, gsthost.Ledger); internal/capture, the
// sink side, counts captured frames, validation and pull errors.
//
// Frame accounting identity, per camera:
//
//	Captured = Published + sum(Dropped[reason]) + frames still in the ring + unconfirmed
//
// where unconfirmed are frames of a failed round trip whose fate Redis has
// not told yet (internal/publish keeps them; 0 after a completed shutdown
// flush).
//
// It may import only the standard library.
package stats
