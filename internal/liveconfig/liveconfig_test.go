package liveconfig

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/capture"
	"gstcapture/internal/config"
	"gstcapture/internal/health"
	"gstcapture/internal/testenv"
)

// fakeService records what the controller applies; the capture service
// itself is exercised by the e2e tests (e2e/live_test.go).
type fakeService struct {
	mu      sync.Mutex
	applied [][]config.Camera
	cur     map[string]config.Camera
	refuse  string // a camera id Check refuses
}

func (f *fakeService) Apply(cams []config.Camera) (capture.Changes, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, cams)
	var ch capture.Changes
	next := map[string]config.Camera{}
	for _, c := range cams {
		next[c.ID] = c
		switch old, ok := f.cur[c.ID]; {
		case !ok:
			ch.Added = append(ch.Added, c.ID)
		case !sameCamera(old, c):
			ch.Rebuilt = append(ch.Rebuilt, c.ID)
		}
	}
	for id := range f.cur {
		if _, ok := next[id]; !ok {
			ch.Removed = append(ch.Removed, id)
		}
	}
	f.cur = next
	return ch, nil
}

func sameCamera(a, b config.Camera) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb) && a.Password == b.Password
}

func (f *fakeService) Restart(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.cur[id]; !ok {
		return capture.ErrUnknownCamera
	}
	return nil
}

func (f *fakeService) Check(cam config.Camera) error {
	if cam.ID == f.refuse {
		return errors.New("no decoder for h265")
	}
	return nil
}

func (f *fakeService) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.cur {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (f *fakeService) camera(id string) config.Camera {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur[id]
}

const fileCams = `
defaults: {fps: 10}
cameras:
  - {id: cam1, url: 'rtsp://10.0.0.1/s', codec: h264}
  - {id: cam2, url: 'rtsp://10.0.0.2/s', codec: h264, fps: 10}
`

type rig struct {
	dir, file string
	rd        *testenv.Redis
	svc       *fakeService
	ctrl      *Controller
	reloads   map[string]int
	env       []string
}

func newRig(t *testing.T, yml string, env ...string) *rig {
	t.Helper()
	r := &rig{dir: t.TempDir(), rd: testenv.StartRedis(t), svc: &fakeService{}, reloads: map[string]int{}, env: env}
	r.file = filepath.Join(r.dir, "c.yaml")
	r.write(t, "redis: {url: '"+r.rd.URL+"'}\n"+yml)
	cfg, err := config.Load(r.file, r.env)
	require.NoError(t, err)
	_, err = r.svc.Apply(cfg.Cameras)
	require.NoError(t, err)
	var mu sync.Mutex
	r.ctrl = New(cfg, r.svc, r.rd.Client(t), slog.New(slog.NewTextHandler(io.Discard, nil)), Options{
		Environ: func() []string { return r.env },
		Reloaded: func(res string) {
			mu.Lock()
			r.reloads[res]++
			mu.Unlock()
		},
	})
	require.NoError(t, r.ctrl.LoadAPI(context.Background()))
	return r
}

func (r *rig) write(t *testing.T, yml string) {
	t.Helper()
	// As editors save: a new file renamed over the old one.
	tmp := r.file + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(yml), 0o600))
	require.NoError(t, os.Rename(tmp, r.file))
}

func (r *rig) edit(t *testing.T, yml string) {
	t.Helper()
	r.write(t, "redis: {url: '"+r.rd.URL+"'}\n"+yml)
}

func status(err error) int {
	var ce *health.CameraError
	if errors.As(err, &ce) {
		return ce.Status
	}
	return 0
}

// A valid edit applies the whole set once; a defaults change reaches the
// cameras that inherit it and not the one that overrides it.
func TestReloadAppliesTheDiff(t *testing.T) {
	r := newRig(t, fileCams)
	r.edit(t, `
defaults: {fps: 5}
cameras:
  - {id: cam1, url: 'rtsp://10.0.0.1/s', codec: h264}
  - {id: cam2, url: 'rtsp://10.0.0.2/s', codec: h264, fps: 10}
  - {id: cam3, url: 'rtsp://10.0.0.3/s', codec: h264}
`)
	r.ctrl.Reload("test")
	assert.Equal(t, []string{"cam1", "cam2", "cam3"}, r.svc.ids())
	assert.Equal(t, 5, r.svc.camera("cam1").Settings.FPS)
	assert.Equal(t, 10, r.svc.camera("cam2").Settings.FPS)
	st := r.ctrl.Status()
	assert.Equal(t, "applied", st.LastResult)
	assert.Equal(t, uint64(2), st.Generation)
	assert.Empty(t, st.LastError)

	// The same file again: nothing to do.
	r.ctrl.Reload("SIGHUP")
	assert.Equal(t, "unchanged", r.ctrl.Status().LastResult)
	assert.Equal(t, uint64(2), r.ctrl.Status().Generation)
	assert.Equal(t, map[string]int{"applied": 1, "unchanged": 1}, r.reloads)
}

