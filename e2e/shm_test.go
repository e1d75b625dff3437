package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/client"
	"gstcapture/internal/shm"
	"gstcapture/internal/testenv"
)

// shmDir makes a directory for shm.dir on /dev/shm (a tmpfs, as in
// production) when there is one, else in the test's temporary directory.
func shmDir(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "gstcapture-e2e-")
		if err == nil {
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// shmGroup is a group the segment files can be given: "daemon" for root
// (CI), else this user's own group.
func shmGroup(t *testing.T) (name string, gid int) {
	t.Helper()
	if os.Geteuid() == 0 {
		if g, err := user.LookupGroup("daemon"); err == nil {
			id, _ := strconv.Atoi(g.Gid)
			return "daemon", id
		}
	}
	return strconv.Itoa(os.Getgid()), os.Getgid()
}

// shmEnv turns delivery shm on for every camera.
func shmEnv(dir, group string, slots int) []string {
	env := []string{"GSTCAPTURE_DEFAULTS__DELIVERY=shm", "GSTCAPTURE_SHM__DIR=" + dir,
		fmt.Sprintf("GSTCAPTURE_DEFAULTS__SHM_SLOTS=%d", slots)}
	if group != "" {
		env = append(env, "GSTCAPTURE_SHM__GROUP="+group)
	}
	return env
}

// segments lists the gstcapture segment files in dir.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), shm.Prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// nextFrame reads one frame with r within d.
func nextFrame(t *testing.T, r *client.Reader, d time.Duration) *client.Frame {
	t.Helper()
	f, err := r.Next(ctxT(t, d))
	require.NoError(t, err)
	return f
}

// TestShmDelivery: cameras with delivery shm put their pixels in segment
// files under shm.dir and the entries name the slot; the Go client reads
// them as it reads entries with data. Shown here: entries without data
// (about 0.5 KB each in Redis), files 0640 of shm.group, stale files
// swept at start, the picture right through the client, MAXLEN capped at
// shm_slots, a lapped slot detected and never returned as a frame, a
// resolution change starting a new segment (the old one removed), a
// camera removed live taking its segment with it, and SIGTERM removing
// the rest.
func TestShmDelivery(t *testing.T) {
	rd := testenv.StartRedis(t)
	dir := shmDir(t)
	group, gid := shmGroup(t)
	stale := filepath.Join(dir, shm.Name("gone", "dead.0", 1))
	require.NoError(t, os.WriteFile(stale, []byte("left by a gstcapture that was killed"), 0o640))

	const slots = 4
	sim := startCamsim(t, streamSim("h264", 2, "--extra-sizes", "320x240"))
	cfg := streamConfig(rd.URL, camCfg{ID: "shm1", URL: sim.URL(1)}, camCfg{ID: "shm2", URL: sim.URL(2)})
	svc := startService(t, cfg, shmEnv(dir, group, slots)...)
	rc := openFrames(t, rd)
	ids := []string{"shm1", "shm2"}
	rc.WaitPublished(svc, 60*time.Second, 5, ids...)
	assert.NoFileExists(t, stale, "a segment no live writer holds is removed at start")

	// Rates by entries-added: XLEN stays at the capped MAXLEN.
	added := map[string]int64{}
	for _, id := range ids {
		added[id] = rc.EntriesAdded(id)
	}
	time.Sleep(5 * time.Second)
	for _, id := range ids {
		rate := float64(rc.EntriesAdded(id)-added[id]) / 5
		assert.InDelta(t, 10, rate, 2, "%s entries per second with delivery shm", id)
	}
	segOf := map[string]string{}
	for _, id := range ids {
		m := rc.Latest(id)
		assert.NotContains(t, m.Values, client.FieldData, "%s: an shm entry carries no pixels", id)
		for _, k := range []string{client.FieldShmSegment, client.FieldShmSlot, client.FieldShmGen} {
			assert.Contains(t, m.Values, k, "%s entry %s", id, m.ID)
		}
		f, err := client.Parse(streamKey(id), m.ID, m.Values)
		require.NoError(t, err)
		require.NotNil(t, f.Shm)
		assert.Equal(t, 640*360*3, f.SizeBytes)
		assert.Less(t, f.Shm.Slot, slots)
		segOf[id] = f.Shm.Segment
		assert.True(t, strings.HasPrefix(f.Shm.Segment, shm.Prefix+id+"."), "%s: segment %s is named after its camera", id, f.Shm.Segment)

		st, err := os.Stat(filepath.Join(dir, f.Shm.Segment))
		require.NoError(t, err, "%s: the segment file the entry names", id)
		assert.Equal(t, os.FileMode(0o640), st.Mode().Perm(), "%s: segment mode", id)
		assert.Equal(t, uint32(gid), st.Sys().(*syscall.Stat_t).Gid, "%s: segment group (shm.group %s)", id, group)
		assert.Equal(t, shm.SegmentBytes(slots, 640*360*3), st.Size())

		// The picture, through the client, in both modes.
		for _, copyOut := range []bool{false, true} {
			r, err := client.NewReader(rc.Client, client.Options{Stream: streamKey(id), ShmDir: dir, ShmCopy: copyOut})
			require.NoError(t, err)
			fr := nextFrame(t, r, 10*time.Second)
			require.Len(t, fr.Data, 640*360*3)
			img, err := fr.Image()
			require.NoError(t, err)
			assertSMPTE(t, id, img)
			if !copyOut {
				// Read within a frame time: 4 slots at 10 fps leave 0.4 s.
				assert.NoError(t, fr.Check(), "%s: the view is still the frame's", id)
			}
			require.NoError(t, r.Close())
		}
	}
	h := svc.health(t)
	for _, id := range ids {
		c := h.camera(id)
		assert.Equal(t, int64(slots), c.RedisMaxLen, "%s: MAXLEN is capped at shm_slots", id)
		assert.Equal(t, "shm", c.Delivery, id)
		assert.Equal(t, segOf[id], c.ShmSegment, "%s: /health names the segment the entries name", id)
		assert.Equal(t, shm.SegmentBytes(slots, 640*360*3), c.ShmBytes, id)
	}
	// What an entry costs Redis now: MEMORY USAGE of the stream over its length.
	mem, err := rc.MemoryUsage(rc.ctx(), streamKey("shm1"), 0).Result()
	require.NoError(t, err)
	n := rc.Len("shm1")
	t.Logf("shm1: %d entries take %d bytes in Redis (%.0f a entry; a 640x360 BGR frame is %d)", n, mem, float64(mem)/float64(n), 640*360*3)
	assert.Less(t, float64(mem)/float64(n), 2048.0, "an shm entry is metadata only")

	// A lapped slot: the oldest entry of the stream names a slot the writer
	// has used again since (the stream keeps more than shm_slots entries:
	// MAXLEN ~ trims whole nodes).
	msgs, err := rc.XRangeN(rc.ctx(), streamKey("shm1"), "-", "+", 1).Result()
	require.NoError(t, err)
	old, err := client.Parse(streamKey("shm1"), msgs[0].ID, msgs[0].Values)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return rc.LastSeq("shm1") > old.Seq+slots }, 10*time.Second, 50*time.Millisecond)
	seg, err := shm.Open(dir, old.Shm.Segment)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return errors.Is(seg.Check(*old.Shm), shm.ErrLapped) }, 10*time.Second, 50*time.Millisecond,
		"entry %s (seq %d) names slot %d generation %d: lapped once %d more frames came", old.ID, old.Seq, old.Shm.Slot, old.Shm.Gen, slots)
	_, err = seg.Copy(nil, *old.Shm, old.SizeBytes)
	assert.ErrorIs(t, err, shm.ErrLapped)
	require.NoError(t, seg.Close())

	// A consumer group reading the stream from its start meets lapped
	// entries: the Reader drops them (Lapped) and returns only frames whose
	// slot still held them, whole.
	gr, err := client.NewReader(rc.Client, client.Options{Stream: streamKey("shm1"), Group: "g", Consumer: "c1", Start: "0", ShmDir: dir, ShmCopy: true})
	require.NoError(t, err)
	fr := nextFrame(t, gr, 10*time.Second)
	assert.Positive(t, gr.Lapped, "entries older than %d frames were lapped", slots)
	assert.Greater(t, fr.Seq, old.Seq, "the first frame returned is one the writer had not lapped")
	img, err := fr.Image()
	require.NoError(t, err)
	assertSMPTE(t, "shm1", img)
	require.NoError(t, fr.Ack())
	t.Logf("group read from the start: %d lapped entries dropped, first frame seq %d (oldest entry seq %d)", gr.Lapped, fr.Seq, old.Seq)
	require.NoError(t, gr.Close())

	// A resolution change: a new segment, the old one removed.
	sim.Do(1, "size?w=320&h=240")
	var small *client.Frame
	require.Eventually(t, func() bool {
		m := rc.Latest("shm1")
		f, err := client.Parse(streamKey("shm1"), m.ID, m.Values)
		if err == nil && f.Width == 320 {
			small = f
			return true
		}
		return false
	}, 20*time.Second, 100*time.Millisecond, "no 320x240 entry after the switch")
	assert.NotEqual(t, segOf["shm1"], small.Shm.Segment, "new caps, new segment")
	assert.NoFileExists(t, filepath.Join(dir, segOf["shm1"]), "the old segment is removed")
	lr, err := client.NewReader(rc.Client, client.Options{Stream: streamKey("shm1"), ShmDir: dir, ShmCopy: true})
	require.NoError(t, err)
	fr = nextFrame(t, lr, 10*time.Second)
	assert.Equal(t, 320, fr.Width)
	img, err = fr.Image()
	require.NoError(t, err)
	assertSMPTE(t, "shm1", img)
	require.NoError(t, lr.Close())

	// shm2 removed live: its segment goes with it.
	gone := filepath.Join(dir, segOf["shm2"])
	require.FileExists(t, gone)
	svc.rewriteConfig(t, streamConfig(rd.URL, camCfg{ID: "shm1", URL: sim.URL(1)}).YAML(t))
	require.Eventually(t, func() bool { _, err := os.Stat(gone); return errors.Is(err, os.ErrNotExist) }, 20*time.Second, 100*time.Millisecond,
		"shm2's segment is still there after it was removed from the file: %v", segments(t, dir))

	// SIGTERM: the rest goes too.
	require.NotEmpty(t, segments(t, dir))
	svc.Stop(10 * time.Second)
	assert.Empty(t, segments(t, dir), "segments left after SIGTERM")
	acc := finalAccounting(t, svc.Output(), "shm1")
	checkIdentity(t, acc["shm1"])
	assert.Zero(t, acc["shm1"].Dropped["shm_error"])
}

