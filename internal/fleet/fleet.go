package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"gstcapture/internal/capture"
	"gstcapture/internal/config"
	"gstcapture/internal/health"
	"gstcapture/internal/lease"
	"gstcapture/internal/publish"
)

// Service is the capture service a replica hands its cameras to
// (*capture.Service).
type Service interface {
	Apply(cams []config.Camera) (capture.Changes, error)
	Restart(id string) error
	Check(cam config.Camera) error
	// Lost marks a camera whose lease is gone: its ring is discarded when
	// it stops.
	Lost(id string)
	// SetFleetShare gives the publisher this replica's part of the Redis
	// memory budget.
	SetFleetShare(f float64)
}

// Recorder receives the fleet's measurements (telemetry.Metrics).
type Recorder interface {
	// FleetOwned reports the cameras this replica holds of the set's total.
	FleetOwned(owned, total int)
	FleetReplicas(n int)
	// FleetHandoff counts a camera taken (direction "in": reason new,
	// released or expired) or given up (direction "out": rebalance,
	// shutdown, lost or removed).
	FleetHandoff(direction, reason string)
	FleetRenewFailure()
	// FleetCommands counts commands the coordination sent to Redis.
	FleetCommands(n int)
}

// Options configure a Fleet.
type Options struct {
	Recorder Recorder
	Timeout  time.Duration // per Redis round trip (redis.timeout)
}

// Handoff reasons.
const (
	InNew      = "new"      // the camera had no owner before
	InReleased = "released" // its owner gave it up (rebalance, shutdown)
	InExpired  = "expired"  // its owner's lease ran out (a crash, a replica cut off)

	OutRebalance = "rebalance" // placement moved it to another replica
	OutShutdown  = "shutdown"  // this replica is stopping
	OutLost      = "lost"      // the lease ran out here, or Redis refused a write under it
	OutRemoved   = "removed"   // the camera left the camera set
)

// held is a lease this replica holds.
type held struct {
	epoch uint64
	// renewed is when the newest successful renewal (or the acquisition)
	// was sent: Redis's lease runs at least until renewed + lease.
	renewed time.Time
	leaving bool // being stopped: no longer captured, the lease still held for the flush
}

// Fleet is this replica's part of the fleet: it keeps the whole camera
// set, places it, holds the leases of the cameras placed here and runs
// only those in the capture service. It implements liveconfig.Service
// (the controller's changes arrive here) and publish.Fence.
type Fleet struct {
	svc    Service
	client redis.UniversalClient
	log    *slog.Logger
	rec    Recorder
	id     string
	ttl    time.Duration // fleet.lease
	margin time.Duration // self-fencing: stop this long before Redis's lease can end
	max    int
	prefix string
	stream string // redis.stream, the key template
	tmo    time.Duration

	replicasKey, events string

	mu       sync.Mutex
	all      []config.Camera
	owned    map[string]*held
	members  []Member
	beats    map[string]time.Time // members' last heartbeats, Redis's clock
	beatNow  time.Time            // Redis's clock at the newest heartbeat
	joined   bool                 // a heartbeat succeeded
	stopping bool
	retryAt  time.Time // the soonest a held-elsewhere lease or a member's heartbeat runs out

	applyMu sync.Mutex     // one Apply of the service at a time
	reap    sync.WaitGroup // selfFence's removals of lost cameras
	kick    chan struct{}
	// sync is signalled when another replica stored a change of the
	// camera API's hash (liveconfig.Options.Sync).
	sync   chan struct{}
	warned map[string]time.Time // rate-limited warnings, by text
}

