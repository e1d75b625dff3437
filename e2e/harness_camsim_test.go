package e2e

// The camera side of the harness: bin/camsim, and e2e/tools/rtsprelay (an
// RTSP server the project did not write, fed by ffmpeg).

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// camsimOpts are camsim's flags. A zero field leaves camsim's default (one
// camera, h264, 1280x720 at 25 fps, 4 s clips).
type camsimOpts struct {
	Cameras     int
	Codec       string
	Size        string
	FPS         int
	ClipSeconds float64
	User        string
	Password    string
	Control     bool   // serve the control API
	TLSCert     string // PEM certificate and key files: serve rtsps
	TLSKey      string
	Flags       []string // further flags: --extra-sizes, --tcp-only, --audio, --bframes ...
}

func (o camsimOpts) args() []string {
	var args []string
	flag := func(name string, v any) {
		switch v {
		case "", 0, 0.0:
			return
		}
		args = append(args, "--"+name, fmt.Sprint(v))
	}
	flag("cameras", o.Cameras)
	flag("codec", o.Codec)
	flag("size", o.Size)
	flag("fps", o.FPS)
	flag("clip-seconds", o.ClipSeconds)
	flag("user", o.User)
	flag("password", o.Password)
	flag("tls-cert", o.TLSCert)
	flag("tls-key", o.TLSKey)
	return append(args, o.Flags...)
}

// camsim is a running camera simulator on an address fixed for its
// lifetime, so that a killed or stopped simulator comes back where the
// service expects it.
type camsim struct {
	t       testing.TB
	Addr    string // RTSP host:port
	Control string // control API host:port ("" without one)
	args    []string
	p       *proc
	Ready   time.Time // when this test saw the latest start's ready line
	Starts  int
	all     []*proc // every start, the output of each kept
}

// startCamsim starts camsim on free ports and waits for its ready line.
func startCamsim(t testing.TB, o camsimOpts) *camsim {
	t.Helper()
	c := &camsim{t: t, Addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	c.args = append([]string{"--listen", c.Addr}, o.args()...)
	if o.Control {
		c.Control = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		c.args = append(c.args, "--control", c.Control)
	}
	c.Start()
	return c
}

// URL returns the RTSP URL of camera n (1-based).
func (c *camsim) URL(n int) string { return fmt.Sprintf("rtsp://%s/cam%d", c.Addr, n) }

// Start (re)starts the simulator on its address and waits for its ready
// line. A port the killed process left behind can refuse the bind for a
// moment, so a start that exits is retried.
func (c *camsim) Start() {
	c.t.Helper()
	var last string
	for attempt := 0; attempt < 5; attempt++ {
		p := start(c.t, nil, binary(c.t, "camsim"), c.args...)
		c.all = append(c.all, p)
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if strings.Contains(p.Output(), "camsim ready") {
				c.p, c.Ready = p, time.Now()
				c.Starts++
				return
			}
			select {
			case <-p.done:
				deadline = time.Time{}
			case <-time.After(5 * time.Millisecond):
			}
		}
		p.Stop(time.Second)
		last = p.Output()
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("camsim at %s did not become ready after 5 starts; last output:\n%s", c.Addr, tail(last, 2000))
}

// Kill ends the simulator with SIGKILL (no RTSP TEARDOWN, no clean close)
// and waits for it to be gone.
func (c *camsim) Kill() {
	c.t.Helper()
	require.NoError(c.t, c.p.cmd.Process.Signal(syscall.SIGKILL), "kill camsim at %s", c.Addr)
	select {
	case <-c.p.done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("camsim at %s did not die within 10 s of SIGKILL", c.Addr)
	}
}

// Stop ends the simulator with SIGTERM (SIGKILL after grace).
func (c *camsim) Stop(grace time.Duration) { c.p.Stop(grace) }

// Running reports whether the latest start is still running.
func (c *camsim) Running() bool { return !c.p.Exited() }

// Output returns what every start of the simulator printed so far.
func (c *camsim) Output() string {
	var b strings.Builder
	for _, p := range c.all {
		b.WriteString(p.Output())
	}
	return b.String()
}

// Do posts a control action for camera n: stall, resume, eos, disconnect,
// clean, corrupt?rate=0.05, size?w=320&h=240 ...
func (c *camsim) Do(n int, action string) {
	c.t.Helper()
	url := fmt.Sprintf("http://%s/cameras/%d/%s", c.Control, n, action)
	resp, err := http.Post(url, "application/json", nil)
	require.NoError(c.t, err, "POST %s", url)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(c.t, http.StatusOK, resp.StatusCode, "POST %s: %s", url, body)
}

// Status is the control API's /status.
func (c *camsim) Status() testenv.CamsimStatus {
	c.t.Helper()
	return testenv.GetCamsimStatus(c.t, "http://"+c.Control)
}

// startRelay builds and starts e2e/tools/rtsprelay on a free port and
// returns its base URL (rtsp://127.0.0.1:PORT) and process; args are
// further flags (--tls-listen ...).
func startRelay(t *testing.T, args ...string) (string, *proc) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rtsprelay")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join(repoRoot(t), "e2e", "tools", "rtsprelay")
	build.Env = os.Environ()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	var out []byte
	go func() {
		var err error
		out, err = build.CombinedOutput()
		done <- err
	}()
	select {
	case err := <-done:
		require.NoError(t, err, "build rtsprelay: %s", out)
	case <-ctx.Done():
		_ = build.Process.Kill()
		t.Fatal("building rtsprelay took over 5 minutes")
	}
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	p := start(t, nil, bin, append([]string{"--listen", addr}, args...)...)
	require.Eventually(t, func() bool { return strings.Contains(p.Output(), "rtsprelay ready") }, 20*time.Second, 50*time.Millisecond,
		"rtsprelay did not start: %s", p.Output())
	return "rtsp://" + addr, p
}

// waitPublishing waits until the relay says a publisher is on path (a
// reader before its publisher would get 404 and reconnect).
func waitPublishing(t *testing.T, relay *proc, path string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(relay.Output(), "rtsprelay publishing /"+path) },
		30*time.Second, 50*time.Millisecond, "ffmpeg did not publish %s: %s", path, relay.Output())
}

// publishLoop has ffmpeg publish to the relay, at path, a 4 s H.264 clip
// with B-frames (one keyframe a second) of the lavfi source src (e.g.
// "testsrc2=size=640x360") at fps, looped, and waits until the relay has
// it.
func publishLoop(t *testing.T, relay string, relayProc *proc, path, src string, fps int) {
	t.Helper()
	clip := filepath.Join(t.TempDir(), path+".mp4")
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", fmt.Sprintf("%s:rate=%d", src, fps),
		"-t", "4", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-bf", "2", "-g", fmt.Sprint(fps), clip).CombinedOutput()
	require.NoError(t, err, "encode the relay's clip: %s", out)
	start(t, nil, "ffmpeg", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", clip,
		"-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", relay+"/"+path)
	waitPublishing(t, relayProc, path)
}
