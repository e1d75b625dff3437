package e2e

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/client"
	"gstcapture/internal/testenv"
)

// TestJPEGCapture: format JPEG against camsim. Two cameras of one camsim
// (640x360 H.264, 25 fps), one published as BGR and one as JPEG: the JPEG
// entries come at the same 10 fps, carry format JPEG, stride 0 and their
// own size, decode (through the Go client) to a 640x360 picture of
// camsim's bars, keep the capture time's source (the RTCP meta crosses
// the encoder), and are over 10 times smaller than the BGR ones, in the
// entries and in Redis's memory. The JPEG camera's snapshot is its entry's
// bytes, and its start says that black and uniform do not run.
func TestJPEGCapture(t *testing.T) {
	const w, h = 640, 360
	rd := testenv.StartRedis(t)
	sim := startCamsim(t, camsimOpts{Cameras: 2, Codec: "h264", Size: fmt.Sprintf("%dx%d", w, h), FPS: 25})
	svc := startService(t, svcConfig{
		Redis: rd.URL, FPS: 10, StallTimeout: "5s", Reconnect: reconnect{"500ms", "3s"},
		Cameras: []camCfg{
			{ID: "bgr", URL: sim.URL(1)},
			{ID: "jpeg", URL: sim.URL(2), Format: "JPEG"},
		},
	})
	rc := openFrames(t, rd)
	ids := []string{"bgr", "jpeg"}
	rc.WaitPublished(svc, 40*time.Second, 5, ids...)
	rates := rc.Rates(5*time.Second, ids...)
	for _, id := range ids {
		t.Logf("%s: %.2f entries/s", id, rates[id])
		assert.InDelta(t, 10, rates[id], 2, "%s entries per second", id)
	}
	checkEntry(t, "bgr", rc.Latest("bgr"), w, h)

	msgs, err := rc.XRevRangeN(rc.ctx(), streamKey("jpeg"), "+", "-", 20).Result()
	require.NoError(t, err)
	require.Len(t, msgs, 20)
	bgrSize := 3 * w * h // stride 1920: no padding
	var total int
	for _, m := range msgs {
		f := checkJPEGEntry(t, "jpeg", m, w, h)
		total += f.SizeBytes
	}
	mean := float64(total) / float64(len(msgs))
	t.Logf("JPEG quality 85 of camsim's %dx%d bars: %.0f bytes an entry on average, BGR %d: x%.3f (1/%.0f)",
		w, h, mean, bgrSize, mean/float64(bgrSize), float64(bgrSize)/mean)
	assert.Less(t, mean, float64(bgrSize)/10, "JPEG entries are over 10 times smaller than BGR")

	// The RTCP reference timestamp meta survives the encoder: both cameras
	// of one camsim have the same ts_source.
	require.Eventually(t, func() bool { return rc.Latest("bgr").Values["ts_source"] == "rtcp" }, 15*time.Second, 100*time.Millisecond,
		"camsim sends RTCP sender reports")
	assert.Equal(t, "rtcp", rc.Latest("jpeg").Values["ts_source"], "the JPEG camera's capture time comes from RTCP too")

	// Redis's memory per entry, both streams as they are.
	perEntry := func(id string) float64 {
		b, err := rc.MemoryUsage(rc.ctx(), streamKey(id), 0).Result()
		require.NoError(t, err)
		return float64(b) / float64(rc.Len(id))
	}
	mb, mj := perEntry("bgr"), perEntry("jpeg")
	t.Logf("Redis MEMORY USAGE per entry: BGR %.0f bytes, JPEG %.0f bytes: x%.3f", mb, mj, mj/mb)
	assert.Less(t, mj, mb/10, "JPEG streams take over 10 times less of Redis's memory")

	// The snapshot is the entry's own bytes.
	resp, err := apiHTTP.Get(svc.HTTP + "/api/v1/cameras/jpeg/snapshot.jpg")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))
	img, err := jpeg.Decode(bytes.NewReader(body))
	require.NoError(t, err, "the snapshot is a JPEG")
	assert.Equal(t, image.Rect(0, 0, w, h), img.Bounds())
	seq, err := strconv.ParseUint(resp.Header.Get("X-Frame-Seq"), 10, 64)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return entryWithSeq(t, rc, "jpeg", seq) != nil }, 5*time.Second, 50*time.Millisecond, "entry of seq %d", seq)
	assert.Equal(t, string(body), entryWithSeq(t, rc, "jpeg", seq).Values["data"], "snapshot of seq %d: the entry's bytes, not encoded again", seq)

	// Nothing dropped as size or corrupt; the start said what does not run.
	hl := svc.health(t).camera("jpeg")
	assert.Equal(t, "streaming", hl.State)
	assert.Zero(t, hl.Dropped["size"]+hl.Dropped["corrupt"], "dropped: %v", hl.Dropped)
	warn := lines(svc.Output(), "do not run on JPEG frames")
	require.Len(t, warn, 1, "one warning, for the JPEG camera")
	assert.Contains(t, warn[0], `"camera_id":"jpeg"`)
	assert.Contains(t, warn[0], `"rules":"black,uniform"`)

	// render prints the encoder.
	out, err := exec.Command(binary(t, "gstcapture"), "render", "--config", svc.Config, "--camera", "jpeg").Output()
	require.NoError(t, err)
	assert.Contains(t, string(out), " ! videoconvert n-threads=1 ! video/x-raw,format=I420 ! jpegenc name=enc quality=85 ! image/jpeg ! appsink ")
}