// New returns the fleet of a replica running cfg, which hands its cameras
// to svc once Attach is called. client reaches the fleet's Redis.
func New(cfg *config.Config, client redis.UniversalClient, log *slog.Logger, opts Options) (*Fleet, error) {
	id := cfg.Fleet.ReplicaID
	if id == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nil, fmt.Errorf("fleet.replica_id: empty, and the host name cannot be read (%v): set it", err)
		}
		id = h
	}
	rec := opts.Recorder
	if rec == nil {
		rec = nopRecorder{}
	}
	f := &Fleet{
		client: client, log: log.With("component", "fleet", "replica_id", id), rec: rec, id: id,
		ttl: cfg.Fleet.Lease, margin: cfg.Fleet.Lease / 5, max: cfg.Fleet.MaxCameras,
		prefix: cfg.Fleet.Key, stream: cfg.Redis.Stream, tmo: opts.Timeout,
		replicasKey: cfg.Fleet.Key + ":replicas", events: cfg.Fleet.Key + ":events",
		all: slices.Clone(cfg.Cameras), owned: map[string]*held{}, beats: map[string]time.Time{},
		kick: make(chan struct{}, 1), sync: make(chan struct{}, 1), warned: map[string]time.Time{},
	}
	if f.tmo <= 0 {
		f.tmo = 2 * time.Second
	}
	return f, nil
}

// Attach sets the capture service and where measurements go (rec may be
// nil); call it before Run.
func (f *Fleet) Attach(svc Service, rec Recorder) {
	f.svc = svc
	if rec != nil {
		f.rec = rec
	}
}

// ID is this replica's id.
func (f *Fleet) ID() string { return f.id }

func (f *Fleet) keys(cameraID string) lease.Keys {
	return lease.KeysFor(f.prefix, publish.StreamKey(f.stream, cameraID))
}

// Token implements publish.Fence.
func (f *Fleet) Token(cameraID string) (publish.FenceToken, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.owned[cameraID]
	if h == nil {
		return publish.FenceToken{}, false
	}
	return publish.FenceToken{Keys: f.keys(cameraID), Owner: f.id, Epoch: h.epoch, TTL: f.ttl}, true
}

// Lost implements publish.Fence: Redis refused a write of the camera
// under epoch, so another replica holds its lease.
func (f *Fleet) Lost(cameraID string, epoch uint64) {
	f.mu.Lock()
	h := f.owned[cameraID]
	if h != nil && h.epoch == epoch && !h.leaving {
		// Expire it now; the fence check stops it.
		h.renewed = time.Time{}
	}
	f.mu.Unlock()
	f.poke()
}

// Renewed implements publish.Fence: a write stored under the lease
// renewed it in Redis (lease.FencedXAdd), so a camera that publishes
// needs no renewal of its own.
func (f *Fleet) Renewed(cameraID string, epoch uint64, at time.Time) {
	f.mu.Lock()
	if h := f.owned[cameraID]; h != nil && h.epoch == epoch && !h.leaving && at.After(h.renewed) && !h.renewed.IsZero() {
		h.renewed = at
	}
	f.mu.Unlock()
}

