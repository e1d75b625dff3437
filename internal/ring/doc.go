// Package ring owns the per-camera bounded queue between the camera's sink
// side (producer: the appsink Sink goroutine, through internal/capture) and
// its Redis publisher goroutine (consumer).
//
// Push never blocks: when the ring is full the oldest item is evicted,
// released and reported (ring_overflow, counted by the Reporter), so a slow
// Redis costs old frames, never a stalled pipeline. The ring owns every
// item it holds; an item leaves it either through PopBatch or Close
// (ownership passes to the caller) or by eviction (the ring releases it).
//
// The ring is generic over its items (frames, in gstcapture) and reports
// drops through Reporter, an interface it declares: it is a leaf and may
// import only the standard library.
package ring
