package capture

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"gstcapture/internal/config"
	"gstcapture/internal/gsthost"
	"gstcapture/internal/membudget"
	"gstcapture/internal/shm"
	"gstcapture/internal/stats"
)

// Errors of Apply and Restart.
var (
	ErrStopping = errors.New("the service is shutting down")
	ErrDisabled = errors.New("camera is disabled (enabled: false)")
)

// Changes says what an Apply did, by camera id (each list sorted).
type Changes struct {
	Added     []string `json:"added,omitempty"`
	Removed   []string `json:"removed,omitempty"`
	Rebuilt   []string `json:"rebuilt,omitempty"` // effective settings changed: new pipeline, same counters and seq
	Unchanged []string `json:"-"`
	// Failed are cameras whose new settings could not be planned (no
	// decoder for the codec, a template error): an added one is not
	// started, a changed one keeps running as it was.
	Failed map[string]error `json:"-"`
}

// Any reports whether a camera was added, removed or rebuilt.
func (c Changes) Any() bool { return len(c.Added)+len(c.Removed)+len(c.Rebuilt) > 0 }

// Check reports whether cam can be planned here (a decoder for its codec,
// a pipeline that renders), without changing anything.
func (s *Service) Check(cam config.Camera) error {
	_, err := PlanCamera(cam, gsthost.HasElement)
	return err
}

// Apply makes cams the camera set: it starts the added cameras, stops the
// removed ones, and rebuilds those whose effective settings differ from
// what runs (a new pipeline, ring and validator; the counters and the seq
// sequence continue). A camera whose settings are equal is not touched: its
// pipeline, its connection and its seq go on as if nothing happened.
//
// A removed camera is stopped within the teardown deadline, its ring
// flushed within shutdown.timeout, and then its counters, metric series
// and share of the budgets are released. Its Redis stream stays.
func (s *Service) Apply(cams []config.Camera) (Changes, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	ch := Changes{Failed: map[string]error{}}
	if s.stopping {
		return ch, ErrStopping
	}
	want := make(map[string]config.Camera, len(cams))
	for _, c := range cams {
		want[c.ID] = c
	}
	s.mu.RLock()
	have := make(map[string]*camera, len(s.cams))
	for id, c := range s.cams {
		have[id] = c
	}
	s.mu.RUnlock()

	// Plan first: a camera that cannot be planned changes nothing.
	var stop, gone []*camera
	var next []*camera
	replaces := map[*camera]*camera{} // a rebuilt camera -> the one it replaces
	for _, id := range sortedKeys(want) {
		cc := want[id]
		old := have[id]
		if old != nil && reflect.DeepEqual(old.plan.Camera, cc) {
			ch.Unchanged = append(ch.Unchanged, id)
			continue
		}
		c, err := s.build(cc, old)
		if err != nil {
			ch.Failed[id] = err
			continue
		}
		next = append(next, c)
		if old != nil {
			stop = append(stop, old)
			replaces[c] = old
			ch.Rebuilt = append(ch.Rebuilt, id)
		} else {
			ch.Added = append(ch.Added, id)
		}
	}
	for _, id := range sortedKeys(have) {
		if _, ok := want[id]; !ok {
			gone = append(gone, have[id])
			ch.Removed = append(ch.Removed, id)
		}
	}

	// Stop what goes or is replaced, all at once: each is bounded by the
	// teardown deadline and the flush, and one wedged camera must not
	// hold up the others.
	var wg sync.WaitGroup
	for _, c := range append(slices.Clone(stop), gone...) {
		wg.Add(1)
		go func() { defer wg.Done(); s.stopCamera(c) }()
	}
	wg.Wait()
	// The seq goes on from the old pipeline's last frame, read once it has
	// stopped: it captured on while the new one was planned.
	for c, old := range replaces {
		c.seq.Store(old.seq.Load())
	}
	for _, c := range gone {
		id := c.plan.Camera.ID
		s.mu.Lock()
		delete(s.cams, id)
		s.mu.Unlock()
		s.retired[id] = c.seq.Load()
		s.pub.RemoveCamera(id)
		s.reg.Remove(id) // its counters, snapshot and metric series
		s.log.Info("camera removed", "camera_id", id)
	}
	s.mu.Lock()
	for _, c := range next {
		s.cams[c.plan.Camera.ID] = c
	}
	s.mu.Unlock()
	s.planMemory(s.Cameras())
	s.mu.Lock()
	for _, c := range next {
		s.register(c)
		s.start(c)
	}
	s.mu.Unlock()
	return ch, nil
}

