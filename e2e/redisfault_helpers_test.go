package e2e

// Helpers of the Redis-fault, process-fault and soak tests
// (redisfault_*_test.go, process_*_test.go, soak_test.go): freezing and
// counting Redis, reading the service's final accounting from its JSON log,
// /proc figures, /health sampling that never fails the test from a
// background goroutine, and camsim's control API.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// rfPID asks redis-server for its process id (INFO server).
func rfPID(t testing.TB, rc *redis.Client) int {
	t.Helper()
	info, err := rc.Info(ctxT(t, 5*time.Second), "server").Result()
	require.NoError(t, err, "INFO server")
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			require.NoError(t, err, "process_id %q", v)
			return pid
		}
	}
	t.Fatalf("INFO server has no process_id:\n%s", info)
	return 0
}

// rfFreeze stops redis-server with SIGSTOP: every client blocks, as with
// DEBUG SLEEP (which the test servers refuse: enable-debug-command is off)
// or a long fork, swap or VM pause; the kernel still accepts connections
// and buffers what clients send. The returned func resumes it (SIGCONT) and
// is also registered as a cleanup, so a failing test never leaves it frozen.
func rfFreeze(t testing.TB, pid int) (thaw func()) {
	t.Helper()
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP), "SIGSTOP redis-server %d", pid)
	var once sync.Once
	thaw = func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	t.Cleanup(thaw)
	return thaw
}

// rfPauseAndCount holds every write (CLIENT PAUSE WRITE), lets replies
// already sent reach their clients, and returns XLEN of each key. What it
// returns is then final for this server: an XADD that arrives later is
// held, and dies unexecuted with the server when the caller kills it.
// That is how entries are counted across a kill of a server that keeps no
// data.
func rfPauseAndCount(t testing.TB, rc *redis.Client, keys ...string) map[string]int64 {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	require.NoError(t, rc.Do(ctx, "CLIENT", "PAUSE", "60000", "WRITE").Err(), "CLIENT PAUSE WRITE")
	time.Sleep(300 * time.Millisecond)
	out := map[string]int64{}
	for _, k := range keys {
		n, err := rc.XLen(ctx, k).Result()
		require.NoError(t, err, "XLEN %s", k)
		out[k] = n
	}
	return out
}

// rfLastSeq returns the seq field of the newest entry of key (0 if empty).
func rfLastSeq(t testing.TB, rc *redis.Client, key string) uint64 {
	t.Helper()
	msgs, err := rc.XRevRangeN(ctxT(t, 10*time.Second), key, "+", "-", 1).Result()
	require.NoError(t, err, "XREVRANGE %s", key)
	if len(msgs) == 0 {
		return 0
	}
	seq, err := strconv.ParseUint(fmt.Sprint(msgs[0].Values["seq"]), 10, 64)
	require.NoError(t, err, "%s: seq of %s", key, msgs[0].ID)
	return seq
}

// rfAccounting is one "final accounting" line that gstcapture logs per
// camera when it stops.
type rfAccounting struct {
	Level        string            `json:"level"`
	CameraID     string            `json:"camera_id"`
	Captured     uint64            `json:"captured"`
	Published    uint64            `json:"published"`
	DroppedTotal uint64            `json:"dropped_total"`
	Dropped      map[string]uint64 `json:"dropped"`
	LeftInRing   uint64            `json:"left_in_ring"`
	Unconfirmed  uint64            `json:"unconfirmed"`
	UnconfDrop   uint64            `json:"unconfirmed_dropped"`
	Balanced     bool              `json:"balanced"`
}

// rfLogLine is the part of a JSON log line the tests read.
type rfLogLine struct {
	Time     time.Time `json:"time"`
	Level    string    `json:"level"`
	Msg      string    `json:"msg"`
	CameraID string    `json:"camera_id"`
	Flushed  *int64    `json:"flushed_frames"`
	Stored   *int64    `json:"stored_anyway"`
	Frames   *int64    `json:"frames"`
	raw      []byte
}

