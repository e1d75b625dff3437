package e2e

// The service's output as Redis holds it: one stream per camera
// (frames:<camera id>), read through redisFrames, typed by the Go client
// (parseEntry), and what each entry must hold (checkEntry).

import (
	"context"
	"image"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/client"
	"gstcapture/internal/frame"
	"gstcapture/internal/testenv"
)

// redisFrames is a client of the test's redis-server that reads cameras'
// streams. Entry ids are the server's millisecond clock, the same clock as
// the test's on this machine, so entries are found by the time they were
// added.
type redisFrames struct {
	*redis.Client
	t testing.TB
}

// openFrames connects to rd; the client does not retry a command (as the
// service's own), so that a count taken across a restart is exact.
func openFrames(t testing.TB, rd *testenv.Redis) *redisFrames {
	return &redisFrames{Client: rd.Client(t), t: t}
}

func streamKey(cam string) string { return "frames:" + cam }

func (r *redisFrames) ctx() context.Context { return ctxT(r.t, 10*time.Second) }

// Len is XLEN of cam's stream (0 when there is none).
func (r *redisFrames) Len(cam string) int64 {
	r.t.Helper()
	n, err := r.XLen(r.ctx(), streamKey(cam)).Result()
	if err != nil && err != redis.Nil {
		r.t.Fatalf("XLEN %s: %v", streamKey(cam), err)
	}
	return n
}

// Exists reports whether cam has a stream at all.
func (r *redisFrames) Exists(cam string) bool {
	r.t.Helper()
	n, err := r.Client.Exists(r.ctx(), streamKey(cam)).Result()
	require.NoError(r.t, err, "EXISTS %s", streamKey(cam))
	return n > 0
}

