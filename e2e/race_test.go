package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// TestRaceCapture runs a real capture against bin/gstcapture-race (built
// with -race by `make e2e`): two cameras (one with delivery shm), every frame traced and exported
// over OTLP/HTTP, snapshot requests all along, and a Redis restart in the
// middle, then live changes (a camera added, restarted and deleted through
// the API, a file edit that rebuilds a camera), so the per-frame path, the
// snapshot cache, the tracer's export, the publisher's reconnect and the
// live camera set all run under the race detector. Any race
// report fails it: the detector's log files, its "DATA RACE" lines, and
// its exit status 66.
func TestRaceCapture(t *testing.T) {
	rd := testenv.StartRedis(t)
	cs := startCamsim(t, camsimOpts{Cameras: 2, Codec: "h264", Size: "640x360", FPS: 25})
	var exports atomic.Int64
	otlp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/v1/traces" {
			exports.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer otlp.Close()
	raceDir := t.TempDir()
	cfg := streamConfig(rd.URL, simCams(cs, 2)...)
	cfg.SampleRatio = 1.0
	// cam2's pixels go through shared memory: that path runs under the
	// detector too.
	cfg.Cameras[1].Delivery = "shm"
	svc := startServiceBin(t, "gstcapture-race", cfg, "GSTCAPTURE_SHM__DIR="+shmDir(t),
		"OTEL_EXPORTER_OTLP_ENDPOINT="+otlp.URL, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=", "OTEL_SDK_DISABLED=",
		"GORACE=log_path="+filepath.Join(raceDir, "race")+" halt_on_error=0")
	rc := openFrames(t, rd)
	ctx := ctxT(t, 4*time.Minute)
	ids := camIDs(cfg.Cameras)
	// The race build runs several times slower: allow it its start-up.
	rc.WaitPublished(svc, 60*time.Second, 10, ids...)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var snaps, snapOK atomic.Int64
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(svc.HTTP + "/api/v1/cameras/" + ids[i%2] + "/snapshot.jpg")
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				snaps.Add(1)
				if resp.StatusCode == http.StatusOK {
					snapOK.Add(1)
				}
			}
		}()
	}
	time.Sleep(5 * time.Second)
	rd.Restart(t)
	// Publishing resumes into the restarted (empty) Redis.
	require.Eventually(t, func() bool {
		return rc.XLen(ctx, "frames:cam1").Val() > 10 && rc.XLen(ctx, "frames:cam2").Val() > 10
	}, 60*time.Second, 200*time.Millisecond, "publishing did not resume after the Redis restart: %s", tail(svc.Output(), 3000))

	// Live changes while frames flow and snapshots are taken: a camera
	// added, restarted and deleted through the API, and a file edit that
	// rebuilds cam2 (snapshots of it go on across the rebuild).
	put := time.Now()
	code, body := svc.admin(t, http.MethodPut, "/api/v1/cameras/racecam", map[string]any{"url": cs.URL(1), "codec": "h264"})
	require.Equal(t, http.StatusCreated, code, "%s", body)
	rc.WaitEntry("racecam", put, 60*time.Second, "camera added through the API under -race")
	code, body = svc.admin(t, http.MethodPost, "/api/v1/cameras/racecam/restart", nil)
	require.Equal(t, http.StatusAccepted, code, "%s", body)
	edited := cfg
	edited.Cameras = simCams(cs, 2)
	edited.Cameras[1].FPS = 5
	saved := svc.rewriteConfig(t, edited.YAML(t))
	var reloaded liveReloaded
	svc.waitLogged(t, "config reloaded", saved, 30*time.Second).decode(t, &reloaded)
	require.Equal(t, []string{"cam2"}, reloaded.Rebuilt, "the edit rebuilds cam2")
	rc.WaitEntry("cam2", time.Now(), 60*time.Second, "cam2 publishes after its rebuild under -race")
	code, body = svc.admin(t, http.MethodDelete, "/api/v1/cameras/racecam", nil)
	require.Equal(t, http.StatusNoContent, code, "%s", body)
	time.Sleep(5 * time.Second)
	close(stop)
	wg.Wait()

	svc.Stop(30 * time.Second)
	code = svc.ExitCode(5 * time.Second)
	t.Logf("snapshots %d (200: %d), OTLP exports %d, exit %d", snaps.Load(), snapOK.Load(), exports.Load(), code)
	assert.Greater(t, snapOK.Load(), int64(10), "snapshots were served")
	assert.Positive(t, exports.Load(), "spans were exported")
	reports, _ := filepath.Glob(filepath.Join(raceDir, "race*"))
	for _, r := range reports {
		b, _ := os.ReadFile(r)
		t.Errorf("race report %s:\n%s", filepath.Base(r), tail(string(b), 8000))
	}
	assert.NotContains(t, svc.Output(), "DATA RACE")
	assert.Equal(t, 0, code, "gstcapture-race exits 0 (the race detector exits 66 after a report)")
}
