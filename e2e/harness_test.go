package e2e

// The harness every e2e test runs on: child processes, the gstcapture
// service and its HTTP API, /health. The rest of it lives next door:
// harness_config_test.go (the configuration file), harness_camsim_test.go
// (camsim and the RTSP relay), harness_redis_test.go (the frame streams and
// what an entry holds), harness_metrics_test.go (/metrics),
// harness_logs_test.go (the JSON log) and harness_sampler_test.go (/health
// and /proc over time).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// repoRoot is the repository root (the parent of e2e/).
func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// binary returns the path of a built binary, failing with a hint when absent.
func binary(t testing.TB, name string) string {
	p := filepath.Join(repoRoot(t), "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not built: run `make build` (or `make e2e`) first", p)
	}
	return p
}

// proc is a started child process whose combined output is captured.
type proc struct {
	cmd  *exec.Cmd
	out  testenv.Output
	done chan struct{}
	err  error
}

// Output returns everything the process printed so far.
func (p *proc) Output() string { return p.out.String() }

// start runs bin with args and env, stopping it (SIGTERM then SIGKILL) at
// cleanup.
func start(t testing.TB, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	// A test that panics or times out must not leave servers behind.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", filepath.Base(bin), tail(p.Output(), 4000))
		}
	})
	return p
}

// Stop sends SIGTERM and waits up to grace before SIGKILL.
func (p *proc) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Exited reports whether the process has ended.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process.
func (p *proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig), "signal %s to %s", sig, filepath.Base(p.cmd.Path))
}

// ExitCode waits for the process and returns its exit status, -1 when it
// is still running after timeout.
func (p *proc) ExitCode(timeout time.Duration) int {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Pid is the process id.
func (p *proc) Pid() int { return p.cmd.Process.Pid }

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// writeFile writes a file into dir and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// service is a running bin/gstcapture.
type service struct {
	*proc
	HTTP   string // base URL
	Config string // the configuration file it runs with (absolute)
}

func startService(t testing.TB, cfg svcConfig, env ...string) *service {
	t.Helper()
	return startServiceBin(t, "gstcapture", cfg, env...)
}

// startServiceBin is startService with another build of gstcapture in bin/
// (gstcapture-race).
func startServiceBin(t testing.TB, bin string, cfg svcConfig, env ...string) *service {
	t.Helper()
	dir := t.TempDir()
	file := writeFile(t, dir, "config.yaml", cfg.YAML(t))
	port := testenv.FreePort(t)
	s := &service{HTTP: fmt.Sprintf("http://127.0.0.1:%d", port), Config: file}
	tokens := writeFile(t, dir, "tokens", "read "+e2eReadToken+"\nadmin "+e2eAdminToken+"\n")
	env = append([]string{fmt.Sprintf("GSTCAPTURE_HTTP__LISTEN=127.0.0.1:%d", port), "GSTCAPTURE_HTTP__AUTH__TOKENS_FILE=" + tokens}, env...)
	s.proc = start(t, env, binary(t, bin), "run", "--config", file)
	require.Eventually(t, func() bool {
		resp, err := http.Get(s.HTTP + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}, 30*time.Second, 100*time.Millisecond, "gstcapture HTTP did not come up: %s", s.Output())
	return s
}

// The API tokens every service the tests start accepts (http.auth). The
// tests' HTTP clients send the read token (bearerTransport): the API's
// own checks are TestHTTPAuth's, which uses rawHTTP.
const (
	e2eReadToken  = "e2e-read-0123456789abcdef"
	e2eAdminToken = "e2e-admin-0123456789abcdef"
)

// rawHTTP is a client that adds no token.
var rawHTTP = &http.Client{Transport: http.DefaultTransport, Timeout: 30 * time.Second}

// apiHTTP is the tests' client: the read token, and a bound on each request
// (a background sampler must not hang on a wedged service).
var apiHTTP = &http.Client{Timeout: 10 * time.Second}

// bearerTransport adds the read token to requests that carry none.
type bearerTransport struct{ base http.RoundTripper }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+e2eReadToken)
	}
	return b.base.RoundTrip(r)
}

func init() { http.DefaultTransport = bearerTransport{base: rawHTTP.Transport} }

