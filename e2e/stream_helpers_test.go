package e2e

// Helpers of the stream-content fault tests (stream_*_test.go): a camsim
// with the flags the harness's camsimOpts lacks, its control API, and the
// /health fields those tests read.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// streamSim is a camsim with a control API, started with extra flags
// (--extra-sizes, --tcp-only, --audio).
type streamSim struct {
	*proc
	Addr    string // RTSP host:port
	Control string // control API base URL
}

// streamStartCamsim starts camsim serving cameras 640x360 cameras at 25 fps
// of codec, plus extra flags, and waits for its ready line.
func streamStartCamsim(t *testing.T, codec string, cameras int, extra ...string) *streamSim {
	t.Helper()
	s := &streamSim{
		Addr:    fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		Control: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
	}
	args := append([]string{"--listen", s.Addr, "--control", s.Control, "--cameras", fmt.Sprint(cameras),
		"--codec", codec, "--size", "640x360", "--fps", "25"}, extra...)
	s.proc = start(t, nil, binary(t, "camsim"), args...)
	s.Control = "http://" + s.Control
	require.Eventually(t, func() bool { return strings.Contains(s.Output(), "camsim ready") }, 60*time.Second, 50*time.Millisecond,
		"camsim did not print its ready line: %s", s.Output())
	return s
}

// url is the RTSP URL of camera n (1-based).
func (s *streamSim) url(n int) string { return fmt.Sprintf("rtsp://%s/cam%d", s.Addr, n) }

// post calls a control action and requires 200.
func (s *streamSim) post(t *testing.T, path string) {
	t.Helper()
	resp, err := http.Post(s.Control+path, "", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "camsim %s: %s", path, body)
}

// streamSimCam is camsim's /status entry of one camera.
type streamSimCam struct {
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	RTPDropped uint64 `json:"rtp_dropped"`
	RTPDamaged uint64 `json:"rtp_damaged"`
}

type streamSimStatus struct {
	TCPOnly bool           `json:"tcp_only"`
	Audio   bool           `json:"audio"`
	Cameras []streamSimCam `json:"cameras"`
}

func (s *streamSim) status(t *testing.T) streamSimStatus {
	t.Helper()
	resp, err := http.Get(s.Control + "/status")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st streamSimStatus
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

// streamCam is the part of a camera's /health entry these tests read,
// including what the harness's cameraStatus does not have.
type streamCam struct {
	ID                 string            `json:"id"`
	State              string            `json:"state"`
	Captured           uint64            `json:"frames_captured"`
	Published          uint64            `json:"frames_published"`
	Dropped            map[string]uint64 `json:"frames_dropped"`
	Reconnects         uint64            `json:"reconnects"`
	Codec              string            `json:"codec"`
	Decoder            string            `json:"decoder"`
	LastError          string            `json:"last_error"`
	SkippedUndecodable uint64            `json:"frames_skipped_undecodable"`
	DiscardedByDecoder uint64            `json:"frames_discarded_by_decoder"`
}

// streamHealth returns /health's cameras by id.
func streamHealth(t *testing.T, svc *service) map[string]streamCam {
	t.Helper()
	var r struct {
		Cameras []streamCam `json:"cameras"`
	}
	svc.getJSON(t, "/health", &r)
	out := map[string]streamCam{}
	for _, c := range r.Cameras {
		out[c.ID] = c
	}
	return out
}

// streamConfig is a gstcapture configuration: fps 10, BGR, stall_timeout
// 5s, fast reconnects; cams are YAML camera entries (one per line, flow
// style).
func streamConfig(redisURL string, cams ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "redis:\n  url: %s\n  maxlen: 100000\n  retention: 1h\nlog:\n  format: json\n", redisURL)
	b.WriteString("defaults:\n  fps: 10\n  format: BGR\n  stall_timeout: 5s\n  reconnect: {initial: 500ms, max: 3s}\ncameras:\n")
	for _, c := range cams {
		b.WriteString("  - " + c + "\n")
	}
	return b.String()
}

// streamWaitEntries waits until every camera has published more than n
// entries.
func streamWaitEntries(t *testing.T, ctx context.Context, rc *redis.Client, svc *service, n int64, ids ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, id := range ids {
			if rc.XLen(ctx, "frames:"+id).Val() <= n {
				return false
			}
		}
		return true
	}, 60*time.Second, 200*time.Millisecond, "cameras %v did not publish; health: %+v", ids, streamHealth(t, svc))
}

// streamRates measures each camera's entries per second over window.
func streamRates(ctx context.Context, rc *redis.Client, window time.Duration, ids ...string) map[string]float64 {
	n0 := map[string]int64{}
	for _, id := range ids {
		n0[id] = rc.XLen(ctx, "frames:"+id).Val()
	}
	t0 := time.Now()
	time.Sleep(window)
	dt := time.Since(t0).Seconds()
	out := map[string]float64{}
	for _, id := range ids {
		out[id] = float64(rc.XLen(ctx, "frames:"+id).Val()-n0[id]) / dt
	}
	return out
}

// streamEntriesBetween returns the entries of camera id added between from
// and to (Redis entry ids are the server's milliseconds; Redis runs here).
func streamEntriesBetween(t *testing.T, ctx context.Context, rc *redis.Client, id string, from, to time.Time) []redis.XMessage {
	t.Helper()
	msgs, err := rc.XRange(ctx, "frames:"+id, strconv.FormatInt(from.UnixMilli(), 10), strconv.FormatInt(to.UnixMilli(), 10)).Result()
	require.NoError(t, err)
	return msgs
}

// streamLatest returns camera id's newest entry.
func streamLatest(t *testing.T, ctx context.Context, rc *redis.Client, id string) map[string]any {
	t.Helper()
	msgs, err := rc.XRevRangeN(ctx, "frames:"+id, "+", "-", 1).Result()
	require.NoError(t, err)
	require.Len(t, msgs, 1, "no entry for %s", id)
	return msgs[0].Values
}

// streamDecoderChoice is what `gstcapture probe --json` says the decoder
// of each codec is on this machine (a GPU machine picks nv*dec).
func streamDecoderChoice(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command(binary(t, "gstcapture"), "probe", "--json").Output()
	require.NoError(t, err)
	var r struct {
		Choice map[string]string `json:"choice"`
	}
	require.NoError(t, json.Unmarshal(out, &r), "probe output: %s", out)
	return r.Choice
}
