package liveconfig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"gstcapture/internal/capture"
	"gstcapture/internal/config"
	"gstcapture/internal/health"
	"gstcapture/internal/telemetry"
)

// Service is what the controller changes: the running capture service
// (*capture.Service).
type Service interface {
	Apply(cams []config.Camera) (capture.Changes, error)
	Restart(id string) error
	Check(cam config.Camera) error
}

// Options configure a Controller.
type Options struct {
	// Environ returns the environment a reload resolves ${VAR},
	// password_env and GSTCAPTURE_* overrides from (os.Environ).
	Environ func() []string
	// Live applies the settings of a reloaded configuration that take
	// effect without a restart (log level, health thresholds, tokens,
	// shutdown timeout); called under the controller's lock.
	Live func(cfg *config.Config)
	// Reloaded counts a file reload by result (telemetry.Metrics.Reloaded).
	Reloaded func(result string)
	// Stored, when set, is told after a PUT or DELETE changed the camera
	// API's hash, so that other processes on the same Redis read it at
	// once (a fleet announces it on its channel).
	Stored func()
	// Sync, when set, asks for the hash to be read again now (another
	// process stored a change), besides every syncEvery.
	Sync <-chan struct{}
}

// Controller owns the live camera set: the configuration file's cameras
// and settings (reloaded on a change or SIGHUP) and the cameras of the
// camera API (kept in Redis). Every change goes through it, one at a time,
// and reaches the service as one Apply of the whole set.
type Controller struct {
	svc   Service
	store *store
	log   *slog.Logger
	opts  Options

	mu      sync.Mutex
	running *config.Config            // in force: the start's values for what needs a restart
	api     map[string]map[string]any // API entries as stored, by id
	apiCams map[string]config.Camera  // the API entries parsed over running's defaults
	loaded  bool                      // the API entries were read from Redis

	smu    sync.Mutex
	status health.ConfigStatus
}

// New returns the controller of a service started with cfg. client reaches
// the Redis that keeps the API's cameras (redis.cameras_key).
func New(cfg *config.Config, svc Service, client redis.UniversalClient, log *slog.Logger, opts Options) *Controller {
	if opts.Live == nil {
		opts.Live = func(*config.Config) {}
	}
	if opts.Reloaded == nil {
		opts.Reloaded = func(string) {}
	}
	c := &Controller{
		svc: svc, log: log.With("component", "config"), opts: opts,
		store:   &store{log: log, client: client, key: cfg.Redis.CamerasKey, timeout: cfg.Redis.Timeout},
		running: cfg, api: map[string]map[string]any{}, apiCams: map[string]config.Camera{},
	}
	c.status = health.ConfigStatus{File: cfg.File, Generation: 1, LoadedAt: time.Now(), LastResult: "initial"}
	c.status.APICameras.Error = "not read from Redis yet"
	return c
}

// Status returns the configuration's state for /health.
func (c *Controller) Status() health.ConfigStatus {
	c.smu.Lock()
	defer c.smu.Unlock()
	s := c.status
	s.Problems = slices.Clone(s.Problems)
	s.RestartNeeded = slices.Clone(s.RestartNeeded)
	return s
}

func (c *Controller) setStatus(fn func(s *health.ConfigStatus)) {
	c.smu.Lock()
	fn(&c.status)
	c.smu.Unlock()
}

// changed records that what runs changed: a new generation.
func (c *Controller) changed(now time.Time) {
	c.setStatus(func(s *health.ConfigStatus) {
		s.Generation++
		s.LoadedAt = now
	})
}

// cameras is the camera set in force: the file's cameras, then the API's
// whose id the file does not use. Caller holds c.mu.
func (c *Controller) cameras(cfg *config.Config, api map[string]config.Camera) []config.Camera {
	out := slices.Clone(cfg.Cameras)
	inFile := map[string]bool{}
	for _, cam := range cfg.Cameras {
		inFile[cam.ID] = true
	}
	for _, id := range slices.Sorted(maps.Keys(api)) {
		if inFile[id] {
			c.log.Warn("camera is configured in the file and through the camera API: the file's entry runs, the API's waits in Redis until the file drops it",
				"camera_id", id, "file", cfg.File)
			continue
		}
		out = append(out, api[id])
	}
	return out
}

