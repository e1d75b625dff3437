package e2e

// Helpers of the camera-fault tests (camfault_*_test.go, netfault_*_test.go):
// a camsim on a fixed address that can be killed and restarted, readers for
// /metrics, the JSON log and /proc, and the healthy-camera rate check.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// Timing shared by the fault tests. The issue fixes stall_timeout 2s and
// reconnect 500ms..2s; slack covers the watchdog poll (50 ms), scheduling on
// a shared machine and our own polling.
const (
	cfStallTimeout = 2 * time.Second
	cfReconnectMax = 2 * time.Second
	cfSlack        = time.Second
	cfFPS          = 10
)

// cfCam is one camera entry of a test configuration. Extra is YAML appended
// to the entry (indented by the caller's convention: "    key: value").
type cfCam struct {
	ID, URL string
	Extra   string
}

// cfConfig renders a gstcapture configuration with the fault tests'
// timing. logLevel is info unless given.
func cfConfig(redisURL, logLevel string, cams ...cfCam) string {
	if logLevel == "" {
		logLevel = "info"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `
redis:
  url: %s
  maxlen: 100000
  retention: 1h
log: {level: %s, format: json}
health: {min_ready: 0}
defaults:
  fps: %d
  format: BGR
  stall_timeout: %s
  reconnect: {initial: 500ms, max: %s}
cameras:
`, redisURL, logLevel, cfFPS, cfStallTimeout, cfReconnectMax)
	for _, c := range cams {
		fmt.Fprintf(&b, "  - id: %s\n    url: %q\n    codec: h264\n%s", c.ID, c.URL, c.Extra)
	}
	return b.String()
}

// cfCamsim is a camsim on a fixed address, so that a killed simulator can
// come back where the service expects it (startCamsim picks a new port on
// every start).
type cfCamsim struct {
	t       testing.TB
	Addr    string // RTSP host:port
	Control string // control API host:port ("" without one)
	args    []string
	p       *proc
	Ready   time.Time // when this test saw the latest start's ready line
	Starts  int
	// Past holds the output of every earlier start (Kill keeps it).
	Past strings.Builder
}