// Restart rebuilds camera id's pipeline now (reconnect reason restart).
func (s *Service) Restart(id string) error {
	c := s.camera(id)
	switch {
	case c == nil:
		return ErrUnknownCamera
	case !c.plan.Camera.Enabled:
		return ErrDisabled
	}
	c.sup.Restart()
	return nil
}

// SetShutdownTimeout changes shutdown.timeout, which bounds the final
// flush and the flush of a removed camera's ring.
func (s *Service) SetShutdownTimeout(d time.Duration) { s.shutdownTimeout.Store(int64(d)) }

// build prepares camera cc: its plan, sink side and supervisor. prev is the
// camera it replaces (nil for a new one): its counters and its seq go on.
// A new camera with the id of one removed earlier continues that one's seq.
// Caller holds applyMu (or is New).
// Nothing runs yet, and nothing shared changes but the counters' entry.
func (s *Service) build(cc config.Camera, prev *camera) (*camera, error) {
	plan, err := PlanCamera(cc, gsthost.HasElement)
	if err != nil {
		return nil, err
	}
	rules := Rules(cc.Settings.Validation)
	if skipped := rules.PixelRulesSkipped(cc.Settings.Format); len(skipped) > 0 {
		s.log.Warn("format JPEG: validation."+strings.Join(skipped, " and validation.")+" do not run on JPEG frames (they read pixels, and the frames are compressed); set them off to silence this",
			"camera_id", cc.ID, "rules", strings.Join(skipped, ","))
	}
	st := s.reg.Add(cc.ID)
	c := newCamera(plan, st, rules, s.metrics.AddCamera(cc.ID), s.tracer)
	c.fit = ringFit{shared: &s.perCamera, batch: s.cfg.Redis.Batch, log: s.log}
	if cc.Settings.Delivery == config.DeliveryShm {
		c.fit.shmSlots = cc.Settings.ShmSlots
		c.shm = shm.NewWriter(shm.WriterOptions{Dir: s.cfg.Shm.Dir, CameraID: cc.ID, Instance: s.instance,
			Slots: cc.Settings.ShmSlots, GID: s.shmGID, Counter: &s.shmN})
	}
	switch n, retired := s.retired[cc.ID]; {
	case prev != nil:
		// Apply sets it again once prev has stopped.
		c.seq.Store(prev.seq.Load())
	case retired:
		// Removed earlier in this run: its seq goes on, so frame_id (camera,
		// instance, seq) never names two frames.
		c.seq.Store(n)
	}
	spec := gsthost.Spec{
		CameraID:         cc.ID,
		Launch:           plan.Launch,
		Codec:            plan.codecSpec(),
		User:             cc.User,
		Password:         cc.Password,
		StallTimeout:     cc.Settings.StallTimeout,
		ReconnectInitial: cc.Settings.Reconnect.Initial,
		ReconnectMax:     cc.Settings.Reconnect.Max,
		TeardownTimeout:  s.opts.TeardownTimeout,
		MaxWidth:         cc.Settings.MaxWidth,
		MaxHeight:        cc.Settings.MaxHeight,
		TLSCAFile:        cc.Settings.TLSCAFile,
	}
	s.secrets.Add(config.CameraSecrets([]config.Camera{cc})...)
	c.sup = gsthost.NewSupervisor(spec, st, c.onFrame, s.log, s.secrets.Redact, s.opts.Hooks)
	return c, nil
}

