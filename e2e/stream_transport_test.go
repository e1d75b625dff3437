package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// TestStreamUDPBlocked (fault 9): the camera serves RTP only over TCP
// (camsim --tcp-only answers a UDP SETUP with 461 Unsupported Transport).
// transport: auto falls back to TCP and streams at 10±2 entries/s;
// transport: udp fails with an error, in /health and the log, that says
// the camera refused UDP and what to set instead.
func TestStreamUDPBlocked(t *testing.T) {
	rd := testenv.StartRedis(t)
	sim := streamStartCamsim(t, "h264", 2, "--tcp-only")
	require.True(t, sim.status(t).TCPOnly)
	svc := startService(t, streamConfig(rd.URL,
		fmt.Sprintf("{id: viaauto, url: %q, codec: h264, transport: auto}", sim.url(1)),
		fmt.Sprintf("{id: viaudp, url: %q, codec: h264, transport: udp}", sim.url(2)),
	))
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer rc.Close()
	ctx := ctxT(t, 2*time.Minute)

	streamWaitEntries(t, ctx, rc, svc, 5, "viaauto")
	rate := streamRates(ctx, rc, 8*time.Second, "viaauto")["viaauto"]
	t.Logf("transport auto against a TCP-only camera: %.2f entries/s", rate)
	assert.InDelta(t, 10, rate, 2, "entries per second after falling back to TCP")
	checkEntry(t, "viaauto", streamLatest(t, ctx, rc, "viaauto"), 640, 360)

	h := streamHealth(t, svc)
	assert.Equal(t, "streaming", h["viaauto"].State)
	udp := h["viaudp"]
	t.Logf("transport udp: state=%s reconnects=%d last_error=%q", udp.State, udp.Reconnects, udp.LastError)
	assert.Equal(t, "error", udp.State)
	assert.Contains(t, udp.LastError, "the camera refused RTP over UDP")
	assert.Contains(t, udp.LastError, "set transport: tcp or auto")
	assert.Zero(t, udp.Captured)
	assert.Zero(t, rc.Exists(ctx, "frames:viaudp").Val(), "nothing published for the UDP-only camera")
	logged := lines(svc.Output(), `"camera_id":"viaudp"`)
	found := false
	for _, l := range logged {
		found = found || strings.Contains(l, "the camera refused RTP over UDP")
	}
	assert.True(t, found, "the log says why the UDP camera fails; its lines: %v", logged)
}