// parseAPI parses every stored API entry over cfg's defaults. An entry
// that no longer parses (a variable gone from the environment) keeps the
// camera it last parsed to, so that a reload never stops it; it is logged.
func (c *Controller) parseAPI(cfg *config.Config) map[string]config.Camera {
	out := make(map[string]config.Camera, len(c.api))
	for id, entry := range c.api {
		cam, probs := cfg.ParseCamera(id, entry)
		if len(probs) == 0 {
			out[id] = cam
			continue
		}
		c.log.Error("camera API entry does not hold with the reloaded configuration; the camera keeps its previous settings",
			"camera_id", id, "problems", probs.Error())
		if prev, ok := c.apiCams[id]; ok {
			out[id] = prev
		}
	}
	return out
}

// apply makes cams run and logs what changed. Caller holds c.mu.
func (c *Controller) apply(cams []config.Camera, trigger string) (capture.Changes, error) {
	ch, err := c.svc.Apply(cams)
	if err != nil {
		return ch, err
	}
	for id, e := range ch.Failed {
		c.log.Error("camera cannot be started with its new settings", "camera_id", id, "error", e.Error())
	}
	if ch.Any() {
		c.log.Info("camera set changed", "trigger", trigger, "added", nonNil(ch.Added), "removed", nonNil(ch.Removed), "rebuilt", nonNil(ch.Rebuilt),
			"unchanged", len(ch.Unchanged))
	}
	return ch, nil
}

// Reload reads the configuration file again and applies it: nothing
// changes unless the whole file is valid; then each camera is diffed on
// its effective settings, and only added, removed and changed cameras are
// touched. trigger says why ("file changed", "SIGHUP") in the log.
func (c *Controller) Reload(trigger string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.setStatus(func(s *health.ConfigStatus) { s.LastReloadAt = &now })
	file := c.running.File
	loaded, err := config.Load(file, c.opts.Environ())
	if err == nil {
		err = c.check(loaded)
	}
	if err != nil {
		c.reject(file, trigger, err)
		return
	}

	next := c.running.Reloaded(loaded)
	restart := config.RestartNeeded(c.running, loaded)
	api := c.parseAPI(next)
	liveChanged := !sameLive(c.running, next)
	ch, err := c.apply(c.cameras(next, api), trigger)
	if err != nil {
		c.log.Warn("config reload not applied", "trigger", trigger, "error", err.Error())
		return
	}
	c.running, c.apiCams = next, api
	if liveChanged {
		c.opts.Live(next)
	}
	c.reportRestart(restart)
	result := telemetry.ReloadUnchanged
	if ch.Any() || liveChanged {
		result = telemetry.ReloadApplied
		c.changed(now)
	}
	c.setStatus(func(s *health.ConfigStatus) {
		s.LastResult, s.LastError, s.Problems = result, "", nil
	})
	c.opts.Reloaded(result)
	c.log.Info("config reloaded", "trigger", trigger, "file", file, "result", result,
		"added", nonNil(ch.Added), "removed", nonNil(ch.Removed), "rebuilt", nonNil(ch.Rebuilt))
}

// check plans every file camera that would start or change, so a camera
// that cannot run here (no decoder for its codec) rejects the reload like
// any other problem.
func (c *Controller) check(loaded *config.Config) error {
	var probs config.Problems
	runningByID := map[string]config.Camera{}
	for _, cam := range c.running.Cameras {
		runningByID[cam.ID] = cam
	}
	for i, cam := range loaded.Cameras {
		if prev, ok := runningByID[cam.ID]; ok && reflect.DeepEqual(prev, cam) {
			continue
		}
		if err := c.svc.Check(cam); err != nil {
			probs = append(probs, config.Problem{Path: fmt.Sprintf("cameras[%d]", i), Msg: err.Error()})
		}
	}
	if len(probs) > 0 {
		return &probs
	}
	return nil
}

