package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// TestCamFaultStall stalls a camera whose RTSP session stays open (camsim
// stops sending frames): the watchdog must notice within stall_timeout,
// /health must say stalled, the pipeline must be rebuilt (counted as
// rtsp_reconnects_total{reason="stall"}), and frames must flow again after
// the camera resumes, while a camera on another simulator keeps 10 fps.
func TestCamFaultStall(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := cfNewRedis(t, rd)
	sim := cfStartCamsim(t, camsimOpts{Control: true})
	good := cfStartCamsim(t, camsimOpts{})
	svc := startService(t, cfConfig(rd.URL, "", cfCam{ID: "stalling", URL: sim.URL(1)}, cfCam{ID: "healthy", URL: good.URL(1)}))
	for _, id := range []string{"stalling", "healthy"} {
		rc.WaitEntry(t, id, time.Now().Add(-time.Minute), 30*time.Second, id+" first frame")
	}
	time.Sleep(time.Second)
	rate := rc.RateFrom("healthy")
	stalls0 := cfReconnects(t, svc, "stalling", "stall")
	require.GreaterOrEqual(t, stalls0, 0.0, "rtsp_reconnects_total{camera_id=stalling,reason=stall} missing from /metrics")
	total0 := cfReconnectsTotal(t, svc, "stalling")

	tStall := time.Now()
	sim.Do(1, "stall")
	seen := cfWaitState(t, svc, "stalling", "stalled", cfStallTimeout+cfSlack+2*time.Second)
	detect := seen.Sub(tStall)
	var logged time.Duration
	for _, l := range cfStateChanges(svc.Output(), "stalling") {
		if l.State == "stalled" && l.Time.After(tStall) {
			logged = l.Time.Sub(tStall)
			assert.Contains(t, l.Error, "stall_timeout", "the stalled log line says why")
			break
		}
	}
	t.Logf("stall detected: /health stalled %s after the stall (state change logged after %s)", detect.Round(time.Millisecond), logged.Round(time.Millisecond))
	assert.LessOrEqual(t, detect, cfStallTimeout+cfSlack, "stall detection: stall_timeout %s + %s slack", cfStallTimeout, cfSlack)
	assert.Contains(t, svc.health(t).camera("stalling").LastError, "stall_timeout")

	require.Eventually(t, func() bool { return cfReconnects(t, svc, "stalling", "stall") >= stalls0+1 }, 5*time.Second, 50*time.Millisecond,
		"no rtsp_reconnects_total{reason=\"stall\"} counted for the stalled camera")

	// While stalled, rebuilt pipelines must not turn into a stream: camsim
	// primes each new session with at most one frame, so at most one
	// entry per rebuild may appear.
	hold := 6 * time.Second
	time.Sleep(hold)
	tResume := time.Now()
	during := rc.CountBetween("stalling", tStall.Add(300*time.Millisecond), tResume)
	h := svc.health(t).camera("stalling")
	rebuilt := cfReconnectsTotal(t, svc, "stalling") - total0
	t.Logf("during the %s stall: %d entries, %v rebuilds, state now %s, last_error %q", hold, during, rebuilt, h.State, h.LastError)
	assert.LessOrEqual(t, float64(during), rebuilt+1, "stalled camera published more than one frame per rebuild: not a stall")

	sim.Do(1, "resume")
	first := rc.WaitEntry(t, "stalling", tResume, 20*time.Second, "after resume")
	back := first.Sub(tResume)
	t.Logf("after resume: first entry %s later", back.Round(time.Millisecond))
	// Worst case the resume finds the camera waiting out a backoff or a
	// first-frame wait of a session opened while stalled.
	assert.LessOrEqual(t, back, cfReconnectMax+cfStallTimeout+cfSlack, "frames flow again after resume")
	cfWaitState(t, svc, "stalling", "streaming", 10*time.Second)
	resumed := rc.RateFrom("stalling")
	time.Sleep(6 * time.Second)
	resumed.Check(t, "the 6 s after resume")
	rate.Check(t, "the stall")
}

