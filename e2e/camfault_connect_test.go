package e2e

import (
	"fmt"
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

// cfSeries samples rtsp_reconnects_total of some cameras over time, so the
// spacing of reconnect attempts can be checked without trusting what the
// service says about its own backoff.
type cfSeries struct {
	mu      sync.Mutex
	samples map[string][]cfSample
	stop    chan struct{}
	done    chan struct{}
}

type cfSample struct {
	at time.Time
	n  float64
}

// cfSampleReconnects polls /metrics every 100 ms for cams (camera id ->
// reconnect reason) until Stop.
func cfSampleReconnects(t testing.TB, s *service, cams map[string]string) *cfSeries {
	sr := &cfSeries{samples: map[string][]cfSample{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(sr.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sr.stop:
				return
			case <-tick.C:
			}
			text, ok := cfTryMetrics(s)
			if !ok {
				continue // a missed sample only lowers the resolution
			}
			now := time.Now()
			sr.mu.Lock()
			for cam, reason := range cams {
				sr.samples[cam] = append(sr.samples[cam], cfSample{now, cfMetric(text, "rtsp_reconnects_total", "camera_id", cam, "reason", reason)})
			}
			sr.mu.Unlock()
		}
	}()
	t.Cleanup(sr.Stop)
	return sr
}

// cfTryMetrics is cfMetrics for a background goroutine, which must not
// fail the test.
func cfTryMetrics(s *service) (string, bool) {
	resp, err := http.Get(s.HTTP + "/metrics")
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err == nil && resp.StatusCode == http.StatusOK
}

func (sr *cfSeries) Stop() {
	select {
	case <-sr.stop:
	default:
		close(sr.stop)
	}
	<-sr.done
}

// attempts returns when each reconnect of cam was first seen.
func (sr *cfSeries) attempts(cam string) []time.Time {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	var out []time.Time
	prev := 0.0
	for _, s := range sr.samples[cam] {
		for ; prev < s.n; prev++ {
			out = append(out, s.at)
		}
	}
	return out
}

// cfCheckBackoff checks the spacing of reconnect attempts against the
// configured backoff (initial 500ms, max 2s, each delay drawn from
// [base/2, base]); fail is how long one failing attempt itself takes.
// res is the observation resolution (poll interval plus scrape time).
func cfCheckBackoff(t *testing.T, cam string, at []time.Time, fail time.Duration) {
	t.Helper()
	const res = 300 * time.Millisecond
	require.GreaterOrEqual(t, len(at), 4, "%s: too few reconnect attempts to judge the backoff: %d", cam, len(at))
	gaps := make([]time.Duration, len(at)-1)
	var txt []string
	for i := range gaps {
		gaps[i] = at[i+1].Sub(at[i])
		txt = append(txt, gaps[i].Round(10*time.Millisecond).String())
	}
	window := at[len(at)-1].Sub(at[0])
	t.Logf("%s: %d reconnect attempts in %s, gaps %s", cam, len(at), window.Round(10*time.Millisecond), strings.Join(txt, " "))

	// Never hammers: after the second delay every delay is at least
	// max/2, so from the 3rd attempt on they are at least 1 s apart.
	for i := 2; i < len(gaps); i++ {
		assert.GreaterOrEqual(t, gaps[i], cfReconnectMax/2+fail-res,
			"%s: attempts %d and %d only %s apart: below reconnect.max/2", cam, i+1, i+2, gaps[i])
	}
	// Upper bound on the count: attempts 1..3 may come within 0.75 s plus
	// their failure time, then at most one per max/2 + fail.
	maxN := 3 + int((window+res)/(cfReconnectMax/2+fail))
	assert.LessOrEqual(t, len(at), maxN, "%s: %d attempts in %s: more than the backoff allows", cam, len(at), window)
	// Grows: the first two delays (base 0.5 s and 1 s) are shorter than
	// the capped ones (base 2 s).
	early := (gaps[0] + gaps[1]) / 2
	var late time.Duration
	for _, g := range gaps[2:] {
		late += g
	}
	if len(gaps) > 2 {
		late /= time.Duration(len(gaps) - 2)
		assert.Less(t, early, late, "%s: backoff did not grow: mean of the first two gaps %s, of the later ones %s", cam, early, late)
	}
	// Capped: no gap far beyond max plus the attempt itself.
	for i, g := range gaps {
		assert.LessOrEqual(t, g, cfReconnectMax+fail+2*cfSlack, "%s: gap %d of %s: beyond reconnect.max", cam, i+1, g)
	}
}

// TestCamFaultConnectFailures runs cameras that cannot stream for four
// different reasons next to a healthy one: nothing listening (refused), a
// host that never answers the connect (SYNs dropped), a name that does not
// resolve, and wrong credentials (camsim with basic auth, reached through a
// counting proxy). Each must settle in a clear state with a last_error that
// says what happened, retry with a backoff that grows to reconnect.max and
// no faster, log one warning for the state change rather than one per
// retry, while the healthy camera keeps its 10 fps.
func TestCamFaultConnectFailures(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := cfNewRedis(t, rd)
	good := cfStartCamsim(t, camsimOpts{})
	auth := cfStartCamsim(t, camsimOpts{User: "viewer", Password: "right-" + fmt.Sprint(time.Now().UnixNano())})
	authProxy := nfStartProxy(t, auth.Addr)
	refused := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	hanging := nfHangingAddr(t)

	cams := []cfCam{
		{ID: "healthy", URL: good.URL(1)},
		{ID: "refused", URL: "rtsp://" + refused + "/cam1"},
		{ID: "noanswer", URL: "rtsp://" + hanging + "/cam1"},
		{ID: "nodns", URL: "rtsp://camera.invalid:8554/cam1"},
		{ID: "badauth", URL: "rtsp://viewer:${CF_WRONG_PASSWORD}@" + authProxy.Addr() + "/cam1"},
	}
	svc := startService(t, cfConfig(rd.URL, "", cams...), "CF_WRONG_PASSWORD=wrong-password")
	reasons := map[string]string{"refused": "error", "noanswer": "error", "nodns": "error", "badauth": "unauthorized"}
	series := cfSampleReconnects(t, svc, reasons)
	rc.WaitEntry(t, "healthy", time.Now().Add(-time.Minute), 30*time.Second, "healthy camera first frame")
	rate := rc.RateFrom("healthy")
	proxied0, t0 := authProxy.Accepted(), time.Now()

	const observe = 15 * time.Second
	time.Sleep(observe)
	series.Stop()
	rate.Check(t, "the connect failures")
	proxied, window := authProxy.Accepted()-proxied0, time.Since(t0)

	h := svc.health(t)
	out := svc.Output()
	want := []struct {
		id, state string
		fail      time.Duration // how long one attempt takes to fail
		mentions  []string      // last_error must contain each (case-insensitive)
	}{
		{"refused", "error", 0, []string{"connect", refused, "refused"}},
		{"noanswer", "error", cfStallTimeout, []string{"connect", "timeout"}},
		{"nodns", "error", 0, []string{"resolve", "camera.invalid"}},
		{"badauth", "unauthorized", 0, []string{"401"}},
	}
	for _, w := range want {
		t.Run(w.id, func(t *testing.T) {
			c := h.camera(w.id)
			t.Logf("%s: state %s, last_error %q", w.id, c.State, c.LastError)
			assert.Equal(t, w.state, c.State, "%s state", w.id)
			for _, m := range w.mentions {
				assert.Contains(t, strings.ToLower(c.LastError), strings.ToLower(m), "%s last_error says what happened", w.id)
			}
			cfCheckBackoff(t, w.id, series.attempts(w.id), w.fail)

			// One warning for the change into the failed state, whatever
			// the number of retries; nothing else above info.
			changes := cfStateChanges(out, w.id)
			var warns []string
			for _, l := range cfLogs(out) {
				if l.CameraID == w.id && l.Level != "INFO" && l.Level != "DEBUG" {
					warns = append(warns, l.Level+" "+l.Msg+" "+l.State)
				}
			}
			assert.Equal(t, []string{"WARN camera state changed " + w.state}, warns, "%s: log lines above info", w.id)
			var states []string
			for _, l := range changes {
				states = append(states, l.State)
			}
			assert.Equal(t, []string{"connecting", w.state}, states, "%s: state changes logged", w.id)
		})
	}

	// The credentials are wrong every time: the camera sees a few
	// connections per backoff period, not a stream of them.
	n := len(series.attempts("badauth"))
	t.Logf("badauth: %d connections reached the camera in %s (%d reconnects over the whole run)", proxied, window.Round(time.Millisecond), n)
	assert.Positive(t, proxied, "the proxy saw no connection: badauth never reached the camera")
	// One connection per attempt, and attempts no closer than the backoff
	// allows (see cfCheckBackoff): at most 3 + window/(max/2).
	maxConns := 3 + int64(window/(cfReconnectMax/2))
	assert.LessOrEqual(t, proxied, maxConns, "badauth: %d connections at the camera in %s: hammering (backoff max %s allows %d)",
		proxied, window, cfReconnectMax, maxConns)
}