// An invalid edit changes nothing and says why, with paths; the next valid
// one applies.
func TestReloadRejectsAnInvalidFile(t *testing.T) {
	r := newRig(t, fileCams)
	applied := len(r.svc.applied)
	r.edit(t, `
cameras:
  - {id: cam1, url: 'rtsp://10.0.0.1/s', codec: h264, fps: 500}
  - {id: cam2, url: 'rtsp://10.0.0.2/s', codec: h264, bogus: 1}
`)
	r.ctrl.Reload("test")
	assert.Len(t, r.svc.applied, applied, "nothing applied")
	st := r.ctrl.Status()
	assert.Equal(t, "invalid", st.LastResult)
	assert.NotEmpty(t, st.LastError)
	var paths []string
	for _, p := range st.Problems {
		paths = append(paths, p.Path)
	}
	assert.ElementsMatch(t, []string{"cameras[0].fps", "cameras[1].bogus"}, paths)

	// A camera that cannot be planned here rejects the reload too.
	r.svc.refuse = "cam9"
	r.edit(t, fileCams+"  - {id: cam9, url: 'rtsp://10.0.0.9/s', codec: h265}\n")
	r.ctrl.Reload("test")
	assert.Equal(t, "invalid", r.ctrl.Status().LastResult)
	assert.Equal(t, "cameras[2]", r.ctrl.Status().Problems[0].Path)

	r.edit(t, fileCams+"  - {id: cam3, url: 'rtsp://10.0.0.3/s', codec: h264}\n")
	r.ctrl.Reload("test")
	assert.Equal(t, "applied", r.ctrl.Status().LastResult)
	assert.Empty(t, r.ctrl.Status().Problems)
	assert.Equal(t, []string{"cam1", "cam2", "cam3"}, r.svc.ids())
	assert.Equal(t, map[string]int{"invalid": 2, "applied": 1}, r.reloads)
}

func TestReloadReportsWhatNeedsARestart(t *testing.T) {
	r := newRig(t, fileCams)
	r.edit(t, "http: {listen: ':9999'}\n"+fileCams)
	r.ctrl.Reload("test")
	assert.Equal(t, []string{"http.listen"}, r.ctrl.Status().RestartNeeded)
	r.edit(t, fileCams)
	r.ctrl.Reload("test")
	assert.Empty(t, r.ctrl.Status().RestartNeeded, "reverting the edit clears it")
}