// register records a built camera's settings where they are shared: its
// source and state, its ring size, and its share of the Redis budget (a
// disabled camera takes none).
func (s *Service) register(c *camera) {
	cc := c.plan.Camera
	c.stats.SetSource(cc.Source)
	c.stats.SetRing(cc.Settings.RingSize, 0, false)
	c.stats.SetDelivery(cc.Settings.Delivery)
	if !cc.Enabled {
		s.pub.RemoveCamera(cc.ID)
		c.stats.SetState(stats.StateDisabled, "")
		return
	}
	s.pub.AddCamera(c.stats, float64(cc.Settings.FPS))
	if c.shm != nil {
		s.pub.SetSlots(cc.ID, c.shm)
	} else {
		s.pub.SetSlots(cc.ID, nil)
	}
}

// start runs camera c's supervisor and publisher when the service runs and
// the camera is enabled. Caller holds s.mu.
func (s *Service) start(c *camera) {
	cc := c.plan.Camera
	if s.run == nil || !cc.Enabled || c.supDone != nil {
		return
	}
	s.log.Info("camera started", "camera_id", cc.ID, "source", cc.Source, "url", s.secrets.Redact(cc.Location),
		"codec", cc.Codec, "decoder", c.plan.Decoder.Element)
	supCtx, stopSup := context.WithCancel(s.run.ctx)
	pubCtx, stopPub := context.WithCancel(s.run.pubCtx)
	c.stopSup, c.stopPub = stopSup, stopPub
	c.supDone, c.pubDone = make(chan struct{}), make(chan struct{})
	go func() { defer close(c.supDone); c.sup.Run(supCtx) }()
	go func() { defer close(c.pubDone); s.pub.Run(pubCtx, c.stats, c.ring) }()
}

// stopCamera stops camera c's pipeline (within the teardown deadline),
// then its publisher, and flushes its ring to Redis within
// shutdown.timeout; what it cannot publish is counted as shutdown.
func (s *Service) stopCamera(c *camera) {
	if c.supDone != nil {
		c.stopSup()
		<-c.supDone
		c.stopPub()
		<-c.pubDone
	}
	defer s.closeShm(c)
	if c.lost.Load() {
		s.pub.Discard(c.stats, c.ring, stats.DropFenced)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(s.shutdownTimeout.Load()))
	defer cancel()
	s.pub.Flush(ctx, c.stats, c.ring)
}

// closeShm removes camera c's shm segment, once its publisher is done:
// the camera is gone (or rebuilt, and its new pipeline makes its own).
func (s *Service) closeShm(c *camera) {
	if c.shm == nil {
		return
	}
	c.stats.SetShm("", 0)
	if err := c.shm.Close(); err != nil {
		s.log.Warn("delivery shm: removing the camera's segment failed", "camera_id", c.plan.Camera.ID, "err", err)
	}
}

// Lost marks camera id's fleet lease as gone and stops its pipeline now,
// without waiting: another replica may take the camera once the lease runs
// out. The Apply that then removes the camera waits for its publisher (a
// round trip in flight may wait redis.timeout for a Redis that does not
// answer) and drops its queued frames (fenced) instead of flushing them,
// since Redis would refuse them.
func (s *Service) Lost(id string) {
	s.mu.RLock()
	c := s.cams[id]
	var stop context.CancelFunc
	if c != nil {
		c.lost.Store(true)
		stop = c.stopSup
	}
	s.mu.RUnlock()
	if stop != nil {
		stop()
	}
}

// planMemory shares memory.budget out among the enabled cameras of cams.
func (s *Service) planMemory(cams []config.Camera) {
	n := 0
	for _, c := range cams {
		if c.Enabled {
			n++
		}
	}
	s.memMu.Lock()
	defer s.memMu.Unlock()
	s.mem = membudget.Plan(s.cfg.Memory.Budget, s.limit, n)
	s.perCamera.Store(s.mem.PerCamera)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// SetFleetShare gives the publisher this replica's part of the Redis
// memory budget: the share of the fleet's cameras it captures.
func (s *Service) SetFleetShare(f float64) { s.pub.SetFleetShare(f) }
