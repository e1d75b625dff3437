package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// TestStreamAudioAndCodec (fault 10):
//   - a camera that also sends audio (camsim --audio: G.711 A-law next to
//     H.264) is captured at 10±2 entries/s with the right picture;
//   - a camera configured h264 that sends H.265 fails at once with an
//     error naming what its SDP announced, in /health and in the log, and
//     publishes nothing;
//   - codec: auto picks the template from the SDP for an H.264 and an
//     H.265 camera: both stream at 10±2 entries/s, and /health and
//     rtsp_decoder_info show the detected codec and its decoder.
//
// The H.265 camera needs a password (the auto probe authenticates like the
// capture pipeline; with a wrong one the camera is unauthorized); it never
// appears in the log, /health or /metrics.
func TestStreamAudioAndCodec(t *testing.T) {
	rd := testenv.StartRedis(t)
	withAudio := streamStartCamsim(t, "h264", 2, "--audio")
	require.True(t, withAudio.status(t).Audio)
	const password = "pw-Zq81xV"
	h265 := streamStartCamsim(t, "h265", 2, "--user", "viewer", "--password", password)
	withCreds := func(u string) string { return strings.Replace(u, "rtsp://", "rtsp://viewer:"+password+"@", 1) }
	svc := startService(t, streamConfig(rd.URL,
		fmt.Sprintf("{id: audio264, url: %q, codec: h264}", withAudio.url(1)),
		fmt.Sprintf("{id: auto264, url: %q, codec: auto}", withAudio.url(2)),
		fmt.Sprintf("{id: auto265, url: %q, codec: auto}", withCreds(h265.url(1))),
		fmt.Sprintf("{id: wrongcodec, url: %q, codec: h264}", withCreds(h265.url(2))),
		fmt.Sprintf("{id: autobadpw, url: %q, codec: auto}", strings.Replace(h265.url(1), "rtsp://", "rtsp://viewer:not-the-password@", 1)),
	))
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer rc.Close()
	ctx := ctxT(t, 2*time.Minute)
	streaming := []string{"audio264", "auto264", "auto265"}

	streamWaitEntries(t, ctx, rc, svc, 5, streaming...)
	rates := streamRates(ctx, rc, 10*time.Second, streaming...)
	for _, id := range streaming {
		t.Logf("%s: %.2f entries/s", id, rates[id])
		assert.InDelta(t, 10, rates[id], 2, "%s entries per second", id)
		checkEntry(t, id, streamLatest(t, ctx, rc, id), 640, 360)
	}

	choice := streamDecoderChoice(t)
	h := streamHealth(t, svc)
	for id, codec := range map[string]string{"audio264": "h264", "auto264": "h264", "auto265": "h265"} {
		c := h[id]
		assert.Equal(t, "streaming", c.State, id)
		assert.Equal(t, codec, c.Codec, "%s: codec in /health", id)
		assert.Equal(t, choice[codec], c.Decoder, "%s: decoder in /health", id)
	}
	metrics := streamMetrics(t, svc)
	for id, codec := range map[string]string{"auto264": "h264", "auto265": "h265"} {
		want := fmt.Sprintf(`rtsp_decoder_info{camera_id=%q,codec=%q,decoder=%q} 1`, id, codec, choice[codec])
		assert.Contains(t, metrics, want, "rtsp_decoder_info reflects the detected codec")
	}
	for _, l := range lines(svc.Output(), `"msg":"codec detected"`) {
		t.Logf("log: %s", l)
	}

	w := h["wrongcodec"]
	t.Logf("wrongcodec: state=%s reconnects=%d last_error=%q", w.State, w.Reconnects, w.LastError)
	assert.Equal(t, "error", w.State)
	assert.Contains(t, w.LastError, "camera announced H265 but codec is h264")
	assert.Zero(t, w.Captured)
	assert.Zero(t, rc.Exists(ctx, "frames:wrongcodec").Val(), "nothing published for the mismatched camera")
	logged := false
	for _, l := range lines(svc.Output(), `"camera_id":"wrongcodec"`) {
		logged = logged || strings.Contains(l, "camera announced H265 but codec is h264")
	}
	assert.True(t, logged, "the log names what the camera announced")
	assert.NotContains(t, svc.Output(), "GStreamer-CRITICAL", "no GLib criticals from tearing down the mismatched camera")

	// The auto probe's own failures read like the capture pipeline's.
	bp := h["autobadpw"]
	t.Logf("autobadpw: state=%s last_error=%q", bp.State, bp.LastError)
	assert.Equal(t, "unauthorized", bp.State, "a wrong password during the codec auto probe")
	assert.Equal(t, "auto", bp.Codec, "no codec detected without the SDP")
	assert.Zero(t, rc.Exists(ctx, "frames:autobadpw").Val())

	var health strings.Builder
	resp, err := http.Get(svc.HTTP + "/health")
	require.NoError(t, err)
	_, _ = io.Copy(&health, resp.Body)
	resp.Body.Close()
	for what, text := range map[string]string{"log": svc.Output(), "/health": health.String(), "/metrics": metrics} {
		assert.NotContains(t, text, password, "the camera password leaked into %s", what)
	}
}

// streamMetrics returns the /metrics text.
func streamMetrics(t *testing.T, svc *service) string {
	t.Helper()
	resp, err := http.Get(svc.HTTP + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