// The camera API: validated like the file, stored in Redis without a
// credential, read back by the next controller (a restart).
func TestCameraAPI(t *testing.T) {
	r := newRig(t, fileCams, "CAM5_PW=pw-from-env-123")
	ctx := context.Background()
	body := `{"url": "rtsp://op:${CAM5_PW}@10.0.0.5/s", "codec": "h264", "fps": 3}`
	created, err := r.ctrl.PutCamera(ctx, "cam5", []byte(body), false)
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, []string{"cam1", "cam2", "cam5"}, r.svc.ids())
	assert.Equal(t, "pw-from-env-123", r.svc.camera("cam5").Password)
	assert.Equal(t, config.SourceAPI, r.svc.camera("cam5").Source)

	stored, err := r.rd.Client(t).HGet(ctx, "gstcapture:cameras", "cam5").Result()
	require.NoError(t, err)
	assert.NotContains(t, stored, "pw-from-env-123", "Redis holds the reference, not the password")
	assert.Contains(t, stored, "${CAM5_PW}")

	created, err = r.ctrl.PutCamera(ctx, "cam5", []byte(`{"url": "rtsp://10.0.0.5/s", "codec": "h264", "fps": 4}`), false)
	require.NoError(t, err)
	assert.False(t, created, "a replace")
	assert.Equal(t, 4, r.svc.camera("cam5").Settings.FPS)
	gen := r.ctrl.Status().Generation
	_, err = r.ctrl.PutCamera(ctx, "cam5", []byte(`{"url": "rtsp://10.0.0.5/s", "codec": "h264", "fps": 4}`), false)
	require.NoError(t, err)
	assert.Equal(t, gen, r.ctrl.Status().Generation, "the same entry again changes nothing")

	_, err = r.ctrl.PutCamera(ctx, "cam1", []byte(`{"url": "rtsp://10.0.0.1/s", "codec": "h264"}`), false)
	assert.Equal(t, http.StatusConflict, status(err))
	assert.Contains(t, err.Error(), r.file, "the error names the file")
	assert.Equal(t, http.StatusConflict, status(r.ctrl.DeleteCamera(ctx, "cam2")))

	_, err = r.ctrl.PutCamera(ctx, "cam6", []byte(`{"url": "rtsp://op:secret99@10.0.0.6/s", "codec": "h264", "fps": 500}`), false)
	require.Equal(t, http.StatusUnprocessableEntity, status(err))
	var ce *health.CameraError
	require.ErrorAs(t, err, &ce)
	var paths []string
	for _, p := range ce.Problems {
		paths = append(paths, p.Path)
		assert.NotContains(t, p.Message, "secret99")
	}
	assert.ElementsMatch(t, []string{"url", "fps"}, paths)
	_, err = r.ctrl.PutCamera(ctx, "cam6", []byte(`[1, 2]`), false)
	assert.Equal(t, http.StatusBadRequest, status(err))
	r.svc.refuse = "cam7"
	_, err = r.ctrl.PutCamera(ctx, "cam7", []byte(`{"url": "rtsp://10.0.0.7/s", "codec": "h265"}`), false)
	assert.Equal(t, http.StatusUnprocessableEntity, status(err), "a camera that cannot run here is refused before it is stored")
	n, _ := r.rd.Client(t).HLen(ctx, "gstcapture:cameras").Result()
	assert.Equal(t, int64(2), n, "refused entries are not stored (cam5 and the marker)")

	assert.NoError(t, r.ctrl.RestartCamera("cam5"))
	assert.Equal(t, http.StatusNotFound, status(r.ctrl.RestartCamera("nope")))

	// A restart: a new controller reads the API's camera back.
	cfg, err := config.Load(r.file, r.env)
	require.NoError(t, err)
	svc2 := &fakeService{}
	_, _ = svc2.Apply(cfg.Cameras)
	ctrl2 := New(cfg, svc2, r.rd.Client(t), slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Environ: func() []string { return r.env }})
	require.NoError(t, ctrl2.LoadAPI(ctx))
	assert.Equal(t, []string{"cam1", "cam2", "cam5"}, svc2.ids())
	assert.Equal(t, health.APICameras{Loaded: true, Count: 1}, ctrl2.Status().APICameras)

	require.NoError(t, r.ctrl.DeleteCamera(ctx, "cam5"))
	assert.Equal(t, []string{"cam1", "cam2"}, r.svc.ids())
	assert.Equal(t, http.StatusNotFound, status(r.ctrl.DeleteCamera(ctx, "cam5")))
	keys, _ := r.rd.Client(t).HKeys(ctx, "gstcapture:cameras").Result()
	assert.Equal(t, []string{marker}, keys, "no camera left; the marker keeps the hash")
}

// Without Redis nothing is changed, and the answer says so.
func TestCameraAPIWithoutRedis(t *testing.T) {
	r := newRig(t, fileCams)
	r.rd.Stop()
	_, err := r.ctrl.PutCamera(context.Background(), "cam5", []byte(`{"url": "rtsp://10.0.0.5/s", "codec": "h264"}`), false)
	assert.Equal(t, http.StatusServiceUnavailable, status(err))
	assert.Equal(t, []string{"cam1", "cam2"}, r.svc.ids())
}

