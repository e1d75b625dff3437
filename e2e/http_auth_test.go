package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// TestHTTPAuth: the built binary with http.auth's default (mode token),
// asked by a real HTTP client. Probes, /metrics and /openapi.yaml are open;
// /health, the camera API and snapshots answer 401 with a Bearer challenge
// unless the request carries a token of tokens_file; no token is ever
// logged. http.auth.metrics read closes /metrics; no tokens at all means
// 401 and a start-up line that says how to configure them; mode none
// opens everything, with a warning. Oversized headers are refused.
func TestHTTPAuth(t *testing.T) {
	rd := testenv.StartRedis(t)
	sim := startCamsim(t, camsimOpts{Cameras: 1, Codec: "h264", Size: "320x240", FPS: 10})
	cfg := svcConfig{Redis: rd.URL, AnyReady: true, FPS: 10, Cameras: simCams(sim, 1)}
	do := func(url, token string, header ...string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := rawHTTP.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}

	svc := startService(t, cfg)
	require.Eventually(t, func() bool {
		code, _, body := do(svc.HTTP+"/api/v1/cameras/cam1/snapshot.jpg", e2eReadToken)
		return code == 200 && len(body) > 0
	}, 30*time.Second, 200*time.Millisecond, "a snapshot with the read token")
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.yaml"} {
		code, _, _ := do(svc.HTTP+p, "")
		assert.Equal(t, 200, code, "%s is open", p)
	}
	for _, p := range []string{"/health", "/api/v1/cameras", "/api/v1/cameras/cam1", "/api/v1/cameras/cam1/snapshot.jpg"} {
		code, h, body := do(svc.HTTP+p, "")
		assert.Equal(t, 401, code, "%s without a token", p)
		assert.Equal(t, `Bearer realm="gstcapture"`, h.Get("WWW-Authenticate"), p)
		assert.NotContains(t, body, "cam1\"", "%s: nothing about the cameras without a token", p)
		code, h, _ = do(svc.HTTP+p, "not-a-token-0123456789")
		assert.Equal(t, 401, code, "%s with a wrong token", p)
		assert.Contains(t, h.Get("WWW-Authenticate"), `error="invalid_token"`, p)
		code, _, _ = do(svc.HTTP+p, e2eReadToken)
		assert.Equal(t, 200, code, "%s with the read token", p)
		code, _, _ = do(svc.HTTP+p, e2eAdminToken)
		assert.Equal(t, 200, code, "%s with the admin token (admin implies read)", p)
	}
	code, _, _ := do(svc.HTTP+"/healthz", "", "X-Big", strings.Repeat("x", 64<<10))
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, code, "a 64 KiB header is refused")
	assert.Contains(t, svc.Output(), `"msg":"http.auth: bearer tokens required"`)

	metricsRead := cfg
	metricsRead.MetricsAuth = "read"
	closed := startService(t, metricsRead)
	code, _, _ = do(closed.HTTP+"/metrics", "")
	assert.Equal(t, 401, code, "http.auth.metrics read: /metrics needs a token")
	code, _, _ = do(closed.HTTP+"/metrics", e2eReadToken)
	assert.Equal(t, 200, code)

	// An empty variable counts as unset: no tokens file.
	none := startService(t, cfg, "GSTCAPTURE_HTTP__AUTH__TOKENS_FILE=")
	code, _, body := do(none.HTTP+"/health", e2eReadToken)
	assert.Equal(t, 401, code, "no tokens configured: 401 for any token")
	assert.Contains(t, body, "http.auth.tokens_file")
	code, _, _ = do(none.HTTP+"/readyz", "")
	assert.Equal(t, 200, code)
	assert.Contains(t, none.Output(), "no API tokens configured", "the start-up log says how to configure them")

	open := startService(t, cfg, "GSTCAPTURE_HTTP__AUTH__MODE=none")
	code, _, _ = do(open.HTTP+"/health", "")
	assert.Equal(t, 200, code, "mode none: open")
	assert.Contains(t, open.Output(), "http.auth.mode none")

	for _, s := range []*service{svc, closed, none, open} {
		for _, tok := range []string{e2eReadToken, e2eAdminToken} {
			assert.NotContains(t, s.Output(), tok, "a token in the log")
		}
	}
}

// TestSnapshotStorm: 400 snapshot requests, 100 at a time, against two
// 1080p BGR cameras. Each frame is encoded once for every viewer, at most
// two encodes run at a time (more answer 429 with Retry-After), and no
// RGBA copy is made, so RSS stays within 100 MB of where it started and
// capture drops no frame. Before: RSS went from 138 MB to 1423 MB and 55
// frames were dropped as ring_overflow.
func TestSnapshotStorm(t *testing.T) {
	const total, parallel = 400, 100
	rd := testenv.StartRedis(t)
	sim := startCamsim(t, camsimOpts{Cameras: 2, Codec: "h264", Size: "1920x1080", FPS: 5})
	svc := startService(t, svcConfig{Redis: rd.URL, FPS: 5, Cameras: []camCfg{{ID: "hd1", URL: sim.URL(1)}, {ID: "hd2", URL: sim.URL(2)}}})
	get := func(id string) (int, http.Header, int) {
		resp, err := http.Get(svc.HTTP + "/api/v1/cameras/" + id + "/snapshot.jpg")
		if err != nil {
			return 0, nil, 0
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, len(b)
	}
	for _, id := range []string{"hd1", "hd2"} {
		require.Eventually(t, func() bool { code, _, n := get(id); return code == 200 && n > 0 }, 60*time.Second, 200*time.Millisecond, id)
	}
	code, h, _ := get("hd1")
	require.Equal(t, 200, code)
	assert.Equal(t, "no-store", h.Get("Cache-Control"))
	time.Sleep(2 * time.Second) // settle after the first encodes
	before := svc.health(t)
	rss0, err := testenv.RSSBytes(svc.Pid())
	require.NoError(t, err)

	var mu sync.Mutex
	codes := map[int]int{}
	var peak int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if r, err := testenv.RSSBytes(svc.Pid()); err == nil {
				mu.Lock()
				peak = max(peak, r)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < total; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			code, h, _ := get([]string{"hd1", "hd2"}[i%2])
			mu.Lock()
			codes[code]++
			mu.Unlock()
			if code == http.StatusTooManyRequests {
				assert.Equal(t, "1", h.Get("Retry-After"))
			}
		}()
	}
	wg.Wait()
	storm := time.Since(t0)
	close(stop)
	<-sampled
	after := svc.health(t)

	assert.Equal(t, total, codes[200]+codes[429], "every request answered 200 or 429: %v", codes)
	assert.Greater(t, codes[200], total/4, "most viewers got a picture: %v", codes)
	assert.Less(t, peak-rss0, int64(100<<20), "RSS within 100 MB of its start (%d MB -> peak %d MB)", rss0>>20, peak>>20)
	for _, id := range []string{"hd1", "hd2"} {
		b, a := before.camera(id), after.camera(id)
		assert.Equal(t, b.DroppedTotal(), a.DroppedTotal(), "%s dropped no frame during the storm (%v -> %v)", id, b.Dropped, a.Dropped)
	}
	t.Logf("%d requests (%d at a time) in %s: %v; RSS %d MB -> peak %d MB", total, parallel, storm.Round(time.Millisecond), codes, rss0>>20, peak>>20)
}