// rfLogs parses the JSON lines of a service's output.
func rfLogs(out string) []rfLogLine {
	var res []rfLogLine
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l rfLogLine
		if bytes.HasPrefix(sc.Bytes(), []byte("{")) && json.Unmarshal(sc.Bytes(), &l) == nil {
			l.raw = append([]byte(nil), sc.Bytes()...)
			res = append(res, l)
		}
	}
	return res
}

// rfFinalAccounting returns the final accounting per camera id, failing
// when a configured camera has none.
func rfFinalAccounting(t testing.TB, out string, ids ...string) map[string]rfAccounting {
	t.Helper()
	res := map[string]rfAccounting{}
	for _, l := range rfLogs(out) {
		if l.Msg != "final accounting" {
			continue
		}
		var a rfAccounting
		require.NoError(t, json.Unmarshal(l.raw, &a), "final accounting line %s", l.raw)
		res[a.CameraID] = a
	}
	for _, id := range ids {
		require.Contains(t, res, id, "no final accounting line for camera %s in:\n%s", id, tail(out, 3000))
	}
	return res
}

// rfCheckIdentity checks captured = published + dropped (by reason) + left
// in the ring, exactly, from the final numbers, and that nothing is left
// unsettled.
func rfCheckIdentity(t testing.TB, a rfAccounting) {
	t.Helper()
	var sum uint64
	for _, n := range a.Dropped {
		sum += n
	}
	require.Equal(t, a.DroppedTotal, sum, "%s: dropped_total is the sum of the reasons %v", a.CameraID, a.Dropped)
	require.Equal(t, a.Captured, a.Published+sum+a.LeftInRing,
		"%s: captured %d != published %d + dropped %d %v + left in ring %d",
		a.CameraID, a.Captured, a.Published, sum, a.Dropped, a.LeftInRing)
	require.Zero(t, a.Unconfirmed, "%s: frames left unsettled at exit", a.CameraID)
	require.True(t, a.Balanced, "%s: the service itself reports an unbalanced account", a.CameraID)
	require.Equal(t, "INFO", a.Level, "%s: final accounting logged as %s", a.CameraID, a.Level)
}

// rfProc is a process' resource figures from /proc.
type rfProc struct {
	RSSMB   float64
	Threads int
	FDs     int
}

// rfReadProc reads /proc/<pid>; ok is false once the process is gone.
func rfReadProc(pid int) (rfProc, bool) {
	var p rfProc
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			kb, _ := strconv.ParseFloat(f[1], 64)
			p.RSSMB = kb / 1024
		case "Threads:":
			p.Threads, _ = strconv.Atoi(f[1])
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return p, false
	}
	p.FDs = len(fds)
	return p, true
}

// rfSample is one look at the service: /health per camera plus /proc.
type rfSample struct {
	At         time.Time
	Redis      string
	Cams       map[string]cameraStatus
	Reconnects map[string]uint64
	Frozen     int64
	Proc       rfProc
	Goroutines int // go_goroutines from /metrics, when the sampler reads it
}

// rfHealth fetches /health without failing the test (it runs from
// background goroutines); a fetch error returns ok=false.
func rfHealth(base string) (rfSample, bool) {
	s := rfSample{At: time.Now(), Cams: map[string]cameraStatus{}, Reconnects: map[string]uint64{}}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(base + "/health")
	if err != nil {
		return s, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return s, false
	}
	var r struct {
		Redis   string         `json:"redis"`
		Frozen  int64          `json:"frozen_pipelines"`
		Cameras []cameraStatus `json:"cameras"`
	}
	var rec struct {
		Cameras []struct {
			ID         string `json:"id"`
			Reconnects uint64 `json:"reconnects"`
		} `json:"cameras"`
	}
	if json.Unmarshal(body, &r) != nil || json.Unmarshal(body, &rec) != nil {
		return s, false
	}
	s.Redis, s.Frozen = r.Redis, r.Frozen
	for _, cs := range r.Cameras {
		s.Cams[cs.ID] = cs
	}
	for _, c := range rec.Cameras {
		s.Reconnects[c.ID] = c.Reconnects
	}
	return s, true
}

