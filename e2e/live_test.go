package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// Live camera changes (issue 14): the configuration file edited under a
// running service, SIGHUP, and the camera API's writes. What a change does
// not touch must not notice it: same pipeline, no reconnect, seq continuous.

// liveSim is the live tests' camsim: n cameras, 320x240 h264 at 10 fps.
func liveSim(t *testing.T, n int, flags ...string) *camsim {
	return startCamsim(t, camsimOpts{Cameras: n, Codec: "h264", Size: "320x240", FPS: 10, Flags: flags})
}

// liveConfig is the live tests' service: 10 fps, a minute of history (the
// tests read the entries around a change with XRANGE), a short backoff.
func liveConfig(redisURL string, cams ...camCfg) svcConfig {
	return svcConfig{Redis: redisURL, Retention: "1m", AnyReady: true, FPS: 10, Reconnect: reconnect{"500ms", "2s"}, Cameras: cams}
}

// liveReloaded is the fields of the "config reloaded" log line.
type liveReloaded struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Rebuilt []string `json:"rebuilt"`
}

// TestLiveReloadFile: four file cameras; the file is saved (rename over it)
// with cam3 removed, cam5 added, cam4's fps 10 -> 5 and defaults.fps
// 10 -> 5, which cam1 inherits and cam2 overrides with its own fps: 10. cam2
// is untouched (seq continuous, no reconnect); cam5 publishes; cam1 and cam4
// are rebuilt and publish at 5 fps within 5 s, their seq going on; cam3
// leaves /health, the API and /metrics, and its stream stays in Redis.
func TestLiveReloadFile(t *testing.T) {
	began := time.Now()
	rd := testenv.StartRedis(t)
	rc := openFrames(t, rd)
	sim := liveSim(t, 5)
	cams := simCams(sim, 4)
	cams[1].FPS = 10
	cfg := liveConfig(rd.URL, cams...)
	svc := startService(t, cfg)
	rc.WaitPublished(svc, 60*time.Second, 20, "cam1", "cam2", "cam3", "cam4")

	h0 := svc.health(t)
	c0 := h0.mustConfig(t)
	assert.Equal(t, uint64(1), c0.Generation, "generation after start")
	assert.Equal(t, "initial", c0.LastResult)
	assert.Equal(t, svc.Config, c0.File)
	for _, id := range []string{"cam1", "cam2", "cam3", "cam4"} {
		c := h0.camera(id)
		assert.Equal(t, "file", c.Source, "%s source", id)
		assert.True(t, c.Enabled, "%s enabled", id)
	}
	seqBefore := map[string]uint64{"cam1": rc.LastSeq("cam1"), "cam4": rc.LastSeq("cam4")}

	next := cfg
	next.FPS = 5
	next.Cameras = []camCfg{cams[0], cams[1], {ID: "cam4", URL: sim.URL(4), FPS: 5}, {ID: "cam5", URL: sim.URL(5)}}
	saved := svc.rewriteConfig(t, next.YAML(t))

	first5 := rc.WaitEntry("cam5", saved, 30*time.Second, "the added camera")
	line := svc.waitLogged(t, "config reloaded", saved, 10*time.Second)
	var ch liveReloaded
	line.decode(t, &ch)
	assert.Equal(t, []string{"cam5"}, ch.Added, "config reloaded: added")
	assert.Equal(t, []string{"cam3"}, ch.Removed, "config reloaded: removed")
	assert.ElementsMatch(t, []string{"cam1", "cam4"}, ch.Rebuilt, "config reloaded: rebuilt (cam2 overrides fps, so is not)")
	t.Logf("file saved -> 'config reloaded' logged: %s; file saved -> cam5's first entry: %s",
		line.Time.Sub(saved).Round(time.Millisecond), first5.Sub(saved).Round(time.Millisecond))

	// The rebuilt cameras publish again within 5 s of the reload, at 5 fps.
	for _, id := range []string{"cam1", "cam4"} {
		at := rc.WaitEntry(id, line.Time, 15*time.Second, id+" rebuilt")
		t.Logf("%s: 'config reloaded' -> first entry of the rebuilt pipeline: %s", id, at.Sub(line.Time).Round(time.Millisecond))
		assert.Less(t, at.Sub(line.Time), 5*time.Second, "%s publishes again within 5 s of the reload", id)
	}
	time.Sleep(time.Second)
	from := time.Now()
	time.Sleep(5 * time.Second)
	to := time.Now()
	rates := map[string]float64{}
	for _, id := range []string{"cam1", "cam2", "cam4", "cam5"} {
		rates[id] = entryRate(rc, id, from, to)
	}
	t.Logf("entries per second over %s after the reload: %v", to.Sub(from).Round(time.Millisecond), rates)
	assert.InDelta(t, 5, rates["cam1"], 1.5, "cam1 inherits defaults.fps 5")
	assert.InDelta(t, 5, rates["cam4"], 1.5, "cam4's fps 5")
	assert.InDelta(t, 5, rates["cam5"], 1.5, "cam5 inherits defaults.fps 5")
	assert.InDelta(t, 10, rates["cam2"], 2, "cam2 keeps its own fps 10")

	// cam2 untouched: every entry from 3 s before the save to now, seq +1
	// each, and no reconnect.
	around := time.Since(saved.Add(-3 * time.Second))
	msgs := rc.Between("cam2", saved.Add(-3*time.Second), time.Now())
	assert.Greater(t, len(msgs), int(around.Seconds()*10*0.8), "cam2 entries in the %s around the reload", around.Round(time.Millisecond))
	assert.Empty(t, seqGaps(entrySeqs(t, "cam2", msgs)), "cam2's seq is continuous across the reload (%d entries)", len(msgs))
	gap := maxEntryGap(t, msgs)
	t.Logf("cam2: %d entries around the reload, longest gap between two %s", len(msgs), gap)
	// The rebuilt cameras' seq goes on from where it was.
	for _, id := range []string{"cam1", "cam4"} {
		msgs := rc.Between(id, saved.Add(-3*time.Second), time.Now())
		seqs := entrySeqs(t, id, msgs)
		for i := 1; i < len(seqs); i++ {
			if !assert.Greater(t, seqs[i], seqs[i-1], "%s: seq keeps rising across the rebuild", id) {
				break
			}
		}
		assert.Greater(t, rc.LastSeq(id), seqBefore[id], "%s: seq continues, not restarted", id)
		t.Logf("%s: longest gap between two entries across the rebuild %s", id, maxEntryGap(t, msgs))
	}

	// cam3 is gone from /health, the API and /metrics; its stream stays.
	require.Eventually(t, func() bool { return svc.health(t).camera("cam3").ID == "" }, 10*time.Second, 100*time.Millisecond,
		"cam3 still in /health")
	code, _ := svc.apiCamera(t, "cam3")
	assert.Equal(t, http.StatusNotFound, code, "GET /api/v1/cameras/cam3 after its removal")
	ids := svc.apiCameraIDs(t)
	assert.ElementsMatch(t, []string{"cam1", "cam2", "cam4", "cam5"}, ids, "GET /api/v1/cameras")
	var left []string
	ok := assert.Eventually(t, func() bool {
		left = svc.metrics(t).cameraFamilies("cam3")
		return len(left) == 0
	}, 10*time.Second, 200*time.Millisecond, "cam3's series stay in /metrics")
	if !ok {
		t.Logf("families with a cam3 series: %v", left)
	}
	assert.True(t, rc.Exists("cam3"), "a removed camera's stream stays in Redis")

	h := svc.health(t)
	c := h.mustConfig(t)
	assert.Greater(t, c.Generation, c0.Generation, "generation after an applied reload")
	assert.Equal(t, "applied", c.LastResult)
	assert.Empty(t, c.LastError)
	assert.NotNil(t, c.LastReloadAt, "last_reload_at after a reload")
	assert.Zero(t, h.camera("cam2").Reconnects, "cam2 was not touched")
	assert.Equal(t, "streaming", h.camera("cam2").State)
	assert.Equal(t, "file", h.camera("cam5").Source)
	m := svc.metrics(t)
	assert.Equal(t, 1.0, m.reloadCount("applied"), "rtsp_config_reloads_total{result=applied}: %v", m.reloads())
	t.Logf("generation %d -> %d; test took %s", c0.Generation, c.Generation, time.Since(began).Round(time.Second))
}