// cfStartCamsim starts camsim at a free port (fixed for its lifetime).
func cfStartCamsim(t testing.TB, o camsimOpts) *cfCamsim {
	t.Helper()
	if o.Size == "" {
		o.Size = "320x240"
	}
	if o.Codec == "" {
		o.Codec = "h264"
	}
	if o.FPS == 0 {
		o.FPS = cfFPS
	}
	if o.Cameras == 0 {
		o.Cameras = 1
	}
	c := &cfCamsim{t: t, Addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	c.args = []string{"--listen", c.Addr, "--cameras", fmt.Sprint(o.Cameras), "--codec", o.Codec,
		"--size", o.Size, "--fps", fmt.Sprint(o.FPS), "--clip-seconds", "2"}
	if o.User != "" {
		c.args = append(c.args, "--user", o.User, "--password", o.Password)
	}
	if o.Control {
		c.Control = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		c.args = append(c.args, "--control", c.Control)
	}
	c.Start()
	return c
}

// URL returns the RTSP URL of camera n (1-based).
func (c *cfCamsim) URL(n int) string { return fmt.Sprintf("rtsp://%s/cam%d", c.Addr, n) }

// Start (re)starts the simulator on its address and waits for its ready
// line. A port the killed process left behind can refuse the bind for a
// moment, so a start that exits is retried.
func (c *cfCamsim) Start() {
	c.t.Helper()
	var last string
	for attempt := 0; attempt < 5; attempt++ {
		p := start(c.t, nil, binary(c.t, "camsim"), c.args...)
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
func (c *cfCamsim) Kill() {
	c.t.Helper()
	require.NoError(c.t, c.p.cmd.Process.Signal(syscall.SIGKILL), "kill camsim at %s", c.Addr)
	select {
	case <-c.p.done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("camsim at %s did not die within 10 s of SIGKILL", c.Addr)
	}
	c.Past.WriteString(c.p.Output())
}

// Output returns what every start of the simulator printed so far.
func (c *cfCamsim) Output() string { return c.Past.String() + c.p.Output() }

// Do posts a control action (stall, resume, eos, disconnect) for camera n.
func (c *cfCamsim) Do(n int, action string) {
	c.t.Helper()
	url := fmt.Sprintf("http://%s/cameras/%d/%s", c.Control, n, action)
	resp, err := http.Post(url, "application/json", nil)
	require.NoError(c.t, err, "POST %s", url)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(c.t, http.StatusOK, resp.StatusCode, "POST %s: %s", url, body)
}

// cfRedis is a client on the test's Redis with the stream helpers.
type cfRedis struct {
	*redis.Client
	t testing.TB
}

func cfNewRedis(t testing.TB, rd *testenv.Redis) *cfRedis {
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	t.Cleanup(func() { _ = rc.Close() })
	return &cfRedis{Client: rc, t: t}
}

func (r *cfRedis) Len(cam string) int64 {
	n, err := r.XLen(ctxT(r.t, 10*time.Second), "frames:"+cam).Result()
	if err != nil && err != redis.Nil {
		r.t.Fatalf("XLEN frames:%s: %v", cam, err)
	}
	return n
}

// FirstAfter returns the Redis time of the first entry of cam's stream
// added at or after at (entry ids are the server's millisecond clock, the
// same clock as the test's on this machine), or false when there is none.
func (r *cfRedis) FirstAfter(cam string, at time.Time) (time.Time, bool) {
	start := strconv.FormatInt(at.UnixMilli(), 10)
	msgs, err := r.XRangeN(ctxT(r.t, 10*time.Second), "frames:"+cam, start, "+", 1).Result()
	require.NoError(r.t, err, "XRANGE frames:%s", cam)
	if len(msgs) == 0 {
		return time.Time{}, false
	}
	return cfEntryTime(r.t, msgs[0].ID), true
}

// CountBetween counts cam's entries added in [from, to).
func (r *cfRedis) CountBetween(cam string, from, to time.Time) int {
	msgs, err := r.XRange(ctxT(r.t, 10*time.Second), "frames:"+cam,
		strconv.FormatInt(from.UnixMilli(), 10), "("+strconv.FormatInt(to.UnixMilli(), 10)).Result()
	require.NoError(r.t, err, "XRANGE frames:%s", cam)
	return len(msgs)
}

func cfEntryTime(t testing.TB, id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	v, err := strconv.ParseInt(ms, 10, 64)
	require.NoError(t, err, "stream entry id %q", id)
	return time.UnixMilli(v)
}

// cfRate measures a camera's published entries per second between RateFrom
// and Check: a fault on another camera must not slow a healthy one.
type cfRate struct {
	r   *cfRedis
	cam string
	t0  time.Time
}

func (r *cfRedis) RateFrom(cam string) *cfRate { return &cfRate{r: r, cam: cam, t0: time.Now()} }

// Check asserts 10±2 entries/s (the tolerance at fps 10) over the
// window since RateFrom, counted by Redis entry time, and returns the rate.
func (m *cfRate) Check(t testing.TB, what string) float64 {
	t.Helper()
	t1 := time.Now().Add(-500 * time.Millisecond) // let in-flight frames land
	require.Greater(t, t1.Sub(m.t0), 5*time.Second, "rate window of %s too short to judge", m.cam)
	n := m.r.CountBetween(m.cam, m.t0, t1)
	rate := float64(n) / t1.Sub(m.t0).Seconds()
	t.Logf("camera %s during %s: %.2f entries/s over %.1f s", m.cam, what, rate, t1.Sub(m.t0).Seconds())
	assert.InDelta(t, cfFPS, rate, 2, "camera %s entries/s during %s", m.cam, what)
	return rate
}

// WaitEntry waits until cam has an entry added at or after `after`,
// returning that entry's time.
func (r *cfRedis) WaitEntry(t testing.TB, cam string, after time.Time, within time.Duration, what string) time.Time {
	t.Helper()
	var at time.Time
	ok := assert.Eventually(t, func() bool {
		var found bool
		at, found = r.FirstAfter(cam, after)
		return found
	}, within, 20*time.Millisecond, "%s: no entry of %s within %s", what, cam, within)
	if !ok {
		t.FailNow()
	}
	return at
}

// cfMetrics returns the /metrics text.
func cfMetrics(t testing.TB, s *service) string {
	t.Helper()
	resp, err := http.Get(s.HTTP + "/metrics")
	require.NoError(t, err, "GET /metrics")
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET /metrics: %s", b)
	return string(b)
}

// cfMetric reads one sample from Prometheus text: name with exactly the
// given label pairs ("camera_id", "a", "reason", "stall"). Absent is -1.
func cfMetric(text, name string, labels ...string) float64 {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		got := map[string]string{}
		if strings.HasPrefix(rest, "{") {
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			for _, kv := range strings.Split(rest[1:end], ",") {
				k, v, _ := strings.Cut(kv, "=")
				got[k] = strings.Trim(v, `"`)
			}
			rest = rest[end+1:]
		} else if !strings.HasPrefix(rest, " ") {
			continue // a longer metric name
		}
		if len(got) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err == nil {
			return f
		}
	}
	return -1
}

// cfReconnects returns rtsp_reconnects_total of cam for reason.
func cfReconnects(t testing.TB, s *service, cam, reason string) float64 {
	return cfMetric(cfMetrics(t, s), "rtsp_reconnects_total", "camera_id", cam, "reason", reason)
}

// cfReconnectsTotal sums rtsp_reconnects_total of cam over every reason.
func cfReconnectsTotal(t testing.TB, s *service, cam string) float64 {
	text := cfMetrics(t, s)
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "rtsp_reconnects_total{") && strings.Contains(line, `camera_id="`+cam+`"`) {
			f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			require.NoError(t, err, "metric line %q", line)
			sum += f
		}
	}
	return sum
}

