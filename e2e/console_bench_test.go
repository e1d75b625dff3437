package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gstcapture/internal/testenv"
)

// TestConsoleViewersBenchmark prints what open consoles cost: gstcapture's
// CPU with 4 cameras (640x360, 10 fps) and no viewer, then with 1 and 50
// viewers that each ask what a console's grid asks every second (the
// camera list, then every camera's snapshot, with a read token), as a
// ratio to the run without viewers, and how many JPEG encodes the
// snapshots cost against how many pictures were served. Viewers are HTTP
// clients, not browsers: 50 Chromiums do not fit this machine beside the
// service. `make bench` runs it; GSTCAPTURE_BENCH_SECONDS sets the window.
func TestConsoleViewersBenchmark(t *testing.T) {
	if os.Getenv("GSTCAPTURE_BENCH") == "" {
		t.Skip("console viewers benchmark: run with `make bench` (GSTCAPTURE_BENCH=1)")
	}
	secs := envInts("GSTCAPTURE_BENCH_SECONDS", []int{20})[0]
	window := time.Duration(secs) * time.Second
	rd := testenv.StartRedis(t)
	sim := startCamsim(t, camsimOpts{Cameras: 4, Codec: "h264", Size: "640x360", FPS: 10})
	svc := startService(t, benchConfig(rd.URL, sim, 4))
	frames := openFrames(t, rd)
	frames.WaitPublished(svc, 60*time.Second, 10, "cam1", "cam2", "cam3", "cam4")
	redisPid := frames.pid()

	type row struct {
		viewers         int
		cpu             float64
		served, encodes int64
		p99             time.Duration
	}
	var rows []row
	for _, n := range []int{0, 1, 50} {
		var served atomic.Int64
		seqs := sync.Map{} // camera/seq pairs served: one encode each
		var lat []time.Duration
		var mu sync.Mutex
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		viewer := func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				get := func(path string) *http.Response {
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, svc.HTTP+path, nil)
					req.Header.Set("Authorization", "Bearer "+e2eReadToken)
					resp, err := rawHTTP.Do(req)
					if err != nil {
						return nil
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					return resp
				}
				get("/api/v1/cameras")
				for c := 1; c <= 4; c++ {
					began := time.Now()
					if r := get(fmt.Sprintf("/api/v1/cameras/cam%d/snapshot.jpg", c)); r != nil && r.StatusCode == http.StatusOK {
						served.Add(1)
						seqs.Store(fmt.Sprintf("cam%d/%s", c, r.Header.Get("X-Frame-Seq")), true)
						mu.Lock()
						lat = append(lat, time.Since(began))
						mu.Unlock()
					}
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}
		cpu, _, _ := measure(t, "gstcapture", svc.Pid(), redisPid, 3*time.Second, window, func() {
			for range n {
				wg.Add(1)
				go viewer()
			}
		})
		cancel()
		wg.Wait()
		var encodes int64
		seqs.Range(func(_, _ any) bool { encodes++; return true })
		var p99 time.Duration
		if len(lat) > 0 {
			slices.Sort(lat)
			p99 = lat[(len(lat)*99)/100]
		}
		rows = append(rows, row{n, cpu / window.Seconds() * 100, served.Load(), encodes, p99})
	}
	t.Logf("console viewers, 4 cameras 640x360 at 10 fps, %s windows:", window)
	t.Logf("%8s %8s %8s %10s %10s %12s", "viewers", "cpu%", "x none", "pictures", "encodes", "picture p99")
	for _, r := range rows {
		t.Logf("%8d %8.1f %8.2f %10d %10d %12s", r.viewers, r.cpu, r.cpu/rows[0].cpu, r.served, r.encodes, r.p99.Round(time.Millisecond))
	}
}
