package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// Streams with B-frames: frames travel in decode order, and their RTP
// timestamps (presentation times) go back at every B-frame. GStreamer
// 1.22's jitter buffer with drop-on-latency took each step back for a
// timestamp wrap, dropped packets as "queue full", and gstcapture's keyframe
// gate then skipped the frames up to the next keyframe: 18 of 200 frames
// published through a relay (pipelines/README.md, drop-on-latency).
//
// Each camera must publish 10 ± 1 entries/s (fps 10 from 25) with no frame
// skipped as undecodable and no reconnect, through camsim and through a
// relay the project did not write.

// TestStreamBFramesCamsim: camsim sending H.264 High with 2 B-frames and
// H.265 with 3 (B-pyramid), straight to gstcapture.
func TestStreamBFramesCamsim(t *testing.T) {
	rd := testenv.StartRedis(t)
	h264 := streamStartCamsim(t, "h264", 1, "--bframes", "2", "--size", "1280x720")
	h265 := streamStartCamsim(t, "h265", 1, "--bframes", "3", "--size", "1280x720")
	svc := startService(t, streamConfig(rd.URL,
		fmt.Sprintf("{id: bf264, url: %q, codec: h264}", h264.url(1)),
		fmt.Sprintf("{id: bf265, url: %q, codec: h265}", h265.url(1)),
	))
	bframesCheck(t, rd, svc, 1280, 720, "bf264", "bf265")
}

// TestStreamBFramesRelay: ffmpeg publishes clips encoded with libx264's
// defaults (-bf 2 -g 50, High) and libx265's defaults (B-frames, open GOP,
// a keyframe every 250 frames) into gortsplib's RTSP server (MediaMTX's
// RTSP stack, e2e/tools/rtsprelay), which forwards the publisher's RTP
// packets as they arrive; gstcapture reads the relay over TCP. The clips
// are not camsim's: ffmpeg encodes, packetizes and paces them.
func TestStreamBFramesRelay(t *testing.T) {
	rd := testenv.StartRedis(t)
	dir := t.TempDir()
	relay, relayProc := startRelay(t)
	clips := map[string][]string{
		"rx264": {"-c:v", "libx264", "-bf", "2", "-g", "50"},
		"rx265": {"-c:v", "libx265", "-x265-params", "log-level=error"},
	}
	for name, enc := range clips {
		clip := filepath.Join(dir, name+".mp4")
		// 12 s: libx265's 250-frame keyframe interval lands inside the clip
		// (keyframes 10 s and then 2 s apart, as the loop restarts).
		args := append([]string{"-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
			"-t", "12", "-pix_fmt", "yuv420p"}, enc...)
		out, err := exec.Command("ffmpeg", append(args, clip)...).CombinedOutput()
		require.NoError(t, err, "encode %s: %s", name, out)
		probe, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=profile,has_b_frames", "-of", "compact", clip).Output()
		require.NoError(t, err)
		require.Contains(t, string(probe), "has_b_frames=", "%s", probe)
		require.NotContains(t, string(probe), "has_b_frames=0", "%s must have B-frames: %s", name, probe)
		t.Logf("%s: %s", name, strings.TrimSpace(string(probe)))
		start(t, nil, "ffmpeg", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", clip,
			"-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", relay+"/"+name)
	}
	// Readers before their publisher would get 404 and reconnect.
	for name := range clips {
		require.Eventually(t, func() bool { return strings.Contains(relayProc.Output(), "rtsprelay publishing /"+name) },
			30*time.Second, 50*time.Millisecond, "ffmpeg did not publish %s: %s", name, relayProc.Output())
	}
	svc := startService(t, streamConfig(rd.URL,
		fmt.Sprintf("{id: rx264, url: %q, codec: h264}", relay+"/rx264"),
		fmt.Sprintf("{id: rx265, url: %q, codec: h265}", relay+"/rx265"),
	))
	bframesCheck(t, rd, svc, 0, 0, "rx264", "rx265")
}

// bframesCheck waits for every camera to publish, then over 20 s requires
// 10 ± 1 entries/s, no frame skipped as undecodable, no reconnect and
// state streaming. w, h > 0 also check the picture (camsim's bars).
func bframesCheck(t *testing.T, rd *testenv.Redis, svc *service, w, h int, ids ...string) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer rc.Close()
	ctx := ctxT(t, 3*time.Minute)
	streamWaitEntries(t, ctx, rc, svc, 5, ids...)
	rates := streamRates(ctx, rc, 20*time.Second, ids...)
	hl := streamHealth(t, svc)
	for _, id := range ids {
		c := hl[id]
		t.Logf("%s: %.2f entries/s, captured %d, skipped undecodable %d, discarded by decoder %d, reconnects %d, dropped %v",
			id, rates[id], c.Captured, c.SkippedUndecodable, c.DiscardedByDecoder, c.Reconnects, c.Dropped)
		assert.InDelta(t, 10, rates[id], 1, "%s entries per second", id)
		assert.Zero(t, c.SkippedUndecodable, "%s: a clean stream with B-frames skips no frame", id)
		assert.Zero(t, c.Reconnects, "%s: no reconnect", id)
		assert.Equal(t, "streaming", c.State, id)
		if w > 0 {
			checkEntry(t, id, streamLatest(t, ctx, rc, id), w, h)
		}
	}
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
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := start(t, nil, bin, append([]string{"--listen", addr}, args...)...)
	require.Eventually(t, func() bool { return strings.Contains(p.Output(), "rtsprelay ready") }, 20*time.Second, 50*time.Millisecond,
		"rtsprelay did not start: %s", p.Output())
	return "rtsp://" + addr, p
}
