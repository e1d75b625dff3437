// Package e2e holds end-to-end tests: the built bin/gstcapture and
// bin/camsim binaries, a real redis-server and real GStreamer, on free ports.
// Run with `make e2e` (which builds the binaries first).
package e2e