// reject keeps the running configuration after a failed reload and says
// why: one log line per problem, /health and the reload counter.
func (c *Controller) reject(file, trigger string, err error) {
	var probs config.Problems
	var list []health.Problem
	if errors.As(err, &probs) {
		for _, p := range probs {
			c.log.Error("config problem", "file", file, "path", p.Path, "problem", p.Msg)
			list = append(list, health.Problem{Path: p.Path, Message: p.Msg})
		}
	} else {
		c.log.Error("config problem", "file", file, "path", "", "problem", err.Error())
		list = []health.Problem{{Message: err.Error()}}
	}
	msg := fmt.Sprintf("%d problem(s)", len(list))
	if len(list) > 0 {
		first := list[0].Message
		if list[0].Path != "" {
			first = list[0].Path + ": " + first
		}
		msg += ", first: " + first
	}
	c.log.Error("config reload rejected: the running configuration is kept", "trigger", trigger, "file", file, "problems", len(list))
	c.setStatus(func(s *health.ConfigStatus) {
		s.LastResult, s.LastError, s.Problems = telemetry.ReloadInvalid, msg, list
	})
	c.opts.Reloaded(telemetry.ReloadInvalid)
}

// reportRestart records the settings that changed in the file but need a
// restart, and logs each one the first time it is seen.
func (c *Controller) reportRestart(keys []string) {
	prev := c.Status().RestartNeeded
	for _, k := range keys {
		if !slices.Contains(prev, k) {
			c.log.Warn("config: restart needed for "+k+": the file changed it, the running value is kept until gstcapture restarts", "key", k)
		}
	}
	c.setStatus(func(s *health.ConfigStatus) { s.RestartNeeded = keys })
}

// sameLive reports whether a and b agree on every setting a reload applies
// besides the cameras.
func sameLive(a, b *config.Config) bool {
	return reflect.DeepEqual(a.Defaults, b.Defaults) && a.Health == b.Health && a.Log.Level == b.Log.Level &&
		a.Shutdown == b.Shutdown && a.HTTP.Auth.TokensFile == b.HTTP.Auth.TokensFile &&
		slices.Equal(a.HTTP.Auth.Tokens, b.HTTP.Auth.Tokens)
}

func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

// LoadAPI reads the API's cameras from Redis and applies them. Until it
// succeeds the file's cameras run alone; Start retries it.
func (c *Controller) LoadAPI(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loadAPI(ctx)
}

func (c *Controller) loadAPI(ctx context.Context) error {
	if c.loaded {
		return nil
	}
	return c.readAPI(ctx, "camera API entries read from Redis")
}

// SyncAPI reads the API's cameras again and applies what changed in Redis
// since (another gstcapture on the same Redis, or a hand edit of the hash).
func (c *Controller) SyncAPI(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readAPI(ctx, "camera API entries changed in Redis")
}

// readAPI reads the hash and, when it differs from what was read last,
// parses and applies it. Caller holds c.mu.
func (c *Controller) readAPI(ctx context.Context, trigger string) error {
	entries, exists, err := c.store.all(ctx)
	if err == nil && c.loaded && !exists && len(c.api) > 0 {
		// Not deleted through any gstcapture (the marker would be there):
		// Redis lost the hash. The cameras keep running and are written back.
		c.log.Warn("the camera API's hash is gone from Redis (restarted without persistence?): its cameras keep running and are written back",
			"key", c.store.key, "cameras", len(c.api))
		return c.store.restore(ctx, c.api)
	}
	if err != nil {
		if !c.loaded {
			c.setStatus(func(s *health.ConfigStatus) { s.APICameras.Error = "cannot read them from Redis: " + err.Error() })
		}
		return err
	}
	if c.loaded && reflect.DeepEqual(entries, c.api) {
		return nil
	}
	parsed := map[string]config.Camera{}
	for id, entry := range entries {
		cam, probs := c.running.ParseCamera(id, entry)
		if len(probs) > 0 {
			// Stored while valid, so the environment changed (or the hash
			// was edited): it stays in Redis, and a PUT or a restart with
			// the variable set fixes it. A camera it ran as keeps running.
			c.log.Error("camera API entry in Redis is not valid here: the camera is not started or changed", "camera_id", id,
				"key", c.store.key, "problems", probs.Error())
			if prev, ok := c.apiCams[id]; ok {
				parsed[id] = prev
			}
			continue
		}
		parsed[id] = cam
	}
	first := !c.loaded
	c.api, c.apiCams, c.loaded = entries, parsed, true
	ch, err := c.apply(c.cameras(c.running, parsed), trigger)
	if err != nil {
		return err
	}
	if ch.Any() {
		c.changed(time.Now())
	}
	c.setStatus(func(s *health.ConfigStatus) { s.APICameras = health.APICameras{Loaded: true, Count: len(entries)} })
	if first {
		c.log.Info("camera API entries read from Redis", "key", c.store.key, "cameras", len(entries))
	}
	return nil
}