// fetch GETs url and returns the status and body; err is a request that
// got no answer. It never fails the test: background goroutines use it.
func fetch(url string) (int, []byte, error) {
	resp, err := apiHTTP.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// httpGet is fetch for the test goroutine: a request without an answer
// fails the test.
func httpGet(t testing.TB, url string) (int, []byte) {
	t.Helper()
	code, body, err := fetch(url)
	require.NoError(t, err, "GET %s", url)
	return code, body
}

// getJSON fetches path and decodes the body into v, returning the status.
func (s *service) getJSON(t testing.TB, path string, v any) int {
	t.Helper()
	code, body := httpGet(t, s.HTTP+path)
	if v != nil {
		require.NoError(t, json.Unmarshal(body, v), "body of %s: %s", path, body)
	}
	return code
}

// cameraStatus is a camera's entry in /health: every field a test reads.
type cameraStatus struct {
	ID                 string            `json:"id"`
	State              string            `json:"state"`
	Source             string            `json:"source"` // file or api
	Enabled            bool              `json:"enabled"`
	FPS                float64           `json:"fps"`
	Captured           uint64            `json:"frames_captured"`
	Published          uint64            `json:"frames_published"`
	Dropped            map[string]uint64 `json:"frames_dropped"`
	LastError          string            `json:"last_error"`
	Reconnects         uint64            `json:"reconnects"`
	Frozen             uint64            `json:"frozen_pipelines"`
	Codec              string            `json:"codec"`
	Decoder            string            `json:"decoder"`
	SkippedUndecodable uint64            `json:"frames_skipped_undecodable"`
	DiscardedByDecoder uint64            `json:"frames_discarded_by_decoder"`
	// The stream, as the Redis memory budget sized it.
	RedisMaxLen        int64   `json:"redis_maxlen"`
	Delivery           string  `json:"delivery"`
	ShmSegment         string  `json:"shm_segment"`
	ShmBytes           int64   `json:"shm_bytes"`
	RedisRetention     float64 `json:"redis_retention_seconds"`
	RetentionShortened bool    `json:"retention_shortened"`
	// The ring, as memory.budget sized it.
	RingFrames     int   `json:"ring_frames"`
	RingBytesLimit int64 `json:"ring_bytes_limit"`
	RingShortened  bool  `json:"ring_shortened"`
}

// DroppedTotal sums Dropped over its reasons.
func (c cameraStatus) DroppedTotal() uint64 {
	var n uint64
	for _, v := range c.Dropped {
		n += v
	}
	return n
}

// healthReport is /health: every field a test reads.
type healthReport struct {
	Status string `json:"status"`
	Redis  string `json:"redis"`
	Frozen int64  `json:"frozen_pipelines"`
	Memory struct {
		Budget    int64  `json:"budget_bytes"`
		Source    string `json:"source"`
		GoLimit   int64  `json:"go_limit_bytes"`
		PerCamera int64  `json:"per_camera_bytes"`
	} `json:"memory"`
	Config  *configStatus  `json:"config"`
	Cameras []cameraStatus `json:"cameras"`
}

// configStatus is /health's config: which configuration runs, and how the
// latest reload of the file went.
type configStatus struct {
	File          string          `json:"file"`
	Generation    uint64          `json:"generation"`
	LoadedAt      time.Time       `json:"loaded_at"`
	LastReloadAt  *time.Time      `json:"last_reload_at"`
	LastResult    string          `json:"last_result"` // initial, applied, unchanged, invalid
	LastError     string          `json:"last_error"`
	Problems      []configProblem `json:"problems"`
	RestartNeeded []string        `json:"restart_needed"`
	APICameras    struct {
		Loaded bool   `json:"loaded"`
		Count  int    `json:"count"`
		Error  string `json:"error"`
	} `json:"api_cameras"`
}

// configProblem is one thing wrong with a configuration file (path
// cameras[1].fps) or a camera API entry (path fps).
type configProblem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (s *service) health(t testing.TB) healthReport {
	t.Helper()
	var r healthReport
	s.getJSON(t, "/health", &r)
	return r
}

// tryHealth is health for background goroutines and polls: a failed fetch
// returns false instead of failing the test. (/health answers 503 with the
// same report when the service is unhealthy.)
func (s *service) tryHealth() (healthReport, bool) {
	var r healthReport
	_, body, err := fetch(s.HTTP + "/health")
	if err != nil || json.Unmarshal(body, &r) != nil {
		return r, false
	}
	return r, true
}

func (r healthReport) camera(id string) cameraStatus {
	for _, c := range r.Cameras {
		if c.ID == id {
			return c
		}
	}
	return cameraStatus{}
}

// byID returns the cameras by id.
func (r healthReport) byID() map[string]cameraStatus {
	out := map[string]cameraStatus{}
	for _, c := range r.Cameras {
		out[c.ID] = c
	}
	return out
}

// waitState polls /health until cam is in state, returning when it was
// seen; it fails the test after within.
func (s *service) waitState(t testing.TB, cam, state string, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		last := s.health(t).camera(cam)
		if last.State == state {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("camera %s not %q within %s: state %q, last_error %q", cam, state, within, last.State, last.LastError)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lines returns the output lines containing substr.
func lines(out, substr string) []string {
	var res []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			res = append(res, sc.Text())
		}
	}
	return res
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