// TestLiveReloadInvalidKeepsRunning: a saved file with fps 500 on one
// camera and an unknown key on another is rejected as a whole: every camera
// goes on (entries, no reconnect, seq continuous), /health and the log say
// what is wrong and where, and the next valid save applies.
func TestLiveReloadInvalidKeepsRunning(t *testing.T) {
	began := time.Now()
	rd := testenv.StartRedis(t)
	rc := openFrames(t, rd)
	sim := liveSim(t, 3)
	cfg := liveConfig(rd.URL, simCams(sim, 2)...)
	svc := startService(t, cfg)
	ids := []string{"cam1", "cam2"}
	rc.WaitPublished(svc, 60*time.Second, 20, ids...)
	gen0 := svc.health(t).mustConfig(t).Generation

	bad := liveYAML(t, cfg, func(doc map[string]any) {
		liveCamera(doc, 1)["fps"] = 500
		liveCamera(doc, 0)["bogus_key"] = 1
	})
	saved := svc.rewriteConfig(t, bad)
	h := svc.waitReloads(t, 1, 10*time.Second)
	c := h.mustConfig(t)
	assert.Equal(t, "invalid", c.LastResult)
	assert.NotEmpty(t, c.LastError, "last_error while the file is rejected")
	assert.Subset(t, problemPaths(c.Problems), []string{"cameras[1].fps", "cameras[0].bogus_key"}, "problems: %+v", c.Problems)
	for _, p := range c.Problems {
		assert.NotEmpty(t, p.Message, "problem at %s has a message", p.Path)
	}
	assert.Equal(t, gen0, c.Generation, "a rejected reload changes no generation")
	t.Logf("rejected: last_error %q, problems %+v", c.LastError, c.Problems)
	m := svc.metrics(t)
	assert.Equal(t, 1.0, m.reloadCount("invalid"), "rtsp_config_reloads_total{result=invalid}: %v", m.reloads())
	assert.Zero(t, m.reloadCount("applied"), "rtsp_config_reloads_total{result=applied}")

	var paths []string
	for _, l := range loggedSince(svc.Output(), "config problem", saved) {
		var f struct{ Path, Problem string }
		l.decode(t, &f)
		assert.NotEmpty(t, f.Problem, "config problem line at %s has a problem", f.Path)
		paths = append(paths, f.Path)
	}
	assert.Subset(t, paths, []string{"cameras[1].fps", "cameras[0].bogus_key"}, "'config problem' lines")
	assert.NotEmpty(t, loggedSince(svc.Output(), "config reload rejected: the running configuration is kept", saved))

	// Everything goes on as before.
	time.Sleep(3 * time.Second)
	now := time.Now()
	for _, id := range ids {
		n := rc.CountBetween(id, saved, now)
		assert.GreaterOrEqual(t, n, 25, "%s publishes after the rejected save (%s)", id, now.Sub(saved).Round(time.Millisecond))
		msgs := rc.Between(id, saved.Add(-2*time.Second), now)
		assert.Empty(t, seqGaps(entrySeqs(t, id, msgs)), "%s: seq continuous across the rejected save", id)
	}
	h = svc.health(t)
	for _, id := range ids {
		assert.Zero(t, h.camera(id).Reconnects, "%s: no reconnect for a rejected save", id)
	}

	// A valid save applies: cam3 is added, the error is gone.
	good := cfg
	good.Cameras = simCams(sim, 3)
	saved2 := svc.rewriteConfig(t, good.YAML(t))
	first3 := rc.WaitEntry("cam3", saved2, 30*time.Second, "camera added by the valid save")
	h = svc.waitReloads(t, 2, 10*time.Second)
	c = h.mustConfig(t)
	assert.Equal(t, "applied", c.LastResult)
	assert.Empty(t, c.LastError, "last_error after a valid save")
	assert.Empty(t, c.Problems, "problems after a valid save")
	assert.Greater(t, c.Generation, gen0)
	m = svc.metrics(t)
	assert.Equal(t, 1.0, m.reloadCount("applied"), "rtsp_config_reloads_total{result=applied}: %v", m.reloads())
	assert.Equal(t, 1.0, m.reloadCount("invalid"), "rtsp_config_reloads_total{result=invalid}")
	for _, id := range ids {
		assert.Zero(t, h.camera(id).Reconnects, "%s: not touched by the valid save", id)
	}
	t.Logf("valid save -> cam3's first entry %s; test took %s", first3.Sub(saved2).Round(time.Millisecond), time.Since(began).Round(time.Second))
}