// TestShmDeliveryRelay: a relay the project did not write (ffmpeg
// publishing through gortsplib's server) into a camera with delivery shm,
// read by the Go client in group mode at the camera's rate.
func TestShmDeliveryRelay(t *testing.T) {
	rd := testenv.StartRedis(t)
	dir := shmDir(t)
	relay, relayProc := startRelay(t)
	start(t, nil, "ffmpeg", "-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
		"-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "50",
		"-f", "rtsp", "-rtsp_transport", "tcp", relay+"/shmrelay")
	waitPublishing(t, relayProc, "shmrelay")
	svc := startService(t, streamConfig(rd.URL, camCfg{ID: "shmrelay", URL: relay + "/shmrelay"}), shmEnv(dir, "", 16)...)
	rc := openFrames(t, rd)
	rc.WaitPublished(svc, 60*time.Second, 5, "shmrelay")

	r, err := client.NewReader(rc.Client, client.Options{Stream: streamKey("shmrelay"), Group: "detector", Consumer: "w1", ShmDir: dir})
	require.NoError(t, err)
	defer r.Close()
	var got int
	var lost uint64
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		f := nextFrame(t, r, 5*time.Second)
		require.Len(t, f.Data, 1280*720*3)
		ps, err := f.Planes()
		require.NoError(t, err)
		var sum int
		for _, b := range ps[0].Row(360) {
			sum += int(b)
		}
		require.NoError(t, f.Check(), "a consumer at the camera's rate reads each slot before the writer laps it")
		assert.Greater(t, sum, 0, "frame %d: a picture, not zeroes", f.Seq)
		require.NoError(t, f.Ack())
		lost += f.LostBefore
		got++
	}
	t.Logf("relay camera: %d frames in 5 s through shm, %d lost before, %d lapped", got, lost, r.Lapped)
	assert.InDelta(t, 50, got, 12)
	assert.Zero(t, r.Lapped)
}