func (f *Fleet) poke() { signal(f.kick) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// eventCameras is the event of a change stored in the camera API's hash.
const eventCameras = "cameras"

// CamerasStored tells the other replicas that this one stored a change of
// the camera API's hash (liveconfig.Options.Stored): they read it at once
// rather than at their next periodic read.
func (f *Fleet) CamerasStored() { f.publish(context.Background(), eventCameras) }

// CamerasChanged is signalled when another replica stored a change of the
// camera API's hash (liveconfig.Options.Sync).
func (f *Fleet) CamerasChanged() <-chan struct{} { return f.sync }

// Apply makes cams the fleet's camera set (liveconfig.Service): the
// service runs those of them this replica holds; placement takes up the
// others at once.
func (f *Fleet) Apply(cams []config.Camera) (capture.Changes, error) {
	f.mu.Lock()
	f.all = slices.Clone(cams)
	f.mu.Unlock()
	ch, err := f.applyOwned()
	f.poke()
	return ch, err
}

// Check implements liveconfig.Service: a camera is checked on every
// replica, whoever captures it.
func (f *Fleet) Check(cam config.Camera) error { return f.svc.Check(cam) }

// Restart rebuilds a camera's pipeline when this replica captures it.
func (f *Fleet) Restart(id string) error {
	f.mu.Lock()
	h, known := f.owned[id], f.inSet(id)
	f.mu.Unlock()
	if h == nil || h.leaving {
		if !known {
			return capture.ErrUnknownCamera
		}
		owner := f.ownerOf(id)
		return &health.CameraError{Status: http.StatusConflict,
			Message: fmt.Sprintf("camera %q is captured by replica %q, not %q: restart it there (GET /api/v1/fleet lists the owners)", id, owner, f.id)}
	}
	return f.svc.Restart(id)
}

// inSet reports whether id is in the camera set. Caller holds f.mu.
func (f *Fleet) inSet(id string) bool {
	return slices.ContainsFunc(f.all, func(c config.Camera) bool { return c.ID == id })
}

// ownerOf is the replica holding id's lease in Redis, else the member
// whose heartbeat says it holds id, else "".
func (f *Fleet) ownerOf(id string) string {
	ctx, cancel := f.ctx(context.Background())
	defer cancel()
	if v, err := f.client.Get(ctx, f.keys(id).Lease).Result(); err == nil {
		owner, _, _ := strings.Cut(v, " ")
		return owner
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.members {
		if slices.Contains(m.Cameras, id) {
			return m.ID
		}
	}
	return ""
}

// applyOwned runs in the service the cameras of the set this replica
// holds (not those leaving), and gives the publisher its budget share.
func (f *Fleet) applyOwned() (capture.Changes, error) {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.mu.Lock()
	var mine []config.Camera
	for _, c := range f.all {
		if h := f.owned[c.ID]; h != nil && !h.leaving {
			mine = append(mine, c)
		}
	}
	n, total := len(mine), len(f.all)
	f.mu.Unlock()
	if total > 0 {
		f.svc.SetFleetShare(float64(max(n, 1)) / float64(total))
	}
	f.rec.FleetOwned(n, total)
	return f.svc.Apply(mine)
}

// Run coordinates until ctx is done: heartbeats, renewals and placement
// every lease/3, at once on another replica's news (pub/sub) and when a
// lease or a heartbeat is due to run out; the self-fencing check every
// lease/20. It returns when ctx is done, leaving the leases held: Release
// gives them up once the service has flushed.
func (f *Fleet) Run(ctx context.Context) {
	sub := f.client.Subscribe(ctx, f.events)
	f.rec.FleetCommands(1)
	defer sub.Close()
	go func() {
		for msg := range sub.Channel() {
			what, from, _ := strings.Cut(msg.Payload, " ")
			if from == f.id {
				continue
			}
			if what == eventCameras {
				signal(f.sync)
			}
			f.poke()
		}
	}()
	// The self-fencing check has its own goroutine: a round waits up to
	// redis.timeout for each round trip to a Redis that does not answer,
	// and the check must not wait behind it.
	fenceDone := make(chan struct{})
	defer f.reap.Wait()
	defer func() { <-fenceDone }()
	go func() {
		defer close(fenceDone)
		fence := time.NewTicker(max(f.ttl/20, 20*time.Millisecond))
		defer fence.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-fence.C:
				f.selfFence()
			}
		}
	}()
	beat := time.NewTicker(f.ttl / 3)
	defer beat.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	f.loadScripts(ctx)
	f.tick(ctx)
	for {
		f.mu.Lock()
		at := f.retryAt
		f.retryAt = time.Time{}
		f.mu.Unlock()
		if !at.IsZero() {
			retry.Reset(max(time.Until(at), 5*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			f.tick(ctx)
		case <-f.kick:
			// Several events in a burst (a replica leaving releases all its
			// cameras) make one round.
			if !sleep(ctx, 20*time.Millisecond) {
				return
			}
			f.tick(ctx)
		case <-retry.C:
			f.tick(ctx)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// loadScripts loads the lease scripts, so that the first round's EVALSHAs
// find them (on every master of a cluster).
func (f *Fleet) loadScripts(parent context.Context) {
	ctx, cancel := f.ctx(parent)
	defer cancel()
	for _, s := range []*redis.Script{lease.Acquire, lease.Renew, lease.Release, lease.Heartbeat} {
		_ = s.Load(ctx, f.client).Err()
	}
	f.rec.FleetCommands(4)
}

// payload is what a replica tells the others in its heartbeat.
type payload struct {
	Max     int      `json:"max_cameras"`
	Cameras []string `json:"cameras"`
}

// tick is one round: heartbeat, renewals, placement, then the leases to
// give up and to take.
func (f *Fleet) tick(parent context.Context) {
	if err := f.heartbeat(parent); err != nil {
		f.rec.FleetRenewFailure()
		f.warn("fleet: heartbeat failed; this replica's cameras stop before their leases can run out unless Redis takes the heartbeats again", err)
		f.selfFence()
		return
	}
	f.renew(parent)
	f.selfFence()

	f.mu.Lock()
	if f.stopping {
		f.mu.Unlock()
		return
	}
	ids := make([]string, len(f.all))
	for i, c := range f.all {
		ids[i] = c.ID
	}
	place := Place(ids, f.members)
	var give, take []string
	for id, h := range f.owned {
		if !h.leaving && place[id] != f.id {
			h.leaving = true
			give = append(give, id)
		}
	}
	for _, id := range ids {
		if place[id] == f.id && f.owned[id] == nil {
			take = append(take, id)
		}
	}
	f.mu.Unlock()
	slices.Sort(give)
	if len(give) > 0 {
		f.giveUp(parent, give, func(id string) string {
			if f.inSetLocked(id) {
				return OutRebalance
			}
			return OutRemoved
		})
	}
	if len(take) > 0 && f.acquire(parent, take) > 0 {
		if _, err := f.applyOwned(); err != nil {
			f.log.Error("fleet: cannot start the cameras acquired", "error", err)
		}
	}
}

func (f *Fleet) inSetLocked(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inSet(id)
}

func (f *Fleet) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(parent), f.tmo)
}

// heartbeat tells the others this replica is alive and what it holds,
// and reads the live members.
func (f *Fleet) heartbeat(parent context.Context) error {
	f.mu.Lock()
	p := payload{Max: f.max, Cameras: []string{}}
	for id := range f.owned {
		p.Cameras = append(p.Cameras, id)
	}
	first := !f.joined
	f.mu.Unlock()
	slices.Sort(p.Cameras)
	body, _ := json.Marshal(p)
	ctx, cancel := f.ctx(parent)
	defer cancel()
	res, err := lease.Heartbeat.Run(ctx, f.client, []string{f.replicasKey}, f.id, body, f.ttl.Milliseconds(), "").Slice()
	f.rec.FleetCommands(1)
	if err != nil {
		return err
	}
	if len(res) < 1 {
		return errors.New("heartbeat: empty reply")
	}
	now, _ := res[0].(int64)
	redisNow := time.UnixMilli(now)
	var ms []Member
	beats := map[string]time.Time{}
	soonest := time.Time{}
	for i := 1; i+1 < len(res); i += 2 {
		id, _ := res[i].(string)
		val, _ := res[i+1].(string)
		tsText, js, ok := strings.Cut(val, " ")
		ts, err := strconv.ParseInt(tsText, 10, 64)
		var pl payload
		if !ok || err != nil || json.Unmarshal([]byte(js), &pl) != nil || id == "" {
			f.warn("fleet: a member's heartbeat in "+f.replicasKey+" does not parse; it is left out of placement", fmt.Errorf("member %q", id))
			continue
		}
		ms = append(ms, Member{ID: id, Max: pl.Max, Cameras: pl.Cameras})
		beats[id] = time.UnixMilli(ts)
		// When this member's heartbeat runs out, placement changes.
		if id != f.id {
			out := time.Now().Add(time.UnixMilli(ts).Add(f.ttl).Sub(redisNow) + 10*time.Millisecond)
			if soonest.IsZero() || out.Before(soonest) {
				soonest = out
			}
		}
	}
	f.mu.Lock()
	f.members, f.beats, f.beatNow, f.joined = ms, beats, redisNow, true
	f.retryAt = soonest
	f.mu.Unlock()
	f.rec.FleetReplicas(len(ms))
	if first {
		f.log.Info("fleet: joined", "replicas", len(ms), "lease", f.ttl)
		f.publish(parent, "join")
	}
	return nil
}

// publish tells the other replicas something changed ("<what> <id>").
func (f *Fleet) publish(parent context.Context, what string) {
	ctx, cancel := f.ctx(parent)
	defer cancel()
	_ = f.client.Publish(ctx, f.events, what+" "+f.id).Err()
	f.rec.FleetCommands(1)
}

// renew renews, in one round trip, the leases not renewed in the last
// sixth of the lease: those of cameras that did not publish in that time
// (a stored frame renews its lease, see Renewed).
func (f *Fleet) renew(parent context.Context) {
	now := time.Now()
	f.mu.Lock()
	type job struct {
		id    string
		epoch uint64
	}
	var jobs []job
	for id, h := range f.owned {
		if now.Sub(h.renewed) >= f.ttl/6 && !h.renewed.IsZero() {
			jobs = append(jobs, job{id, h.epoch})
		}
	}
	f.mu.Unlock()
	if len(jobs) == 0 {
		return
	}
	ctx, cancel := f.ctx(parent)
	defer cancel()
	pipe := f.client.Pipeline()
	cmds := make([]*redis.Cmd, len(jobs))
	for i, j := range jobs {
		k := f.keys(j.id)
		cmds[i] = lease.Renew.EvalSha(ctx, pipe, []string{k.Lease, k.Epoch},
			lease.Token(f.id, j.epoch), f.id, j.epoch, f.ttl.Milliseconds())
	}
	sent := time.Now()
	_, _ = pipe.Exec(ctx)
	f.rec.FleetCommands(len(jobs))
	if slices.ContainsFunc(cmds, func(c *redis.Cmd) bool { return redis.HasErrorPrefix(c.Err(), "NOSCRIPT") }) {
		// Redis restarted and forgot the script: load it, renew next tick.
		f.loadScripts(parent)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, j := range jobs {
		h := f.owned[j.id]
		if h == nil || h.epoch != j.epoch {
			continue
		}
		n, err := cmds[i].Int()
		switch {
		case err != nil:
			f.rec.FleetRenewFailure()
			f.warnLocked("fleet: lease renewal failed", err)
		case n == 0:
			f.log.Warn("fleet: lease lost: another replica took the camera", "camera_id", j.id, "epoch", j.epoch)
			h.renewed = time.Time{}
		default:
			if n == 2 {
				f.log.Info("fleet: lease taken back (Redis had lost it, nobody else took it)", "camera_id", j.id, "epoch", j.epoch)
			}
			h.renewed = sent
		}
	}
}

// selfFence stops every camera whose lease may have run out in Redis: a
// replica that cannot renew stops capturing before another can take over.
func (f *Fleet) selfFence() {
	now := time.Now()
	lost := map[string]*held{}
	f.mu.Lock()
	for id, h := range f.owned {
		if !h.leaving && now.After(h.renewed.Add(f.ttl-f.margin)) {
			h.leaving = true
			lost[id] = h
		}
	}
	f.mu.Unlock()
	if len(lost) == 0 {
		return
	}
	ids := slices.Sorted(maps.Keys(lost))
	for _, id := range ids {
		// Stops the pipeline now; what remains waits below.
		f.svc.Lost(id)
		f.log.Warn("fleet: camera released", "camera_id", id, "epoch", lost[id].epoch, "reason", OutLost)
		f.rec.FleetHandoff("out", OutLost)
	}
	// Removing the cameras waits for their publishers, whose round trip in
	// flight may wait redis.timeout on a Redis that does not answer; the
	// next camera's deadline must not wait behind it.
	f.reap.Add(1)
	go func() {
		defer f.reap.Done()
		if _, err := f.applyOwned(); err != nil && !errors.Is(err, capture.ErrStopping) {
			f.log.Error("fleet: cannot stop the cameras whose lease ran out", "error", err)
		}
		f.mu.Lock()
		for id, h := range lost {
			if f.owned[id] == h {
				delete(f.owned, id)
			}
		}
		f.mu.Unlock()
		f.rec.FleetOwned(f.ownedCount())
	}()
}

// ownedCount is how many cameras this replica holds, of how many.
func (f *Fleet) ownedCount() (owned, total int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.owned), len(f.all)
}

// giveUp stops the cameras ids (marked leaving), flushing their rings
// under their leases, then releases the leases and tells the others.
func (f *Fleet) giveUp(parent context.Context, ids []string, reason func(id string) string) {
	if _, err := f.applyOwned(); err != nil && !errors.Is(err, capture.ErrStopping) {
		f.log.Error("fleet: cannot stop the cameras given up", "error", err)
	}
	f.release(parent, ids, reason)
}

// release gives up the leases of ids in one round trip.
func (f *Fleet) release(parent context.Context, ids []string, reason func(id string) string) {
	ctx, cancel := f.ctx(parent)
	defer cancel()
	pipe := f.client.Pipeline()
	f.mu.Lock()
	type job struct {
		id    string
		epoch uint64
	}
	var jobs []job
	for _, id := range ids {
		if h := f.owned[id]; h != nil {
			jobs = append(jobs, job{id, h.epoch})
		}
	}
	f.mu.Unlock()
	for _, j := range jobs {
		k := f.keys(j.id)
		lease.Release.EvalSha(ctx, pipe, []string{k.Lease, k.Epoch}, lease.Token(f.id, j.epoch), f.id, j.epoch)
	}
	if len(jobs) > 0 {
		cmds, _ := pipe.Exec(ctx)
		f.rec.FleetCommands(len(jobs))
		if slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return redis.HasErrorPrefix(c.Err(), "NOSCRIPT") }) {
			// Redis forgot the script (a restart): once more with EVAL.
			for _, j := range jobs {
				k := f.keys(j.id)
				_ = lease.Release.Eval(ctx, f.client, []string{k.Lease, k.Epoch}, lease.Token(f.id, j.epoch), f.id, j.epoch).Err()
			}
		}
	}
	f.mu.Lock()
	for _, j := range jobs {
		delete(f.owned, j.id)
	}
	f.mu.Unlock()
	for _, j := range jobs {
		r := reason(j.id)
		f.rec.FleetHandoff("out", r)
		f.log.Info("fleet: camera released", "camera_id", j.id, "epoch", j.epoch, "reason", r)
	}
	f.rec.FleetOwned(f.ownedCount())
	if len(jobs) > 0 {
		f.publish(parent, "release")
	}
}

// acquire tries to take the leases of ids; it returns how many it took.
// A lease held elsewhere is tried again when it runs out.
func (f *Fleet) acquire(parent context.Context, ids []string) int {
	ctx, cancel := f.ctx(parent)
	defer cancel()
	pipe := f.client.Pipeline()
	cmds := make([]*redis.Cmd, len(ids))
	for i, id := range ids {
		k := f.keys(id)
		cmds[i] = lease.Acquire.EvalSha(ctx, pipe, []string{k.Lease, k.Epoch, publish.StreamKey(f.stream, id)}, f.id, f.ttl.Milliseconds())
	}
	sent := time.Now()
	_, _ = pipe.Exec(ctx)
	f.rec.FleetCommands(len(ids))
	if slices.ContainsFunc(cmds, func(c *redis.Cmd) bool { return redis.HasErrorPrefix(c.Err(), "NOSCRIPT") }) {
		// The scripts are loaded on first use, and again after Redis
		// restarted; then the cameras are taken on the next round.
		f.loadScripts(parent)
		f.mu.Lock()
		f.retryAt = time.Now()
		f.mu.Unlock()
		return 0
	}
	took := 0
	for i, id := range ids {
		res, err := cmds[i].Slice()
		if err != nil || len(res) < 3 {
			f.warn("fleet: cannot acquire a lease", fmt.Errorf("camera %s: %v", id, err))
			continue
		}
		if ok, _ := res[0].(int64); ok == 0 {
			pttl, _ := res[2].(int64)
			at := time.Now().Add(time.Duration(max(pttl, 0))*time.Millisecond + 10*time.Millisecond)
			f.mu.Lock()
			if f.retryAt.IsZero() || at.Before(f.retryAt) {
				f.retryAt = at
			}
			f.mu.Unlock()
			continue
		}
		epoch, _ := res[1].(int64)
		reason, _ := res[2].(string)
		f.mu.Lock()
		if f.stopping || !f.inSet(id) {
			f.mu.Unlock()
			// Taken while the set or the process changed: give it back.
			k := f.keys(id)
			_ = lease.Release.Run(ctx, f.client, []string{k.Lease, k.Epoch}, lease.Token(f.id, uint64(epoch)), f.id, epoch).Err()
			f.rec.FleetCommands(1)
			continue
		}
		f.owned[id] = &held{epoch: uint64(epoch), renewed: sent}
		f.mu.Unlock()
		took++
		f.rec.FleetHandoff("in", reason)
		f.log.Info("fleet: camera acquired", "camera_id", id, "epoch", epoch, "reason", reason)
	}
	return took
}

// Release gives up every lease this replica holds, after the service has
// stopped and flushed its cameras, leaves the fleet and tells the others,
// which take the cameras over at once.
func (f *Fleet) Release(ctx context.Context) {
	f.mu.Lock()
	f.stopping = true
	ids := make([]string, 0, len(f.owned))
	for id := range f.owned {
		ids = append(ids, id)
	}
	f.mu.Unlock()
	slices.Sort(ids)
	f.release(ctx, ids, func(string) string { return OutShutdown })
	c, cancel := f.ctx(ctx)
	defer cancel()
	_ = lease.Heartbeat.Run(c, f.client, []string{f.replicasKey}, f.id, "", f.ttl.Milliseconds(), "leave").Err()
	f.rec.FleetCommands(1)
	f.publish(ctx, "leave")
	f.log.Info("fleet: left", "released", len(ids))
}

// Joined reports whether a heartbeat has succeeded, for readiness.
func (f *Fleet) Joined() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.joined
}

