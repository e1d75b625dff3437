package e2e

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
	"sync"
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
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output returns everything the process printed so far.
func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// start runs bin with args and env, stopping it (SIGTERM then SIGKILL) at
// cleanup.
func start(t testing.TB, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
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
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// ExitCode waits for the process and returns its exit status.
func (p *proc) ExitCode(timeout time.Duration) int {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// camsim starts the simulator and waits for its ready line.
type camsimOpts struct {
	Cameras  int
	Codec    string
	Size     string
	FPS      int
	User     string
	Password string
	Control  bool
	Listen   string // RTSP host:port; empty picks a free port (set it to restart on the same address)
	TLSCert  string // PEM certificate and key files: serve rtsps
	TLSKey   string
}

type camsimProc struct {
	*proc
	Addr    string // host:port of the RTSP server
	Control string // host:port of the control API, if any
}

func startCamsim(t testing.TB, o camsimOpts) *camsimProc {
	t.Helper()
	c := &camsimProc{Addr: o.Listen}
	if c.Addr == "" {
		c.Addr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	}
	args := []string{"--listen", c.Addr, "--cameras", fmt.Sprint(o.Cameras), "--codec", o.Codec, "--size", o.Size, "--fps", fmt.Sprint(o.FPS)}
	if o.User != "" {
		args = append(args, "--user", o.User, "--password", o.Password)
	}
	if o.TLSCert != "" {
		args = append(args, "--tls-cert", o.TLSCert, "--tls-key", o.TLSKey)
	}
	if o.Control {
		c.Control = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		args = append(args, "--control", c.Control)
	}
	c.proc = start(t, nil, binary(t, "camsim"), args...)
	require.Eventually(t, func() bool { return strings.Contains(c.Output(), "camsim ready") }, 60*time.Second, 50*time.Millisecond,
		"camsim did not print its ready line: %s", c.Output())
	return c
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
	HTTP string // base URL
}

func startService(t testing.TB, configYAML string, env ...string) *service {
	t.Helper()
	return startServiceBin(t, "gstcapture", configYAML, env...)
}

// startServiceBin is startService with another build of gstcapture in bin/
// (gstcapture-race).
func startServiceBin(t testing.TB, bin, configYAML string, env ...string) *service {
	t.Helper()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "config.yaml", configYAML)
	port := testenv.FreePort(t)
	s := &service{HTTP: fmt.Sprintf("http://127.0.0.1:%d", port)}
	tokens := writeFile(t, dir, "tokens", "read "+e2eReadToken+"\nadmin "+e2eAdminToken+"\n")
	env = append([]string{fmt.Sprintf("GSTCAPTURE_HTTP__LISTEN=127.0.0.1:%d", port), "GSTCAPTURE_HTTP__AUTH__TOKENS_FILE=" + tokens}, env...)
	s.proc = start(t, env, binary(t, bin), "run", "--config", cfg)
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

// getJSON fetches path and decodes the body into v, returning the status.
func (s *service) getJSON(t testing.TB, path string, v any) int {
	t.Helper()
	resp, err := http.Get(s.HTTP + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if v != nil {
		require.NoError(t, json.Unmarshal(body, v), "body of %s: %s", path, body)
	}
	return resp.StatusCode
}

// cameraStatus is the part of /health the tests read.
type cameraStatus struct {
	ID        string            `json:"id"`
	State     string            `json:"state"`
	FPS       float64           `json:"fps"`
	Captured  uint64            `json:"frames_captured"`
	Published uint64            `json:"frames_published"`
	Dropped   map[string]uint64 `json:"frames_dropped"`
	LastError string            `json:"last_error"`
	Decoder   string            `json:"decoder"`
}

type healthReport struct {
	Status  string         `json:"status"`
	Redis   string         `json:"redis"`
	Cameras []cameraStatus `json:"cameras"`
}

func (s *service) health(t testing.TB) healthReport {
	var r healthReport
	s.getJSON(t, "/health", &r)
	return r
}

func (r healthReport) camera(id string) cameraStatus {
	for _, c := range r.Cameras {
		if c.ID == id {
			return c
		}
	}
	return cameraStatus{}
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