// TestLiveSIGHUPNoChange: SIGHUP with the file as it was changes nothing
// anyone can see: same generation, no camera restarted or reconnected, seq
// continuous; the reload is counted once as unchanged.
func TestLiveSIGHUPNoChange(t *testing.T) {
	began := time.Now()
	rd := testenv.StartRedis(t)
	rc := openFrames(t, rd)
	sim := liveSim(t, 2)
	svc := startService(t, liveConfig(rd.URL, simCams(sim, 2)...))
	ids := []string{"cam1", "cam2"}
	rc.WaitPublished(svc, 60*time.Second, 20, ids...)
	gen0 := svc.health(t).mustConfig(t).Generation
	started0 := len(logged(svc.Output(), "camera started", ""))

	hup := time.Now()
	svc.Signal(t, syscall.SIGHUP)
	svc.waitReloads(t, 1, 10*time.Second)
	time.Sleep(3 * time.Second) // what a reload would do has happened by now
	require.False(t, svc.Exited(), "the service exited on SIGHUP: %s", tail(svc.Output(), 2000))
	m := svc.metrics(t)
	assert.Equal(t, 1.0, m.reloadCount("unchanged"), "rtsp_config_reloads_total{result=unchanged}: %v", m.reloads())
	assert.Zero(t, m.reloadCount("applied"), "rtsp_config_reloads_total{result=applied}")
	assert.Zero(t, m.reloadCount("invalid"), "rtsp_config_reloads_total{result=invalid}")
	h := svc.health(t)
	c := h.mustConfig(t)
	assert.Equal(t, gen0, c.Generation, "generation after a SIGHUP without an edit")
	assert.Equal(t, "unchanged", c.LastResult)
	assert.Empty(t, c.LastError)
	assert.NotNil(t, c.LastReloadAt)
	now := time.Now()
	for _, id := range ids {
		assert.Zero(t, h.camera(id).Reconnects, "%s reconnects", id)
		assert.Equal(t, "streaming", h.camera(id).State, id)
		msgs := rc.Between(id, hup.Add(-3*time.Second), now)
		around := now.Sub(hup.Add(-3 * time.Second))
		assert.Greater(t, len(msgs), int(around.Seconds()*10*0.8), "%s entries in the %s around the SIGHUP", id, around.Round(time.Millisecond))
		assert.Empty(t, seqGaps(entrySeqs(t, id, msgs)), "%s: seq continuous across the SIGHUP", id)
		t.Logf("%s: %d entries around the SIGHUP, longest gap %s", id, len(msgs), maxEntryGap(t, msgs))
	}
	assert.Equal(t, started0, len(logged(svc.Output(), "camera started", "")), "no camera started again")
	t.Logf("test took %s", time.Since(began).Round(time.Second))
}