// Saving the file (renamed over, as editors do) reloads it.
func TestWatchReloadsOnSave(t *testing.T) {
	r := newRig(t, fileCams)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.ctrl.Start(ctx)
	time.Sleep(100 * time.Millisecond) // the watch is set up
	r.edit(t, fileCams+"  - {id: cam3, url: 'rtsp://10.0.0.3/s', codec: h264}\n")
	require.Eventually(t, func() bool { return slices.Contains(r.svc.ids(), "cam3") }, 5*time.Second, 20*time.Millisecond)
	// Written in place this time.
	require.NoError(t, os.WriteFile(r.file, []byte("redis: {url: '"+r.rd.URL+"'}\n"+fileCams), 0o600))
	require.Eventually(t, func() bool { return !slices.Contains(r.svc.ids(), "cam3") }, 5*time.Second, 20*time.Millisecond)
}

// A Kubernetes ConfigMap volume updates by swapping a symlink: the file is
// cameras.yaml -> ..data/cameras.yaml, and kubelet points ..data at a new
// directory with a rename. That is a reload too.
func TestWatchReloadsOnConfigMapSwap(t *testing.T) {
	rd := testenv.StartRedis(t)
	dir := t.TempDir()
	version := func(name, yml string) {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, name), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name, "c.yaml"), []byte("redis: {url: '"+rd.URL+"'}\n"+yml), 0o600))
	}
	version("..2026_12_02_a", fileCams)
	require.NoError(t, os.Symlink("..2026_12_02_a", filepath.Join(dir, "..data")))
	file := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.Symlink(filepath.Join("..data", "c.yaml"), file))

	cfg, err := config.Load(file, nil)
	require.NoError(t, err)
	svc := &fakeService{}
	_, _ = svc.Apply(cfg.Cameras)
	ctrl := New(cfg, svc, rd.Client(t), slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Environ: func() []string { return nil }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctrl.Start(ctx)
	time.Sleep(100 * time.Millisecond)

	version("..2026_12_02_b", fileCams+"  - {id: cam3, url: 'rtsp://10.0.0.3/s', codec: h264}\n")
	require.NoError(t, os.Symlink("..2026_12_02_b", filepath.Join(dir, "..data_tmp")))
	require.NoError(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	require.Eventually(t, func() bool { return slices.Contains(svc.ids(), "cam3") }, 5*time.Second, 20*time.Millisecond,
		"the swap of ..data reloads the file")
}

// Two gstcaptures on one Redis: a camera one of them creates, replaces or
// deletes through the API runs, changes or stops on the other at its next
// read of the hash.
func TestSyncAPISeesAnotherProcess(t *testing.T) {
	r := newRig(t, fileCams)
	ctx := context.Background()
	cfg, err := config.Load(r.file, r.env)
	require.NoError(t, err)
	other := &fakeService{}
	_, _ = other.Apply(cfg.Cameras)
	ctrl2 := New(cfg, other, r.rd.Client(t), slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Environ: func() []string { return r.env }})
	require.NoError(t, ctrl2.LoadAPI(ctx))

	_, err = r.ctrl.PutCamera(ctx, "cam5", []byte(`{"url": "rtsp://10.0.0.5/s", "codec": "h264"}`), false)
	require.NoError(t, err)
	gen := ctrl2.Status().Generation
	require.NoError(t, ctrl2.SyncAPI(ctx))
	assert.Equal(t, []string{"cam1", "cam2", "cam5"}, other.ids())
	assert.Equal(t, gen+1, ctrl2.Status().Generation)
	require.NoError(t, ctrl2.SyncAPI(ctx))
	assert.Equal(t, gen+1, ctrl2.Status().Generation, "nothing changed in Redis: nothing applied")

	_, err = r.ctrl.PutCamera(ctx, "cam5", []byte(`{"url": "rtsp://10.0.0.5/s", "codec": "h264", "fps": 2}`), false)
	require.NoError(t, err)
	require.NoError(t, ctrl2.SyncAPI(ctx))
	assert.Equal(t, 2, other.camera("cam5").Settings.FPS)

	require.NoError(t, r.ctrl.DeleteCamera(ctx, "cam5"))
	require.NoError(t, ctrl2.SyncAPI(ctx))
	assert.Equal(t, []string{"cam1", "cam2"}, other.ids())
}

