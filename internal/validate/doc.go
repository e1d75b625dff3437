// Package validate owns the per-camera pixel checks run on the camera's
// appsink Sink goroutine before a frame enters the ring: decoder-corrupt, wrong size,
// black, uniform (grey/green decoder garbage) and frozen pictures. JPEG
// frames get corrupt, size (a whole JPEG of the frame's size) and frozen
// (the same bytes); black and uniform would need the pixels decoded.
//
// The checks read a sparse grid of luma samples (about 14k per frame at
// 720p and 1080p) so a Check costs microseconds and never allocates. Each
// rule has an Action: Drop discards the frame, Pass keeps it and flags it,
// Off skips the rule.
//
// It may import only the standard library, internal/frame and internal/stats.
package validate