// TestJPEGRelay: a JPEG camera on an RTSP server the project did not write.
// ffmpeg encodes SMPTE bars (libx264, B-frames) and publishes them into
// gortsplib's server (e2e/tools/rtsprelay); gstcapture scales them to
// 320x180 and publishes JPEG at 10 fps: the scaled picture decodes, bars
// and all.
func TestJPEGRelay(t *testing.T) {
	const w, h = 320, 180
	rd := testenv.StartRedis(t)
	relay, relayProc := startRelay(t)
	publishLoop(t, relay, relayProc, "bars", "smptebars=size=1280x720", 25)
	svc := startService(t, streamConfig(rd.URL, camCfg{ID: "relayjpeg", URL: relay + "/bars", Format: "JPEG", Width: w, Height: h}))
	rc := openFrames(t, rd)
	rc.WaitPublished(svc, 40*time.Second, 5, "relayjpeg")
	rate := rc.Rates(5*time.Second, "relayjpeg")["relayjpeg"]
	t.Logf("relay camera, JPEG at %dx%d: %.2f entries/s", w, h, rate)
	assert.InDelta(t, 10, rate, 2)
	msgs, err := rc.XRevRangeN(rc.ctx(), streamKey("relayjpeg"), "+", "-", 5).Result()
	require.NoError(t, err)
	for _, m := range msgs {
		f := checkJPEGEntry(t, "relayjpeg", m, w, h)
		t.Logf("entry %s: %d bytes", m.ID, f.SizeBytes)
	}
	assert.Equal(t, "streaming", svc.health(t).camera("relayjpeg").State)
}

// checkJPEGEntry checks one entry of a JPEG camera through the Go client:
// schema fields, a whole JPEG of w x h, decoding to camsim's (or ffmpeg's)
// SMPTE bars, colours within JPEG's tolerance (assertSMPTE's levels).
func checkJPEGEntry(t *testing.T, cam string, m redis.XMessage, w, h int) *client.Frame {
	t.Helper()
	f := parseEntry(t, cam, m)
	assert.Equal(t, [4]any{client.FormatJPEG, w, h, 0}, [4]any{f.Format, f.Width, f.Height, f.Stride}, "%s %s", cam, m.ID)
	data, err := f.JPEG()
	require.NoError(t, err, "size_bytes is the JPEG's length")
	require.Greater(t, len(data), 4)
	assert.Equal(t, []byte{0xFF, 0xD8}, data[:2], "SOI")
	assert.Equal(t, []byte{0xFF, 0xD9}, data[len(data)-2:], "EOI")
	img, err := f.Image()
	require.NoError(t, err, "%s %s decodes", cam, m.ID)
	assertSMPTE(t, cam+" "+m.ID, img)
	return f
}

// entryWithSeq returns cam's entry of seq among its newest 100, nil if
// it is not there (yet).
func entryWithSeq(t *testing.T, rc *redisFrames, cam string, seq uint64) *redis.XMessage {
	t.Helper()
	msgs, err := rc.XRevRangeN(rc.ctx(), streamKey(cam), "+", "-", 100).Result()
	require.NoError(t, err)
	for _, m := range msgs {
		if m.Values["seq"] == strconv.FormatUint(seq, 10) {
			return &m
		}
	}
	return nil
}

// TestJPEGShm: format JPEG with delivery shm. The JPEG goes into the
// camera's segment, the entry names its slot and carries its size, and the
// Go client reads it from the segment and decodes it (checking the slot
// was not lapped meanwhile) to camsim's bars.
func TestJPEGShm(t *testing.T) {
	const w, h = 640, 360
	rd := testenv.StartRedis(t)
	dir := shmDir(t)
	sim := startCamsim(t, camsimOpts{Cameras: 1, Codec: "h264", Size: fmt.Sprintf("%dx%d", w, h), FPS: 25})
	svc := startService(t, svcConfig{Redis: rd.URL, FPS: 10, Cameras: []camCfg{{ID: "shmjpeg", URL: sim.URL(1), Format: "JPEG"}}},
		shmEnv(dir, "", 8)...)
	rc := openFrames(t, rd)
	rc.WaitPublished(svc, 40*time.Second, 5, "shmjpeg")
	m := rc.Latest("shmjpeg")
	assert.NotContains(t, m.Values, client.FieldData, "an shm entry carries no pixels")
	f := parseEntry(t, "shmjpeg", m)
	require.NotNil(t, f.Shm)
	assert.Equal(t, [3]any{client.FormatJPEG, 0, true}, [3]any{f.Format, f.Stride, f.SizeBytes > 0 && f.SizeBytes < 3*w*h/10})
	r, err := client.NewReader(rc.Client, client.Options{Stream: streamKey("shmjpeg"), ShmDir: dir})
	require.NoError(t, err)
	defer r.Close()
	for range 3 {
		fr := nextFrame(t, r, 10*time.Second)
		img, err := fr.Image()
		require.NoError(t, err, "decoded from the segment")
		assert.Equal(t, image.Rect(0, 0, w, h), img.Bounds())
		assertSMPTE(t, "shmjpeg "+fr.ID, img)
	}
	hl := svc.health(t).camera("shmjpeg")
	assert.Equal(t, "streaming", hl.State)
	assert.Zero(t, hl.Dropped["shm_error"]+hl.Dropped["size"], "dropped: %v", hl.Dropped)
}
