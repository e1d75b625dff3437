package e2e

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// TestNetFaultPartition black-holes the network between the service and a
// camera (transport tcp through nfProxy): no byte passes either way, the
// open connection is neither closed nor reset, and new connections are
// accepted but never answered. The camera must leave streaming within
// stall_timeout, stay down without ever wedging its teardown (no frozen
// pipeline), and stream again by itself once the partition heals, while a
// camera outside the partition keeps 10 fps.
func TestNetFaultPartition(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := cfNewRedis(t, rd)
	sim := cfStartCamsim(t, camsimOpts{})
	good := cfStartCamsim(t, camsimOpts{})
	px := nfStartProxy(t, sim.Addr)
	svc := startService(t, cfConfig(rd.URL, "",
		cfCam{ID: "partitioned", URL: "rtsp://" + px.Addr() + "/cam1", Extra: "    transport: tcp\n"},
		cfCam{ID: "healthy", URL: good.URL(1)}))
	for _, id := range []string{"partitioned", "healthy"} {
		rc.WaitEntry(t, id, time.Now().Add(-time.Minute), 30*time.Second, id+" first frame")
	}
	time.Sleep(time.Second)
	rate := rc.RateFrom("healthy")

	tHole := time.Now()
	px.Blackhole()
	accepted := px.Accepted()
	// Detection: the camera leaves streaming within stall_timeout.
	var down time.Time
	require.Eventually(t, func() bool {
		down = time.Now()
		return svc.health(t).camera("partitioned").State != "streaming"
	}, cfStallTimeout+cfSlack+5*time.Second, 20*time.Millisecond, "partition not noticed")
	detect := down.Sub(tHole)
	h := svc.health(t).camera("partitioned")
	t.Logf("partition noticed after %s: state %s, last_error %q", detect.Round(time.Millisecond), h.State, h.LastError)
	assert.LessOrEqual(t, detect, cfStallTimeout+cfSlack, "partition detection: stall_timeout %s + %s slack", cfStallTimeout, cfSlack)

	// Held down: never streaming, no frame published, states logged.
	const hold = 10 * time.Second
	states := map[string]int{}
	for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		st := svc.health(t).camera("partitioned").State
		states[st]++
		require.NotEqual(t, "streaming", st, "camera streams through a black hole")
	}
	tHeal := time.Now()
	n := rc.CountBetween("partitioned", tHole.Add(300*time.Millisecond), tHeal)
	assert.Zero(t, n, "entries published while partitioned")
	newConns := px.Accepted() - accepted
	var errs []string
	for _, l := range cfStateChanges(svc.Output(), "partitioned") {
		if l.Time.After(tHole) {
			errs = append(errs, l.State+": "+l.Error)
		}
	}
	t.Logf("during the %s partition: states seen %v, %d connection attempts accepted and left unanswered; state changes: %s",
		hold, states, newConns, strings.Join(errs, " | "))
	assert.Positive(t, newConns, "the service did not try to reconnect during the partition")
	m := cfMetrics(t, svc)
	assert.Zero(t, cfMetric(m, "rtsp_frozen_pipelines_total", "camera_id", "partitioned"),
		"a pipeline's teardown wedged on the black-holed connection")

	// Heal: recovery by itself. Worst case an attempt is waiting out its
	// RTSP timeout (stall_timeout) and then the capped backoff.
	px.Heal()
	first := rc.WaitEntry(t, "partitioned", tHeal, 30*time.Second, "after the partition healed")
	rec := first.Sub(tHeal)
	t.Logf("after healing: first entry %s later", rec.Round(time.Millisecond))
	assert.LessOrEqual(t, rec, cfStallTimeout+cfReconnectMax+2*time.Second, "recovery after the partition heals")
	cfWaitState(t, svc, "partitioned", "streaming", 10*time.Second)
	after := rc.RateFrom("partitioned")
	time.Sleep(6 * time.Second)
	after.Check(t, "the 6 s after healing")
	rate.Check(t, "the partition")

	var reasons []string
	for _, r := range []string{"stall", "timeout", "error", "eos", "no_frames"} {
		if v := cfMetric(m, "rtsp_reconnects_total", "camera_id", "partitioned", "reason", r); v > 0 {
			reasons = append(reasons, r)
		}
	}
	sort.Strings(reasons)
	t.Logf("reconnect reasons during the partition: %v", reasons)
}