// With Options.Stored and Sync (a fleet's channel), a change stored
// through one process is read by the other at once, not at its next
// periodic read.
func TestSyncOnAnotherProcessesChange(t *testing.T) {
	r := newRig(t, fileCams)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, err := config.Load(r.file, r.env)
	require.NoError(t, err)
	other := &fakeService{}
	_, _ = other.Apply(cfg.Cameras)
	sync := make(chan struct{}, 1)
	ctrl2 := New(cfg, other, r.rd.Client(t), slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Environ: func() []string { return r.env }, Sync: sync})
	ctrl2.Start(ctx)
	require.Eventually(t, func() bool { return ctrl2.Status().APICameras.Loaded }, 5*time.Second, 10*time.Millisecond)

	stored := 0
	r.ctrl.opts.Stored = func() {
		stored++
		select {
		case sync <- struct{}{}:
		default:
		}
	}
	_, err = r.ctrl.PutCamera(ctx, "cam5", []byte(`{"url": "rtsp://10.0.0.5/s", "codec": "h264"}`), false)
	require.NoError(t, err)
	assert.Equal(t, 1, stored)
	require.Eventually(t, func() bool { return slices.Contains(other.ids(), "cam5") }, 2*time.Second, 10*time.Millisecond,
		"the other process did not read the stored change at once (its periodic read is every %s)", syncEvery)
	require.NoError(t, r.ctrl.DeleteCamera(ctx, "cam5"))
	assert.Equal(t, 2, stored)
	require.Eventually(t, func() bool { return !slices.Contains(other.ids(), "cam5") }, 2*time.Second, 10*time.Millisecond)
	_, err = r.ctrl.PutCamera(ctx, "cam6", []byte(`{"url": "rtsp://10.0.0.6/s", "codec": "h264"}`), true)
	require.NoError(t, err)
	assert.Equal(t, 2, stored, "a dry run stores nothing")
}

// A dry run checks an entry as a PUT does, and changes nothing: not the
// hash, not what runs, not the generation; it works without Redis.
func TestPutCameraDryRun(t *testing.T) {
	r := newRig(t, fileCams)
	ctx := context.Background()
	applied, gen := len(r.svc.applied), r.ctrl.Status().Generation
	r.rd.Stop()
	created, err := r.ctrl.PutCamera(ctx, "cam5", []byte(`{"url": "rtsp://10.0.0.5/s", "codec": "h264"}`), true)
	require.NoError(t, err)
	assert.True(t, created, "it would be created")
	_, err = r.ctrl.PutCamera(ctx, "cam5", []byte(`{"url": "rtsp://10.0.0.5/s", "codec": "h264", "fps": 0}`), true)
	assert.Equal(t, http.StatusUnprocessableEntity, status(err))
	_, err = r.ctrl.PutCamera(ctx, "cam1", []byte(`{"url": "rtsp://10.0.0.1/s", "codec": "h264"}`), true)
	assert.Equal(t, http.StatusConflict, status(err))
	assert.Len(t, r.svc.applied, applied, "nothing applied")
	assert.Equal(t, gen, r.ctrl.Status().Generation)
	assert.Equal(t, []string{"cam1", "cam2"}, r.svc.ids())
}

// A Redis restarted without persistence loses the hash: the API's cameras
// keep running and are written back; deleting the last one through the API
// is not taken for such a loss.
func TestSyncAPISurvivesALostHash(t *testing.T) {
	r := newRig(t, fileCams)
	ctx := context.Background()
	_, err := r.ctrl.PutCamera(ctx, "cam5", []byte(`{"url": "rtsp://10.0.0.5/s", "codec": "h264"}`), false)
	require.NoError(t, err)
	rc := r.rd.Client(t)
	require.NoError(t, rc.FlushAll(ctx).Err())
	require.NoError(t, r.ctrl.SyncAPI(ctx))
	assert.Equal(t, []string{"cam1", "cam2", "cam5"}, r.svc.ids(), "cam5 keeps running")
	stored, err := rc.HGet(ctx, "gstcapture:cameras", "cam5").Result()
	require.NoError(t, err, "cam5 is written back")
	assert.Contains(t, stored, "10.0.0.5")

	// Deleted through the API (here, by another process): gone everywhere.
	require.NoError(t, rc.HDel(ctx, "gstcapture:cameras", "cam5").Err())
	require.NoError(t, r.ctrl.SyncAPI(ctx))
	assert.Equal(t, []string{"cam1", "cam2"}, r.svc.ids())
}