// TestLiveRestartNeeded: redis.retention changed in the file cannot apply
// live: /health and the log say a restart is needed, and the service keeps
// the running value.
func TestLiveRestartNeeded(t *testing.T) {
	began := time.Now()
	rd := testenv.StartRedis(t)
	rc := openFrames(t, rd)
	sim := liveSim(t, 1)
	cfg := liveConfig(rd.URL, simCams(sim, 1)...)
	svc := startService(t, cfg)
	rc.WaitPublished(svc, 60*time.Second, 20, "cam1")
	before := svc.health(t).camera("cam1")
	require.InDelta(t, 60, before.RedisRetention, 0.5, "redis.retention 1m runs")

	next := cfg
	next.Retention = "2m"
	saved := svc.rewriteConfig(t, next.YAML(t))
	svc.waitReloads(t, 1, 10*time.Second)
	var c configStatus
	assert.Eventually(t, func() bool {
		c = svc.health(t).mustConfig(t)
		return len(c.RestartNeeded) > 0
	}, 5*time.Second, 100*time.Millisecond, "restart_needed stays empty")
	assert.Equal(t, []string{"redis.retention"}, c.RestartNeeded, "restart_needed")
	assert.Empty(t, c.LastError, "a setting that needs a restart is no error")
	var said []string
	for _, l := range lines(svc.Output(), "restart needed") {
		if strings.Contains(l, "redis.retention") && strings.HasPrefix(l, "{") {
			said = append(said, l)
		}
	}
	assert.NotEmpty(t, said, "the log says redis.retention needs a restart")
	t.Logf("restart needed: %v; log: %v", c.RestartNeeded, said)

	time.Sleep(3 * time.Second)
	require.False(t, svc.Exited())
	after := svc.health(t).camera("cam1")
	assert.Equal(t, before.RedisRetention, after.RedisRetention, "the running redis.retention is kept")
	assert.Equal(t, before.RedisMaxLen, after.RedisMaxLen, "the stream's MAXLEN is kept")
	assert.InDelta(t, 60, svc.metrics(t).mustValue(t, "rtsp_redis_retention_seconds", "camera_id", "cam1"), 0.5)
	assert.Zero(t, after.Reconnects, "cam1 was not touched")
	assert.GreaterOrEqual(t, rc.CountBetween("cam1", saved, time.Now()), 25, "cam1 keeps publishing")
	t.Logf("test took %s", time.Since(began).Round(time.Second))
}

