package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemo runs `make demo`'s script as a user would: it prints where to
// look, frames reach Redis, /health is healthy, and Ctrl-C (SIGINT to the
// process group) stops everything it started.
func TestDemo(t *testing.T) {
	binary(t, "gstcapture")
	binary(t, "camsim")
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), "scripts", "demo.sh"))
	p := &proc{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	go func() { p.err = cmd.Wait(); close(p.done) }()
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("demo output:\n%s", p.Output())
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(p.Output(), "Press Ctrl-C") {
		select {
		case <-p.done:
			t.Fatalf("demo exited before it was ready: %v", p.err)
		case <-time.After(100 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "demo not ready within 90 s")
	}

	out := p.Output()
	port := regexp.MustCompile(`redis-cli -p (\d+) XLEN frames:cam1`).FindStringSubmatch(out)
	require.NotNil(t, port, "demo prints the XLEN command")
	health := regexp.MustCompile(`curl -s -H "Authorization: Bearer (\S+)" (http://\S+/health)`).FindStringSubmatch(out)
	require.NotNil(t, health, "demo prints the health URL with its token")

	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port[1]})
	defer rc.Close()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		for _, cam := range []string{"cam1", "cam2", "cam3", "cam4"} {
			if n, _ := rc.XLen(ctx, "frames:"+cam).Result(); n < 5 {
				return false
			}
		}
		return true
	}, 60*time.Second, 200*time.Millisecond, "all four demo cameras publish")
	req, err := http.NewRequest("GET", health[2], nil)
	require.NoError(t, err)
	resp, err := rawHTTP.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the demo's API wants its token")
	req.Header.Set("Authorization", "Bearer "+health[1])
	resp, err = rawHTTP.Do(req)
	require.NoError(t, err)
	var report healthReport
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&report))
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the printed command works")
	assert.Equal(t, "healthy", report.Status)

	// The console it prints is served, and its admin token is one.
	console := regexp.MustCompile(`Console: +(http://\S+/) +\(sign in with (\S+),`).FindStringSubmatch(out)
	require.NotNil(t, console, "demo prints the console's address and admin token")
	resp, err = rawHTTP.Get(console[1])
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(page), "/console/app.js", "the console's page")
	req, err = http.NewRequest("GET", strings.TrimSuffix(console[1], "/")+"/api/v1/session", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+console[2])
	resp, err = rawHTTP.Do(req)
	require.NoError(t, err)
	var session struct{ Scope string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&session))
	resp.Body.Close()
	assert.Equal(t, "admin", session.Scope, "the printed console token may change cameras")

	// Ctrl-C: the terminal sends SIGINT to the whole foreground group.
	require.NoError(t, syscall.Kill(-pgid, syscall.SIGINT))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop within 30 s of Ctrl-C")
	}
	// Nothing it started is left: the group is empty.
	require.Eventually(t, func() bool { return syscall.Kill(-pgid, 0) != nil }, 10*time.Second, 100*time.Millisecond,
		"processes of the demo survived Ctrl-C")
}
