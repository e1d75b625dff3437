// Package e2e holds end-to-end tests: the built bin/gstcapture and
// bin/camsim binaries, a real redis-server and real GStreamer, on free ports.
// Run with `make e2e` (which builds the binaries first).
//
// Every test runs on one harness (harness_*_test.go): one configuration
// builder (svcConfig), one camsim launcher, one reader each for /metrics
// (expfmt), the JSON log and the Redis streams, one /health type, and one
// sampler of /health and /proc (internal/testenv.ReadProc). A family of
// tests keeps only its own presets next to its tests (cfConfig, rfStart,
// streamSim ...).
package e2e