// cfLogLine is one line of gstcapture's JSON log.
type cfLogLine struct {
	Time     time.Time `json:"time"`
	Level    string    `json:"level"`
	Msg      string    `json:"msg"`
	CameraID string    `json:"camera_id"`
	State    string    `json:"state"`
	Reason   string    `json:"reason"`
	Error    string    `json:"error"`
}

// cfLogs parses every JSON line of out (other lines are skipped).
func cfLogs(out string) []cfLogLine {
	var res []cfLogLine
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l cfLogLine
		if bytes.HasPrefix(sc.Bytes(), []byte("{")) && json.Unmarshal(sc.Bytes(), &l) == nil {
			res = append(res, l)
		}
	}
	return res
}

// cfStateChanges returns cam's "camera state changed" lines.
func cfStateChanges(out, cam string) []cfLogLine {
	var res []cfLogLine
	for _, l := range cfLogs(out) {
		if l.Msg == "camera state changed" && l.CameraID == cam {
			res = append(res, l)
		}
	}
	return res
}

// cfWaitState polls /health until cam is in state, returning when it was
// seen; it fails the test after within.
func cfWaitState(t testing.TB, s *service, cam, state string, within time.Duration) time.Time {
	t.Helper()
	var last cameraStatus
	deadline := time.Now().Add(within)
	for {
		last = s.health(t).camera(cam)
		if last.State == state {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("camera %s not %q within %s: state %q, last_error %q", cam, state, within, last.State, last.LastError)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cfProcStats are a process's resource figures from /proc.
type cfProcStats struct {
	Threads int
	FDs     int
	RSSKB   int64
	FDKinds map[string]int // "socket", "pipe", "anon_inode:[eventfd]", "/path" ...
}

func (p cfProcStats) String() string {
	return fmt.Sprintf("threads %d, fds %d %v, RSS %.1f MB", p.Threads, p.FDs, p.FDKinds, float64(p.RSSKB)/1024)
}

func cfReadProc(t testing.TB, pid int) cfProcStats {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err, "read /proc/%d/status", pid)
	var st cfProcStats
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		switch k {
		case "Threads":
			st.Threads, _ = strconv.Atoi(fields[0])
		case "VmRSS":
			st.RSSKB, _ = strconv.ParseInt(fields[0], 10, 64)
		}
	}
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	require.NoError(t, err, "list /proc/%d/fd", pid)
	st.FDs = len(fds)
	st.FDKinds = map[string]int{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		kind, _, _ := strings.Cut(target, ":[") // socket:[123] -> socket
		if strings.HasPrefix(target, "anon_inode:") {
			kind = target
		}
		st.FDKinds[kind]++
	}
	require.NotZero(t, st.Threads, "no Threads line in /proc/%d/status", pid)
	require.NotZero(t, st.RSSKB, "no VmRSS line in /proc/%d/status", pid)
	return st
}