// TestCamFaultEOSAndDisconnect ends the stream from the server (EOS) and
// closes the RTSP connection (disconnect), three times each: the camera
// must be rebuilt and stream again within the first backoff delay plus 2 s
// each time, while another camera keeps 10 fps.
func TestCamFaultEOSAndDisconnect(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := cfNewRedis(t, rd)
	sim := cfStartCamsim(t, camsimOpts{Control: true, Cameras: 2})
	good := cfStartCamsim(t, camsimOpts{})
	svc := startService(t, cfConfig(rd.URL, "",
		cfCam{ID: "eoscam", URL: sim.URL(1)}, cfCam{ID: "disccam", URL: sim.URL(2)}, cfCam{ID: "healthy", URL: good.URL(1)}))
	for _, id := range []string{"eoscam", "disccam", "healthy"} {
		rc.WaitEntry(t, id, time.Now().Add(-time.Minute), 30*time.Second, id+" first frame")
	}
	rate := rc.RateFrom("healthy")

	// After a pipeline that streamed, the backoff starts over: the first
	// delay is at most reconnect.initial (500ms).
	const firstDelay = 500 * time.Millisecond
	for round := 1; round <= 3; round++ {
		for _, f := range []struct{ cam, action string }{{"eoscam", "eos"}, {"disccam", "disconnect"}} {
			n := 1
			if f.cam == "disccam" {
				n = 2
			}
			before := len(cfStateChanges(svc.Output(), f.cam))
			time.Sleep(time.Second) // streaming for a while: the backoff is reset
			tFault := time.Now()
			sim.Do(n, f.action)

			// The camera goes down (logged state change), then publishes again.
			var down cfLogLine
			require.Eventually(t, func() bool {
				for _, l := range cfStateChanges(svc.Output(), f.cam)[before:] {
					if l.State != "streaming" {
						down = l
						return true
					}
				}
				return false
			}, cfStallTimeout+cfSlack+2*time.Second, 20*time.Millisecond, "%s round %d: %s not noticed", f.cam, round, f.action)
			first := rc.WaitEntry(t, f.cam, down.Time, 20*time.Second, f.cam+" after "+f.action)
			t.Logf("%s round %d: %s noticed after %s (state %s, reason %s, %q), first new entry %s after that",
				f.cam, round, f.action, down.Time.Sub(tFault).Round(time.Millisecond), down.State, down.Reason, down.Error,
				first.Sub(down.Time).Round(time.Millisecond))
			assert.LessOrEqual(t, down.Time.Sub(tFault), cfStallTimeout+cfSlack, "%s: %s noticed within stall_timeout", f.cam, f.action)
			assert.LessOrEqual(t, first.Sub(down.Time), firstDelay+2*time.Second, "%s round %d: streaming again after %s", f.cam, round, f.action)
		}
	}
	for _, id := range []string{"eoscam", "disccam"} {
		cfWaitState(t, svc, id, "streaming", 5*time.Second)
	}
	m := cfMetrics(t, svc)
	t.Logf("reconnects by reason: eoscam eos=%v error=%v; disccam eos=%v error=%v",
		cfMetric(m, "rtsp_reconnects_total", "camera_id", "eoscam", "reason", "eos"),
		cfMetric(m, "rtsp_reconnects_total", "camera_id", "eoscam", "reason", "error"),
		cfMetric(m, "rtsp_reconnects_total", "camera_id", "disccam", "reason", "eos"),
		cfMetric(m, "rtsp_reconnects_total", "camera_id", "disccam", "reason", "error"))
	assert.GreaterOrEqual(t, cfMetric(m, "rtsp_reconnects_total", "camera_id", "eoscam", "reason", "eos"), 3.0, "each EOS rebuilds the eoscam pipeline")
	rate.Check(t, "the EOS and disconnect rounds")
}
