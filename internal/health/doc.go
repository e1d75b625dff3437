// Package health serves gstcapture's HTTP surface: the Kubernetes-style
// probes /healthz (liveness: is the process wedged?) and /readyz (readiness:
// Redis reachable and enough cameras streaming), the status JSON /health,
// the camera API under /api/v1 (including a JPEG snapshot), /metrics and
// /openapi.yaml. Routes lists them all; docs/openapi.yaml must match it.
//
// It reads state through small interfaces (Source, API) and may import
// internal/stats, internal/frame and the standard library only.
package health
