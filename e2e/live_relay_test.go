package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// TestLiveRelayCamera: live changes against an RTSP server the project did
// not write. ffmpeg publishes a libx264 clip with B-frames into gortsplib's
// server (e2e/tools/rtsprelay, MediaMTX's RTSP stack). A camera on that
// relay is added through the API, then deleted: the relay must see
// gstcapture's RTSP session end within the teardown deadline, and see no
// reader left behind. It is then added by an edit of the file and removed by
// the next one, the same way. A camsim camera streams throughout without a
// reconnect or a seq gap.
func TestLiveRelayCamera(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := openFrames(t, rd)
	relay, relayProc := startRelay(t)
	publishLoop(t, relay, relayProc, "live1", "testsrc2=size=640x360", 25)

	sim := liveSim(t, 1)
	cfg := liveConfig(rd.URL, simCams(sim, 1)...)
	svc := startService(t, cfg)
	rc.WaitPublished(svc, 60*time.Second, 10, "cam1")
	began := time.Now()
	follow := followSeqs(rc, began, "cam1")

	readers := func(what string) int { return strings.Count(relayProc.Output(), "rtsprelay reader "+what+" /live1") }

	// Through the API.
	put := time.Now()
	code, body := svc.admin(t, http.MethodPut, "/api/v1/cameras/relaycam", map[string]any{"url": relay + "/live1", "codec": "h264"})
	require.Equal(t, http.StatusCreated, code, "%s", body)
	first := rc.WaitEntry("relaycam", put, 30*time.Second, "relay camera added through the API")
	t.Logf("API: PUT to the first entry of the relay camera: %s", first.Sub(put).Round(time.Millisecond))
	require.Equal(t, 1, readers("playing"), "one RTSP session on the relay: %s", relayProc.Output())
	rc.WaitPublished(svc, 30*time.Second, 10, "relaycam")
	follow.Poll()

	del := time.Now()
	code, body = svc.admin(t, http.MethodDelete, "/api/v1/cameras/relaycam", nil)
	require.Equal(t, http.StatusNoContent, code, "%s", body)
	answered := time.Since(del)
	require.Eventually(t, func() bool { return readers("closed") == 1 }, 6*time.Second, 20*time.Millisecond,
		"the relay still has gstcapture's session 6 s after DELETE: %s", relayProc.Output())
	t.Logf("API: DELETE answered in %s; the relay saw the session end within %s", answered.Round(time.Millisecond),
		time.Since(del).Round(time.Millisecond))
	code, _ = svc.apiCamera(t, "relaycam")
	assert.Equal(t, http.StatusNotFound, code)
	assert.True(t, rc.Exists("relaycam"), "the removed camera's stream stays in Redis")

	// Through the file.
	withRelay := cfg
	withRelay.Cameras = append(simCams(sim, 1), camCfg{ID: "relayfile", URL: relay + "/live1", Codec: "h264"})
	saved := svc.rewriteConfig(t, withRelay.YAML(t))
	first = rc.WaitEntry("relayfile", saved, 30*time.Second, "relay camera added to the file")
	t.Logf("file: save to the first entry of the relay camera: %s", first.Sub(saved).Round(time.Millisecond))
	require.Equal(t, 2, readers("playing"), "%s", relayProc.Output())
	rc.WaitPublished(svc, 30*time.Second, 10, "relayfile")
	follow.Poll()

	saved = svc.rewriteConfig(t, cfg.YAML(t))
	require.Eventually(t, func() bool { return readers("closed") == 2 }, 6*time.Second, 20*time.Millisecond,
		"the relay still has gstcapture's session 6 s after the camera left the file: %s", relayProc.Output())
	t.Logf("file: the relay saw the session end %s after the save", time.Since(saved).Round(time.Millisecond))
	require.Eventually(t, func() bool { return !slices.Contains(svc.apiCameraIDs(t), "relayfile") }, 5*time.Second, 50*time.Millisecond)

	time.Sleep(time.Second)
	follow.Poll()
	assert.Empty(t, follow.Gaps["cam1"], "cam1's seq has no gap across four changes")
	assert.Greater(t, follow.Entries["cam1"], int(time.Since(began).Seconds()*10*0.7), "cam1 kept publishing at ~10/s")
	assert.Zero(t, svc.health(t).camera("cam1").Reconnects, "cam1 never reconnected")
	assert.Equal(t, readers("playing"), readers("closed"), "no gstcapture session left on the relay")
}