// WaitPublished waits until every camera's stream holds more than n
// entries.
func (r *redisFrames) WaitPublished(svc *service, within time.Duration, n int64, cams ...string) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		short := ""
		for _, cam := range cams {
			if l, err := r.XLen(r.ctx(), streamKey(cam)).Result(); err != nil || l <= n {
				short = cam
				break
			}
		}
		if short == "" {
			return
		}
		if time.Now().After(deadline) {
			h, _ := svc.tryHealth()
			r.t.Fatalf("cameras %v: %s did not reach %d entries within %s; health: %+v\nservice output:\n%s",
				cams, short, n, within, h.Cameras, tail(svc.Output(), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// WaitFirst waits for every camera's first entry.
func (r *redisFrames) WaitFirst(cams ...string) {
	r.t.Helper()
	for _, cam := range cams {
		r.WaitEntry(cam, time.Now().Add(-time.Minute), 30*time.Second, cam+" first frame")
	}
}

// Rates measures each camera's entries per second over window.
func (r *redisFrames) Rates(window time.Duration, cams ...string) map[string]float64 {
	r.t.Helper()
	n0 := map[string]int64{}
	for _, cam := range cams {
		n0[cam] = r.Len(cam)
	}
	t0 := time.Now()
	time.Sleep(window)
	dt := time.Since(t0).Seconds()
	out := map[string]float64{}
	for _, cam := range cams {
		out[cam] = float64(r.Len(cam)-n0[cam]) / dt
	}
	return out
}

// Between returns cam's entries added in [from, to].
func (r *redisFrames) Between(cam string, from, to time.Time) []redis.XMessage {
	r.t.Helper()
	msgs, err := r.XRange(r.ctx(), streamKey(cam), strconv.FormatInt(from.UnixMilli(), 10), strconv.FormatInt(to.UnixMilli(), 10)).Result()
	require.NoError(r.t, err, "XRANGE %s", streamKey(cam))
	return msgs
}

// CountBetween counts cam's entries added in [from, to).
func (r *redisFrames) CountBetween(cam string, from, to time.Time) int {
	return len(r.Between(cam, from, to.Add(-time.Millisecond)))
}

// FirstAfter returns the time of cam's first entry added at or after at,
// or false when there is none.
func (r *redisFrames) FirstAfter(cam string, at time.Time) (time.Time, bool) {
	r.t.Helper()
	msgs, err := r.XRangeN(r.ctx(), streamKey(cam), strconv.FormatInt(at.UnixMilli(), 10), "+", 1).Result()
	require.NoError(r.t, err, "XRANGE %s", streamKey(cam))
	if len(msgs) == 0 {
		return time.Time{}, false
	}
	ms, _, _ := strings.Cut(msgs[0].ID, "-")
	v, err := strconv.ParseInt(ms, 10, 64)
	require.NoError(r.t, err, "stream entry id %q", msgs[0].ID)
	return time.UnixMilli(v), true
}

// WaitEntry waits until cam has an entry added at or after `after`,
// returning that entry's time.
func (r *redisFrames) WaitEntry(cam string, after time.Time, within time.Duration, what string) time.Time {
	r.t.Helper()
	var at time.Time
	ok := assert.Eventually(r.t, func() bool {
		var found bool
		at, found = r.FirstAfter(cam, after)
		return found
	}, within, 20*time.Millisecond, "%s: no entry of %s within %s", what, cam, within)
	if !ok {
		r.t.FailNow()
	}
	return at
}

// Latest returns cam's newest entry, failing when there is none.
func (r *redisFrames) Latest(cam string) redis.XMessage {
	r.t.Helper()
	msgs, err := r.XRevRangeN(r.ctx(), streamKey(cam), "+", "-", 1).Result()
	require.NoError(r.t, err, "XREVRANGE %s", streamKey(cam))
	require.Len(r.t, msgs, 1, "no entry for %s", cam)
	return msgs[0]
}

// LastSeq returns the seq of cam's newest entry (0 if empty).
func (r *redisFrames) LastSeq(cam string) uint64 {
	r.t.Helper()
	msgs, err := r.XRevRangeN(r.ctx(), streamKey(cam), "+", "-", 1).Result()
	require.NoError(r.t, err, "XREVRANGE %s", streamKey(cam))
	if len(msgs) == 0 {
		return 0
	}
	return parseEntry(r.t, cam, msgs[0]).Seq
}

// parseEntry types one entry of cam's stream with the Go client, failing
// the test when it is not a schema v1 entry.
func parseEntry(t testing.TB, cam string, m redis.XMessage) *client.Frame {
	t.Helper()
	f, err := client.Parse(streamKey(cam), m.ID, m.Values)
	require.NoError(t, err)
	return f
}

// EntriesAdded returns XINFO STREAM entries-added of cam's stream: every
// entry ever added to it on this server, trimmed or not (0 without it).
func (r *redisFrames) EntriesAdded(cam string) int64 {
	r.t.Helper()
	info, err := r.XInfoStream(r.ctx(), streamKey(cam)).Result()
	if err != nil && strings.Contains(err.Error(), "no such key") {
		return 0
	}
	require.NoError(r.t, err, "XINFO STREAM %s", streamKey(cam))
	return info.EntriesAdded
}

// PauseAndCount holds every write (CLIENT PAUSE WRITE), lets replies
// already sent reach their clients, and returns XLEN of each camera's
// stream. What it returns is then final for this server: an XADD that
// arrives later is held, and dies unexecuted with the server when the
// caller kills it. That is how entries are counted across a kill of a
// server that keeps no data.
func (r *redisFrames) PauseAndCount(cams ...string) map[string]int64 {
	r.t.Helper()
	require.NoError(r.t, r.Do(r.ctx(), "CLIENT", "PAUSE", "60000", "WRITE").Err(), "CLIENT PAUSE WRITE")
	time.Sleep(300 * time.Millisecond)
	out := map[string]int64{}
	for _, cam := range cams {
		out[cam] = r.Len(cam)
	}
	return out
}

// Freeze stops redis-server with SIGSTOP: every client blocks, as with
// DEBUG SLEEP (which the test servers refuse: enable-debug-command is off)
// or a long fork, swap or VM pause; the kernel still accepts connections
// and buffers what clients send. The returned func resumes it (SIGCONT)
// and is also registered as a cleanup, so a failing test never leaves it
// frozen.
func (r *redisFrames) Freeze() (thaw func()) {
	r.t.Helper()
	pid := r.pid()
	require.NoError(r.t, syscall.Kill(pid, syscall.SIGSTOP), "SIGSTOP redis-server %d", pid)
	var once sync.Once
	thaw = func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	r.t.Cleanup(thaw)
	return thaw
}

// pid asks redis-server for its process id (INFO server).
func (r *redisFrames) pid() int {
	r.t.Helper()
	info, err := r.Info(r.ctx(), "server").Result()
	require.NoError(r.t, err, "INFO server")
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			require.NoError(r.t, err, "process_id %q", v)
			return pid
		}
	}
	r.t.Fatalf("INFO server has no process_id:\n%s", info)
	return 0
}

// checkEntry verifies one Redis entry against schema v1 and the picture,
// read through the Go client.
func checkEntry(t *testing.T, camID string, m redis.XMessage, w, h int) {
	t.Helper()
	// The writer against the schema: pts is always written (-1 without a
	// PTS), but the client reads it as optional, so only the raw entry
	// shows it missing.
	require.Contains(t, m.Values, client.FieldPTS, "%s entry %s lacks field %q", camID, m.ID, client.FieldPTS)
	f := parseEntry(t, camID, m) // Parse requires the other fields; data's length is checked below
	assert.Equal(t, "1", f.Version)
	assert.Equal(t, camID, f.CameraID)
	assert.Equal(t, w, f.Width)
	assert.Equal(t, h, f.Height)
	assert.Equal(t, "BGR", f.Format)
	stride, size, err := frame.Layout(frame.BGR, w, h)
	require.NoError(t, err)
	assert.Equal(t, stride, f.Stride)
	assert.Equal(t, size, f.SizeBytes, "size_bytes implied by %dx%d BGR", w, h)
	require.Len(t, f.Data, size)
	assert.WithinDuration(t, time.Now(), f.TS, 30*time.Second, "ts is capture wall-clock")
	img, err := f.Image()
	require.NoError(t, err, "%s entry %s as an image", camID, m.ID)
	assertSMPTE(t, camID, img)
}

// assertSMPTE checks the picture is camsim's SMPTE bars (which scroll
// horizontally): along a row in the upper part, each of the seven bars
// (white, yellow, cyan, green, magenta, red, blue) must appear, each channel
// clearly high or low, and the frame is not black.
func assertSMPTE(t *testing.T, camID string, img image.Image) {
	t.Helper()
	bars := map[string][3]bool{ // R, G, B high?
		"white": {true, true, true}, "yellow": {true, true, false}, "cyan": {false, true, true},
		"green": {false, true, false}, "magenta": {true, false, true}, "red": {true, false, false}, "blue": {false, false, true},
	}
	level := func(v uint32) (hi, clear bool) { return v > 150, v > 150 || v < 60 }
	found := map[string]bool{}
	b := img.Bounds()
	y := b.Min.Y + b.Dy()/4
	var sum float64
	for x := b.Min.X; x < b.Max.X; x++ {
		r, g, bl, _ := img.At(x, y).RGBA()
		px := [3]uint32{r >> 8, g >> 8, bl >> 8}
		sum += float64(px[0]+px[1]+px[2]) / 3
		var key [3]bool
		ok := true
		for c := 0; c < 3; c++ {
			hi, clear := level(px[c])
			key[c], ok = hi, ok && clear
		}
		for name, want := range bars {
			if ok && key == want {
				found[name] = true
			}
		}
	}
	mean := sum / float64(b.Dx())
	assert.Greater(t, mean, 40.0, "%s: row is too dark (mean %.1f): black picture?", camID, mean)
	var missing []string
	for name := range bars {
		if !found[name] {
			missing = append(missing, name)
		}
	}
	assert.Empty(t, missing, "%s: SMPTE bars missing from the decoded picture", camID)
}
