// Package health serves the Kubernetes-style probes and the status JSON:
// /healthz (liveness: is the process wedged?), /readyz (readiness: Redis
// reachable and enough cameras streaming) and /health (per-camera detail).
//
// It reads state through the small Source interface and may import
// internal/stats and the standard library only.
package health
