// Package capture wires one camera's parts together — decoder choice and
// rendered pipeline, gsthost supervisor, validation, bounded ring and Redis
// publisher — and runs every camera of a configuration as a Service.
//
// A camera's fault stays inside that camera: each has its own supervisor
// goroutine, appsink Sink goroutine (its sink side: count, validate, ring),
// validator, ring and publisher goroutine.
//
// It may import internal packages and the standard library, but not go-gst
// (gsthost and appsink wrap it).
package capture
