// Package ring owns the per-camera bounded frame queue between the appsink
// callback (producer, a GStreamer streaming thread) and the camera's Redis
// publisher goroutine (consumer).
//
// Push never blocks: when the ring is full the oldest frame is evicted,
// released and counted as a ring_overflow drop, so a slow Redis costs old
// frames, never a stalled pipeline. The ring owns every frame it holds; a
// frame leaves it either through PopBatch or Close (ownership passes to the
// caller) or by eviction (the ring releases it).
//
// It may import only the standard library, internal/frame and internal/stats.
package ring