// TestShmBadDir: a shm.dir that does not exist stops gstcapture at start
// with an error that names the key and the directory.
func TestShmBadDir(t *testing.T) {
	rd := testenv.StartRedis(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-dir")
	file := writeFile(t, dir, "c.yaml", streamConfig(rd.URL, camCfg{ID: "c1", URL: "rtsp://127.0.0.1:1/x"}).YAML(t))
	cmd := exec.CommandContext(ctxT(t, 30*time.Second), binary(t, "gstcapture"), "run", "--config", file)
	cmd.Env = append(os.Environ(), shmEnv(missing, "", 4)...)
	cmd.Env = append(cmd.Env, fmt.Sprintf("GSTCAPTURE_HTTP__LISTEN=127.0.0.1:%d", testenv.FreePort(t)))
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "gstcapture ran with a missing shm.dir: %s", out)
	assert.Contains(t, string(out), "shm.dir")
	assert.Contains(t, string(out), missing)

	cmd = exec.CommandContext(ctxT(t, 30*time.Second), binary(t, "gstcapture"), "run", "--config", file)
	cmd.Env = append(os.Environ(), shmEnv(dir, "no-such-group-e2e", 4)...)
	cmd.Env = append(cmd.Env, fmt.Sprintf("GSTCAPTURE_HTTP__LISTEN=127.0.0.1:%d", testenv.FreePort(t)))
	out, err = cmd.CombinedOutput()
	require.Error(t, err, "gstcapture ran with an unknown shm.group: %s", out)
	assert.Contains(t, string(out), "shm.group")
	assert.Contains(t, string(out), "no-such-group-e2e")
}
