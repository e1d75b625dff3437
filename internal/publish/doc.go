// Package publish drains each camera's ring into Redis Streams: one
// pipelined XADD round trip per batch, schema v1 entries (docs/redis-schema.md),
// frames released only after go-redis has written their bytes, and every
// frame's fate reported (published, redis_error, redis_oom, shutdown).
// A round trip that fails after its bytes left may still have been stored,
// so its frames stay unconfirmed until the stream says which ones arrived
// (reconcile.go), and published equals what Redis received; only frames
// of a round trip still unanswered at the shutdown deadline stay unknown
// (dropped, and reported by Unconfirmed).
//
// It owns the Redis write path and the "is Redis up" state used for
// readiness. It never blocks the capture side: the ring drops oldest frames
// by itself while Redis is slow or down.
//
// It reports through interfaces it declares: Tally (the camera's counters,
// *stats.Camera) and Recorder (metrics and traces); it drains the ring
// through Source. It may import the standard library, go-redis,
// internal/backoff, internal/frame and internal/stats (for the drop
// reasons); only its tests import internal/ring.
package publish