// warn logs text at most once a minute.
func (f *Fleet) warn(text string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.warnLocked(text, err)
}

func (f *Fleet) warnLocked(text string, err error) {
	if t, ok := f.warned[text]; ok && time.Since(t) < time.Minute {
		return
	}
	f.warned[text] = time.Now()
	f.log.Warn(text, "error", err)
}

// Status answers GET /api/v1/fleet: the live members as of the newest
// heartbeat, and each camera's lease read from Redis now.
func (f *Fleet) Status(parent context.Context) (health.FleetStatus, error) {
	f.mu.Lock()
	st := health.FleetStatus{Enabled: true, ReplicaID: f.id, LeaseSeconds: f.ttl.Seconds(),
		Replicas: []health.FleetReplica{}, Cameras: []health.FleetCamera{}}
	for _, m := range f.members {
		st.Replicas = append(st.Replicas, health.FleetReplica{ID: m.ID, Cameras: nonNil(m.Cameras), MaxCameras: m.Max,
			LastHeartbeat: f.beats[m.ID].UTC(), Self: m.ID == f.id})
	}
	ids := make([]string, len(f.all))
	for i, c := range f.all {
		ids[i] = c.ID
	}
	f.mu.Unlock()
	slices.Sort(ids)
	ctx, cancel := f.ctx(parent)
	defer cancel()
	pipe := f.client.Pipeline()
	gets := make([]*redis.StringCmd, len(ids))
	ttls := make([]*redis.DurationCmd, len(ids))
	for i, id := range ids {
		k := f.keys(id)
		gets[i] = pipe.Get(ctx, k.Lease)
		ttls[i] = pipe.PTTL(ctx, k.Lease)
	}
	if len(ids) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return st, fmt.Errorf("fleet: reading the leases: %w", err)
		}
	}
	for i, id := range ids {
		c := health.FleetCamera{ID: id}
		if v, err := gets[i].Result(); err == nil {
			owner, ep, _ := strings.Cut(v, " ")
			c.Owner = owner
			c.Epoch, _ = strconv.ParseUint(ep, 10, 64)
			if d, err := ttls[i].Result(); err == nil && d > 0 {
				c.LeaseTTLSeconds = d.Seconds()
			}
		}
		st.Cameras = append(st.Cameras, c)
	}
	return st, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type nopRecorder struct{}

func (nopRecorder) FleetOwned(int, int)         {}
func (nopRecorder) FleetReplicas(int)           {}
func (nopRecorder) FleetHandoff(string, string) {}
func (nopRecorder) FleetRenewFailure()          {}
func (nopRecorder) FleetCommands(int)           {}