// TestCameraAPI: cameras created, replaced, restarted, disabled and
// deleted through PUT/POST/DELETE /api/v1/cameras/{id}, the admin token
// required; refusals with their status and problem paths; a file camera
// not the API's to change; API cameras back after a restart of the process.
func TestCameraAPI(t *testing.T) {
	began := time.Now()
	const pwVar, pwValue, inline = "LIVE_E2E_CAM_PW", "pw-from-env-7f3a91", "inline-s3cret-55e1"
	rd := testenv.StartRedis(t)
	rc := openFrames(t, rd)
	sim := liveSim(t, 4)
	cfg := liveConfig(rd.URL, camCfg{ID: "filecam", URL: sim.URL(1)})
	env := pwVar + "=" + pwValue
	svc := startService(t, cfg, env)
	rc.WaitFirst("filecam")
	gen0 := svc.health(t).mustConfig(t).Generation
	entry := func(n int, kv ...any) map[string]any {
		e := map[string]any{"url": sim.URL(n), "codec": "h264"}
		for i := 0; i+1 < len(kv); i += 2 {
			e[kv[i].(string)] = kv[i+1]
		}
		return e
	}
	stored := func(id string) (string, bool) {
		v, err := rc.HGet(rc.ctx(), "gstcapture:cameras", id).Result()
		if err != nil {
			return "", false
		}
		return v, true
	}

	// Writes need the admin token.
	for _, w := range []struct {
		method, path string
		body         any
	}{
		{"PUT", "/api/v1/cameras/apicam", entry(2)},
		{"DELETE", "/api/v1/cameras/filecam", nil},
		{"POST", "/api/v1/cameras/filecam/restart", nil},
	} {
		code, body := svc.apiDo(t, w.method, w.path, "", w.body)
		assert.Equal(t, http.StatusUnauthorized, code, "%s %s without a token: %s", w.method, w.path, body)
		code, body = svc.apiDo(t, w.method, w.path, e2eReadToken, w.body)
		assert.Equal(t, http.StatusForbidden, code, "%s %s with the read token: %s", w.method, w.path, body)
	}
	code, _ := svc.apiCamera(t, "apicam")
	assert.Equal(t, http.StatusNotFound, code, "a refused PUT created nothing")
	_, fc := svc.apiCamera(t, "filecam")
	assert.Zero(t, fc.Reconnects, "a refused restart restarted nothing")

	// PUT creates.
	code, body := svc.admin(t, "PUT", "/api/v1/cameras/apicam", entry(2))
	require.Equal(t, http.StatusCreated, code, "PUT a new camera: %s", body)
	var put struct {
		ID      string `json:"id"`
		Source  string `json:"source"`
		Created *bool  `json:"created"`
	}
	require.NoError(t, json.Unmarshal(body, &put), "%s", body)
	assert.Equal(t, "apicam", put.ID)
	assert.Equal(t, "api", put.Source)
	require.NotNil(t, put.Created, "created in %s", body)
	assert.True(t, *put.Created)
	rc.WaitFirst("apicam")
	code, ac := svc.apiCamera(t, "apicam")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "api", ac.Source)
	assert.True(t, ac.Enabled)
	assert.Equal(t, "file", svc.health(t).camera("filecam").Source)
	if v, ok := stored("apicam"); assert.True(t, ok, "apicam in the Redis hash gstcapture:cameras") {
		var e map[string]any
		require.NoError(t, json.Unmarshal([]byte(v), &e), "stored %s", v)
		assert.Equal(t, "apicam", e["id"])
		assert.Equal(t, sim.URL(2), e["url"])
	}
	assert.Greater(t, svc.health(t).mustConfig(t).Generation, gen0, "an API camera is a new generation")

	// PUT again replaces: the camera publishes again, at its new fps.
	seqBefore := rc.LastSeq("apicam")
	code, body = svc.admin(t, "PUT", "/api/v1/cameras/apicam", entry(2, "fps", 5))
	require.Equal(t, http.StatusOK, code, "PUT over an API camera: %s", body)
	require.NoError(t, json.Unmarshal(body, &put))
	require.NotNil(t, put.Created)
	assert.False(t, *put.Created, "replaced, not created")
	replaced := time.Now()
	at := rc.WaitEntry("apicam", replaced, 30*time.Second, "replaced camera")
	t.Logf("PUT (replace) -> first entry %s", at.Sub(replaced).Round(time.Millisecond))
	time.Sleep(time.Second)
	from := time.Now()
	time.Sleep(4 * time.Second)
	rate := entryRate(rc, "apicam", from, time.Now())
	assert.InDelta(t, 5, rate, 1.5, "the replaced camera runs at its new fps 5")
	assert.Greater(t, rc.LastSeq("apicam"), seqBefore, "seq goes on after the replace")

	// POST restart rebuilds the pipeline, counted as reason restart.
	restarts := func(id string) float64 {
		return max(svc.metrics(t).value("rtsp_reconnects_total", "camera_id", id, "reason", "restart"), 0)
	}
	r0 := restarts("apicam")
	_, ac = svc.apiCamera(t, "apicam")
	rec0 := ac.Reconnects
	code, body = svc.admin(t, "POST", "/api/v1/cameras/apicam/restart", nil)
	require.Equal(t, http.StatusAccepted, code, "POST restart: %s", body)
	var st struct{ Status string }
	require.NoError(t, json.Unmarshal(body, &st), "%s", body)
	assert.Equal(t, "restarting", st.Status)
	restarted := time.Now()
	assert.Eventually(t, func() bool {
		_, c := svc.apiCamera(t, "apicam")
		return restarts("apicam") == r0+1 && c.Reconnects == rec0+1
	}, 15*time.Second, 100*time.Millisecond, "the restart is counted once in rtsp_reconnects_total{reason=restart} and /health reconnects")
	_, ac = svc.apiCamera(t, "apicam")
	t.Logf("apicam after the restart: rtsp_reconnects_total{reason=restart} %v (was %v), reconnects %d (was %d)", restarts("apicam"), r0, ac.Reconnects, rec0)
	at = rc.WaitEntry("apicam", restarted, 30*time.Second, "restarted camera")
	t.Logf("POST restart -> first entry %s", at.Sub(restarted).Round(time.Millisecond))
	code, body = svc.admin(t, "POST", "/api/v1/cameras/filecam/restart", nil)
	assert.Equal(t, http.StatusAccepted, code, "POST restart of a file camera: %s", body)
	assert.Eventually(t, func() bool { return restarts("filecam") == 1 }, 15*time.Second, 100*time.Millisecond, "file camera restart counted")
	code, body = svc.admin(t, "POST", "/api/v1/cameras/nosuch/restart", nil)
	assert.Equal(t, http.StatusNotFound, code, "POST restart of an unknown camera: %s", body)

	// Invalid entries: 422 with the body's keys as paths, 400, 413.
	code, body = svc.admin(t, "PUT", "/api/v1/cameras/badcam", map[string]any{"url": sim.URL(3), "codec": "h264", "fps": 500, "bogus": 1})
	require.Equal(t, http.StatusUnprocessableEntity, code, "PUT with fps 500 and an unknown key: %s", body)
	e := decodeAPIError(t, body)
	assert.NotEmpty(t, e.Error)
	assert.Subset(t, problemPaths(e.Problems), []string{"fps", "bogus"}, "problems %s", body)
	code, body = svc.admin(t, "PUT", "/api/v1/cameras/badcam", "[1, 2]")
	assert.Equal(t, http.StatusBadRequest, code, "a body that is not a JSON object: %s", body)
	code, body = svc.admin(t, "PUT", "/api/v1/cameras/badcam", map[string]any{"url": sim.URL(3), "codec": "h264", "note": strings.Repeat("x", 70<<10)})
	assert.Equal(t, http.StatusRequestEntityTooLarge, code, "a 70 KiB body: %.200s", body)
	code, _ = svc.apiCamera(t, "badcam")
	assert.Equal(t, http.StatusNotFound, code, "a refused entry created nothing")

	// A password written into the URL is refused; a ${VAR} is accepted.
	code, body = svc.admin(t, "PUT", "/api/v1/cameras/pwcam", map[string]any{"url": "rtsp://u:" + inline + "@" + sim.Addr + "/cam3", "codec": "h264"})
	require.Equal(t, http.StatusUnprocessableEntity, code, "PUT with an inline password: %s", body)
	e = decodeAPIError(t, body)
	var urlMsg string
	for _, p := range e.Problems {
		if p.Path == "url" {
			urlMsg = p.Message
		}
	}
	if assert.NotEmpty(t, urlMsg, "a problem at url: %s", body) {
		for _, s := range []string{"${", "password_env", "password_file"} {
			assert.Contains(t, urlMsg, s, "the url problem says how to pass a password")
		}
	}
	assert.NotContains(t, string(body), inline, "the answer quotes the password")
	_, ok := stored("pwcam")
	assert.False(t, ok, "a refused camera is not stored")
	code, body = svc.admin(t, "PUT", "/api/v1/cameras/pwcam", map[string]any{"url": "rtsp://u:${" + pwVar + "}@" + sim.Addr + "/cam3", "codec": "h264"})
	require.Equal(t, http.StatusCreated, code, "PUT with rtsp://u:${%s}@...: %s", pwVar, body)
	if v, ok := stored("pwcam"); assert.True(t, ok) {
		assert.Contains(t, v, "${"+pwVar+"}", "stored as written")
		assert.NotContains(t, v, pwValue, "the password is not stored")
	}
	rc.WaitFirst("pwcam")

	// A file camera is the file's: 409, naming it.
	for _, method := range []string{"PUT", "DELETE"} {
		var b any
		if method == "PUT" {
			b = entry(1)
		}
		code, body = svc.admin(t, method, "/api/v1/cameras/filecam", b)
		assert.Equal(t, http.StatusConflict, code, "%s of a file camera: %s", method, body)
		assert.Contains(t, decodeAPIError(t, body).Error, svc.Config, "%s of a file camera: the error names the file", method)
	}
	// Untouched by the refusals; streaming again since its restart above
	// once its new pipeline has delivered two frames.
	assert.Eventually(t, func() bool { return svc.health(t).camera("filecam").State == "streaming" }, 10*time.Second, 50*time.Millisecond,
		"the file camera streams after the refused PUT and DELETE")

	// enabled: false: listed as disabled, no pipeline, no entries.
	code, body = svc.admin(t, "PUT", "/api/v1/cameras/offcam", entry(4, "enabled", false))
	require.Equal(t, http.StatusCreated, code, "PUT a disabled camera: %s", body)
	require.Eventually(t, func() bool { _, c := svc.apiCamera(t, "offcam"); return c.State == "disabled" }, 10*time.Second, 100*time.Millisecond,
		"offcam's state")
	_, oc := svc.apiCamera(t, "offcam")
	assert.False(t, oc.Enabled)
	code, body = svc.admin(t, "POST", "/api/v1/cameras/offcam/restart", nil)
	assert.Equal(t, http.StatusConflict, code, "POST restart of a disabled camera: %s", body)
	time.Sleep(3 * time.Second)
	assert.Zero(t, rc.Len("offcam"), "a disabled camera publishes nothing")
	_, oc = svc.apiCamera(t, "offcam")
	assert.Zero(t, oc.Captured, "a disabled camera captures nothing")

	// DELETE: gone from the API, /health and /metrics; its stream stays.
	code, body = svc.admin(t, "DELETE", "/api/v1/cameras/apicam", nil)
	require.Equal(t, http.StatusNoContent, code, "DELETE: %s", body)
	code, _ = svc.apiCamera(t, "apicam")
	assert.Equal(t, http.StatusNotFound, code, "GET after DELETE")
	assert.Empty(t, svc.health(t).camera("apicam").ID, "/health after DELETE")
	var left []string
	if !assert.Eventually(t, func() bool { left = svc.metrics(t).cameraFamilies("apicam"); return len(left) == 0 },
		10*time.Second, 200*time.Millisecond, "apicam's series stay in /metrics") {
		t.Logf("families with an apicam series: %v", left)
	}
	assert.True(t, rc.Exists("apicam"), "a deleted camera's stream stays")
	_, ok = stored("apicam")
	assert.False(t, ok, "a deleted camera is no longer stored")
	code, _ = svc.admin(t, "DELETE", "/api/v1/cameras/apicam", nil)
	assert.Equal(t, http.StatusNotFound, code, "DELETE of an unknown camera")
	for _, s := range []string{inline, pwValue, e2eAdminToken} {
		assert.NotContains(t, svc.Output(), s, "a secret in the log")
	}

	// The API cameras come back after a restart of the process, the
	// deleted one does not.
	svc.Stop(15 * time.Second)
	require.Equal(t, 0, svc.cmd.ProcessState.ExitCode(), "exit status after SIGTERM")
	stopped := time.Now()
	svc2 := startService(t, cfg, env)
	var h healthReport
	require.Eventually(t, func() bool {
		h = svc2.health(t)
		return h.camera("pwcam").ID != "" && h.camera("offcam").ID != ""
	}, 30*time.Second, 200*time.Millisecond, "the API cameras are back after the restart")
	assert.Equal(t, "api", h.camera("pwcam").Source)
	assert.Equal(t, "disabled", h.camera("offcam").State)
	assert.Empty(t, h.camera("apicam").ID, "the deleted camera stays deleted")
	c := h.mustConfig(t)
	assert.True(t, c.APICameras.Loaded, "api_cameras.loaded")
	assert.Equal(t, 2, c.APICameras.Count, "api_cameras.count")
	assert.Empty(t, c.APICameras.Error)
	back := rc.WaitEntry("pwcam", stopped, 30*time.Second, "API camera after the restart")
	t.Logf("process restart -> pwcam's first entry %s; test took %s", back.Sub(stopped).Round(time.Millisecond), time.Since(began).Round(time.Second))
}