// syncEvery is how often the API's cameras are read again from Redis once
// loaded: one HGETALL per period, and a change made elsewhere runs here
// within it.
const syncEvery = 10 * time.Second

// syncAPI reads the API's cameras until ctx ends: with a growing delay
// until the first read succeeds, then every syncEvery and on Options.Sync.
func (c *Controller) syncAPI(ctx context.Context) {
	delay := time.Second
	failing := false
	for {
		c.mu.Lock()
		loaded := c.loaded
		c.mu.Unlock()
		var err error
		if loaded {
			err = c.SyncAPI(ctx)
		} else {
			err = c.LoadAPI(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		wait := syncEvery
		switch {
		case err != nil && !loaded:
			c.log.Warn("camera API entries not read from Redis yet; the file's cameras run meanwhile", "key", c.store.key, "retry_in", delay, "error", err.Error())
			wait, delay = delay, min(2*delay, 30*time.Second)
		case err != nil && !failing:
			c.log.Warn("camera API entries cannot be read from Redis; the cameras run as they are", "key", c.store.key, "error", err.Error())
			failing = true
		case err == nil:
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-c.opts.Sync: // nil without a fleet: never ready
		}
	}
}

// PutCamera implements health.CameraAdmin: it validates entry as the
// file's cameras are validated, stores it in Redis, then starts or
// rebuilds the camera. A dry run stops after the validation.
func (c *Controller) PutCamera(ctx context.Context, id string, body []byte, dryRun bool) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.fileCamera(id); err != nil {
		return false, err
	}
	entry, err := config.DecodeEntry(body)
	if err != nil {
		return false, &health.CameraError{Status: http.StatusBadRequest, Message: "the body must be one JSON object with the keys of a cameras[] entry: " + err.Error()}
	}
	cam, probs := c.running.ParseCamera(id, entry)
	if len(probs) == 0 {
		if err := c.svc.Check(cam); err != nil {
			probs = config.Problems{{Path: "codec", Msg: err.Error()}}
		}
	}
	if len(probs) > 0 {
		list := make([]health.Problem, len(probs))
		for i, p := range probs {
			list[i] = health.Problem{Path: p.Path, Message: p.Msg}
		}
		return false, &health.CameraError{Status: http.StatusUnprocessableEntity,
			Message: fmt.Sprintf("camera %s: %d problem(s) in the entry", id, len(probs)), Problems: list}
	}
	if dryRun {
		_, existed := c.apiCams[id]
		return !existed, nil
	}
	if err := c.loadAPI(ctx); err != nil {
		return false, unavailable("read the camera API's cameras", err)
	}
	stored := maps.Clone(entry)
	stored["id"] = id
	if err := c.store.put(ctx, id, stored); err != nil {
		return false, unavailable("store the camera", err)
	}
	c.stored()
	_, existed := c.apiCams[id]
	c.api[id], c.apiCams[id] = stored, cam
	ch, err := c.apply(c.cameras(c.running, c.apiCams), "PUT /api/v1/cameras/"+id)
	if err != nil {
		return false, &health.CameraError{Status: http.StatusServiceUnavailable, Message: err.Error()}
	}
	if ch.Any() {
		c.changed(time.Now())
	}
	c.setStatus(func(s *health.ConfigStatus) { s.APICameras.Count = len(c.api) })
	return !existed, nil
}

// DeleteCamera implements health.CameraAdmin.
func (c *Controller) DeleteCamera(ctx context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.fileCamera(id); err != nil {
		return err
	}
	if err := c.loadAPI(ctx); err != nil {
		return unavailable("read the camera API's cameras", err)
	}
	if _, ok := c.api[id]; !ok {
		return &health.CameraError{Status: http.StatusNotFound, Message: fmt.Sprintf("unknown camera %q", id)}
	}
	if err := c.store.remove(ctx, id); err != nil {
		return unavailable("delete the camera", err)
	}
	c.stored()
	delete(c.api, id)
	delete(c.apiCams, id)
	ch, err := c.apply(c.cameras(c.running, c.apiCams), "DELETE /api/v1/cameras/"+id)
	if err != nil {
		return &health.CameraError{Status: http.StatusServiceUnavailable, Message: err.Error()}
	}
	if ch.Any() {
		c.changed(time.Now())
	}
	c.setStatus(func(s *health.ConfigStatus) { s.APICameras.Count = len(c.api) })
	return nil
}

// CameraEntry implements health.CameraAdmin: the camera API's entry of
// camera id as stored (the camera API refuses a clear password, so it
// holds none), for the console's edit form.
func (c *Controller) CameraEntry(ctx context.Context, id string) (map[string]any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.fileCamera(id); err != nil {
		return nil, err
	}
	if err := c.loadAPI(ctx); err != nil {
		return nil, unavailable("read the camera API's cameras", err)
	}
	entry, ok := c.api[id]
	if !ok {
		return nil, &health.CameraError{Status: http.StatusNotFound, Message: fmt.Sprintf("unknown camera %q", id)}
	}
	return maps.Clone(entry), nil
}

// stored tells Options.Stored that the hash changed.
func (c *Controller) stored() {
	if c.opts.Stored != nil {
		c.opts.Stored()
	}
}

// RestartCamera implements health.CameraAdmin.
func (c *Controller) RestartCamera(id string) error {
	switch err := c.svc.Restart(id); {
	case errors.Is(err, capture.ErrUnknownCamera):
		return &health.CameraError{Status: http.StatusNotFound, Message: fmt.Sprintf("unknown camera %q", id)}
	case errors.Is(err, capture.ErrDisabled):
		return &health.CameraError{Status: http.StatusConflict, Message: fmt.Sprintf("camera %q is disabled (enabled: false): enable it to capture it", id)}
	default:
		return err
	}
}

// fileCamera refuses a change to a camera of the configuration file.
// Caller holds c.mu.
func (c *Controller) fileCamera(id string) error {
	for _, cam := range c.running.Cameras {
		if cam.ID == id {
			return &health.CameraError{Status: http.StatusConflict,
				Message: fmt.Sprintf("camera %q is configured in the file %s: change it there (the API changes only the cameras it created)", id, c.running.File)}
		}
	}
	return nil
}

func unavailable(what string, err error) error {
	return &health.CameraError{Status: http.StatusServiceUnavailable,
		Message: fmt.Sprintf("cannot %s: Redis (redis.url) does not answer: %s; nothing was changed", what, err)}
}

// store is the Redis hash of the API's cameras: field = id, value = the
// entry as JSON, with references to credentials, never their values.
type store struct {
	log     *slog.Logger
	client  redis.UniversalClient
	key     string
	timeout time.Duration
}

func (s *store) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, s.timeout)
}

