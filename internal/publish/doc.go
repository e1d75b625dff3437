// Package publish drains each camera's ring into Redis Streams: one
// pipelined XADD round trip per batch, schema v1 entries (docs/redis-schema.md),
// frames released only after go-redis has written their bytes, and every
// frame accounted for in internal/stats (published, redis_error, shutdown).
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
// It may import the standard library, go-redis, internal/frame and
// internal/stats. The ring is consumed through the small Source interface
// declared here, so only its tests import internal/ring.
package publish