// TestLiveAddRemoveCycles: three file cameras stream while a fourth is
// added and deleted through the API 200 times. Open files, threads,
// goroutines and RSS show no trend from the first quarter of the cycles to
// the last, and the three others never notice (no seq gap, no reconnect).
func TestLiveAddRemoveCycles(t *testing.T) {
	const cycles = 200
	began := time.Now()
	rd := testenv.StartRedis(t)
	rc := openFrames(t, rd)
	sim := liveSim(t, 4, "--gop", "5") // a keyframe every 0.5 s: a cycle waits for one
	cfg := liveConfig(rd.URL, simCams(sim, 3)...)
	cfg.Retention = "30s"
	svc := startService(t, cfg)
	ids := []string{"cam1", "cam2", "cam3"}
	rc.WaitPublished(svc, 60*time.Second, 20, ids...)
	follow := followSeqs(rc, time.Now().Add(-time.Minute), ids...)
	follow.Poll()
	time.Sleep(2 * time.Second)
	base := readProc(t, svc.proc)
	baseG := svc.goroutines()
	entry := map[string]any{"url": sim.URL(4), "codec": "h264"}

	type point struct {
		fds, threads, goroutines int
		rssMB                    float64
	}
	points := make([]point, 0, cycles)
	var put, up, del, total []time.Duration
	cycStart := time.Now()
	for i := range cycles {
		t0 := time.Now()
		code, body := svc.admin(t, "PUT", "/api/v1/cameras/cyc", entry)
		require.Equal(t, http.StatusCreated, code, "cycle %d: PUT: %s", i, body)
		t1 := time.Now()
		for {
			code, c := svc.apiCamera(t, "cyc")
			if code == http.StatusOK && (c.State == "streaming" || c.Published > 0) {
				break
			}
			if time.Since(t1) > 20*time.Second {
				t.Fatalf("cycle %d: cyc not streaming within 20 s of its PUT: %d %+v", i, code, c)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t2 := time.Now()
		code, body = svc.admin(t, "DELETE", "/api/v1/cameras/cyc", nil)
		require.Equal(t, http.StatusNoContent, code, "cycle %d: DELETE: %s", i, body)
		for {
			if code, _ := svc.apiCamera(t, "cyc"); code == http.StatusNotFound {
				break
			}
			if time.Since(t2) > 10*time.Second {
				t.Fatalf("cycle %d: cyc still there 10 s after its DELETE", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t3 := time.Now()
		p := readProc(t, svc.proc)
		points = append(points, point{p.FDs, p.Threads, svc.goroutines(), p.RSSMB()})
		put, up, del, total = append(put, t1.Sub(t0)), append(up, t2.Sub(t1)), append(del, t3.Sub(t2)), append(total, t3.Sub(t0))
		if i%10 == 9 {
			follow.Poll()
		}
	}
	ran := time.Since(cycStart)
	time.Sleep(time.Second)
	follow.Poll()

	q := cycles / 4
	summary := func(ps []point) point {
		var f, th, g []int
		var r []float64
		for _, p := range ps {
			f, th, g, r = append(f, p.fds), append(th, p.threads), append(g, p.goroutines), append(r, p.rssMB)
		}
		return point{median(f), median(th), median(g), median(r)}
	}
	first, last := summary(points[:q]), summary(points[cycles-q:])
	t.Logf("%d add/remove cycles in %s (%.2f s a cycle)", cycles, ran.Round(time.Second), ran.Seconds()/cycles)
	t.Logf("per cycle, median / max: PUT %s / %s, PUT -> streaming %s / %s, DELETE -> 404 %s / %s, whole %s / %s",
		medianDur(put), maxDur(put), medianDur(up), maxDur(up), medianDur(del), maxDur(del), medianDur(total), maxDur(total))
	t.Logf("baseline (3 cameras, before the cycles): fds %d, threads %d, goroutines %d, RSS %.1f MB", base.FDs, base.Threads, baseG, base.RSSMB())
	t.Logf("median after a cycle, cycles 1-%d -> %d-%d: fds %d -> %d, threads %d -> %d, goroutines %d -> %d, RSS %.1f -> %.1f MB (%+.1f MB)",
		q, cycles-q+1, cycles, first.fds, last.fds, first.threads, last.threads, first.goroutines, last.goroutines, first.rssMB, last.rssMB, last.rssMB-first.rssMB)
	end := readProc(t, svc.proc)
	t.Logf("end: %s", end)
	assert.LessOrEqual(t, last.fds-first.fds, 2, "open files grow over the cycles")
	assert.LessOrEqual(t, last.fds-base.FDs, 4, "open files return to the baseline")
	assert.LessOrEqual(t, last.threads-first.threads, 3, "threads grow over the cycles")
	assert.LessOrEqual(t, last.threads-base.Threads, 6, "threads return to the baseline")
	assert.LessOrEqual(t, last.goroutines-first.goroutines, 5, "goroutines grow over the cycles")
	assert.LessOrEqual(t, last.goroutines-baseG, 10, "goroutines return to the baseline")
	assert.Less(t, last.rssMB-first.rssMB, 30.0, "RSS grows over the cycles after the warm-up")

	h := svc.health(t)
	for _, id := range ids {
		assert.Empty(t, follow.Gaps[id], "%s: seq gaps over the cycles", id)
		assert.Zero(t, h.camera(id).Reconnects, "%s reconnects over the cycles", id)
		assert.Equal(t, "streaming", h.camera(id).State, id)
		assert.Greater(t, follow.Entries[id], int(ran.Seconds()*10*0.8), "%s entries over the cycles", id)
	}
	// The camera added 200 times under one id: its seq goes on across the
	// cycles (a re-added camera starting again at 1 would repeat frame_ids).
	cyc := entrySeqs(t, "cyc", rc.Between("cyc", cycStart, time.Now()))
	require.NotEmpty(t, cyc)
	for i := 1; i < len(cyc); i++ {
		require.Greater(t, cyc[i], cyc[i-1], "cyc's seq goes on across its removals: entry %d", i)
	}
	t.Logf("cyc: %d entries over the cycles, seq %d..%d", len(cyc), cyc[0], cyc[len(cyc)-1])
	t.Logf("entries followed: %v; test took %s", follow.Entries, time.Since(began).Round(time.Second))
}

func medianDur(ds []time.Duration) time.Duration { return median(ds).Round(time.Millisecond) }

func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m.Round(time.Millisecond)
}