// rfSampler polls /health and /proc every period until stopped.
type rfSampler struct {
	mu      sync.Mutex
	samples []rfSample
	stop    chan struct{}
	done    chan struct{}
}

func rfStartSampler(t testing.TB, svc *service, period time.Duration) *rfSampler {
	return rfStartSamplerOpts(t, svc, period, false)
}

// rfStartSamplerOpts also reads go_goroutines from /metrics when goroutines.
func rfStartSamplerOpts(t testing.TB, svc *service, period time.Duration, goroutines bool) *rfSampler {
	s := &rfSampler{stop: make(chan struct{}), done: make(chan struct{})}
	pid := svc.cmd.Process.Pid
	go func() {
		defer close(s.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			if h, ok := rfHealth(svc.HTTP); ok {
				h.Proc, _ = rfReadProc(pid)
				if goroutines {
					h.Goroutines = rfGoroutines(svc.HTTP)
				}
				s.mu.Lock()
				s.samples = append(s.samples, h)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(s.Stop)
	return s
}

// Stop ends sampling (idempotent).
func (s *rfSampler) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// Between returns the samples taken in [from, to].
func (s *rfSampler) Between(from, to time.Time) []rfSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []rfSample
	for _, x := range s.samples {
		if !x.At.Before(from) && !x.At.After(to) {
			out = append(out, x)
		}
	}
	return out
}

// All returns every sample so far.
func (s *rfSampler) All() []rfSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rfSample(nil), s.samples...)
}

// rfRate is cam's frames_captured per second between the first and last
// of samples (NaN with fewer than two).
func rfRate(samples []rfSample, cam string) float64 {
	if len(samples) < 2 {
		return math.NaN()
	}
	a, b := samples[0], samples[len(samples)-1]
	dt := b.At.Sub(a.At).Seconds()
	if dt <= 0 {
		return math.NaN()
	}
	return float64(b.Cams[cam].Captured-a.Cams[cam].Captured) / dt
}

// rfControl posts a camsim control action for camera n (1-based).
func rfControl(t testing.TB, control string, n int, action string) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://%s/cameras/%d/%s", control, n, action), "", nil)
	require.NoError(t, err, "camsim %s camera %d", action, n)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "camsim %s camera %d: %s", action, n, body)
}

// rfSignal sends sig to the service.
func rfSignal(t testing.TB, svc *service, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, svc.cmd.Process.Signal(sig), "signal %s to gstcapture", sig)
}

var rfGoroutinesRE = regexp.MustCompile(`(?m)^go_goroutines (\d+)$`)

// rfGoroutines reads go_goroutines from /metrics (0 when it cannot).
func rfGoroutines(base string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0
	}
	m := rfGoroutinesRE.FindSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// rfOutage stops rd, waits for /health to say redis down, and returns when
// outage has passed since the stop: the time of the stop and the peak RSS
// (MB) smp sampled since.
func rfOutage(t *testing.T, rd *testenv.Redis, svc *service, smp *rfSampler, outage time.Duration) (tKill time.Time, peakMB float64) {
	t.Helper()
	tKill = time.Now()
	rd.Stop()
	require.Eventually(t, func() bool { h, ok := rfHealth(svc.HTTP); return ok && h.Redis == "down" },
		15*time.Second, 100*time.Millisecond, "/health never said redis down")
	time.Sleep(time.Until(tKill.Add(outage)))
	for _, s := range smp.Between(tKill, time.Now()) {
		peakMB = math.Max(peakMB, s.Proc.RSSMB)
	}
	return tKill, peakMB
}
