// Package telemetry owns the Prometheus metrics and OpenTelemetry traces of
// gstcapture. Counters are read from internal/stats when Prometheus scrapes
// (nothing on the hot path); histograms are observed through per-camera
// observers resolved once at start-up, so observing allocates nothing.
// Spans are exported through a bounded, non-blocking queue: export never
// slows capture, and spans that do not fit are counted.
//
// It may import internal/frame, internal/stats, prometheus/client_golang,
// go.opentelemetry.io/otel and the standard library.
package telemetry