// marker is a field every write puts in the hash besides the cameras (no
// camera id starts with "."), so the hash exists once written, even with
// no camera left: a hash that is gone was lost (a Redis restarted without
// persistence), not emptied through the API.
const marker = ".gstcapture"

// all returns the stored entries, and whether the hash exists at all.
func (s *store) all(parent context.Context) (map[string]map[string]any, bool, error) {
	ctx, cancel := s.ctx(parent)
	defer cancel()
	raw, err := s.client.HGetAll(ctx, s.key).Result()
	if err != nil {
		return nil, false, err
	}
	out := make(map[string]map[string]any, len(raw))
	for id, js := range raw {
		if strings.HasPrefix(id, ".") {
			continue
		}
		entry, err := config.DecodeEntry([]byte(js))
		if err != nil {
			// Not ours, or damaged: skipped, not fatal for the others.
			s.log.Error("camera API entry in Redis is not a JSON object; skipped", "key", s.key, "camera_id", id, "error", err.Error())
			continue
		}
		out[id] = entry
	}
	return out, len(raw) > 0, nil
}

func (s *store) put(parent context.Context, id string, entry map[string]any) error {
	js, err := json.Marshal(entry)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(parent)
	defer cancel()
	return s.client.HSet(ctx, s.key, id, js, marker, "1").Err()
}

// restore writes entries back into a hash that was lost.
func (s *store) restore(parent context.Context, entries map[string]map[string]any) error {
	for id, e := range entries {
		if err := s.put(parent, id, e); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) remove(parent context.Context, id string) error {
	ctx, cancel := s.ctx(parent)
	defer cancel()
	return s.client.HDel(ctx, s.key, id).Err()
}
