package capture

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"gstcapture/internal/config"
	"gstcapture/internal/frame"
	"gstcapture/internal/gsthost"
	"gstcapture/internal/membudget"
	"gstcapture/internal/publish"
	"gstcapture/internal/ring"
	"gstcapture/internal/shm"
	"gstcapture/internal/stats"
	"gstcapture/internal/telemetry"
	"gstcapture/internal/validate"
	"gstcapture/pipelines"
)

// Plan is what a camera will run: its decoder, its encoder (format JPEG)
// and launch string.
type Plan struct {
	Camera  config.Camera
	Decoder pipelines.Decoder
	Encoder pipelines.Encoder
	Launch  string
	// With codec auto, Decoder and Launch are empty: Auto holds a plan per
	// codec the camera may announce, and ProbeLaunch reads its SDP.
	Auto        map[string]Plan
	ProbeLaunch string
}

// PlanCamera chooses the decoder for cam, and the encoder for format JPEG
// (using have to test which element factories exist), and renders its
// launch string; with codec auto, one for each codec that has a decoder,
// and the SDP probe.
func PlanCamera(cam config.Camera, have func(string) bool) (Plan, error) {
	if cam.Codec == config.CodecAuto {
		return planAuto(cam, have)
	}
	s := cam.Settings
	dec, err := pipelines.ChooseDecoder(cam.Codec, s.Decoder, s.DecoderThreads, have)
	if err != nil {
		return Plan{}, fmt.Errorf("camera %s: %w", cam.ID, err)
	}
	enc, err := pipelines.ChooseEncoder(string(s.Format), dec, have)
	if err != nil {
		return Plan{}, fmt.Errorf("camera %s: %w", cam.ID, err)
	}
	launch, err := pipelines.Render(pipelines.ForCamera(cam, dec, enc))
	if err != nil {
		return Plan{}, fmt.Errorf("camera %s: render pipeline: %w", cam.ID, err)
	}
	return Plan{Camera: cam, Decoder: dec, Encoder: enc, Launch: launch}, nil
}

func planAuto(cam config.Camera, have func(string) bool) (Plan, error) {
	plan := Plan{Camera: cam, Auto: map[string]Plan{}}
	var errs []string
	for _, codec := range []string{"h264", "h265"} {
		c := cam
		c.Codec = codec
		p, err := PlanCamera(c, have)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		plan.Auto[codec] = p
	}
	if len(plan.Auto) == 0 {
		return Plan{}, fmt.Errorf("codec auto: no codec can be decoded: %s", strings.Join(errs, "; "))
	}
	probe, err := pipelines.RenderProbe(pipelines.ForCamera(cam, pipelines.Decoder{}, pipelines.Encoder{}))
	if err != nil {
		return Plan{}, fmt.Errorf("camera %s: render codec auto probe: %w", cam.ID, err)
	}
	plan.ProbeLaunch = probe
	return plan, nil
}

// codecSpec is what the supervisor needs to check or detect the codec.
func (p Plan) codecSpec() gsthost.CodecSpec {
	cs := gsthost.CodecSpec{Name: p.Camera.Codec, Decoder: p.Decoder.Element, ProbeLaunch: p.ProbeLaunch}
	if len(p.Auto) > 0 {
		cs.Auto = map[string]gsthost.CodecLaunch{}
		for codec, cp := range p.Auto {
			cs.Auto[codec] = gsthost.CodecLaunch{Launch: cp.Launch, Decoder: cp.Decoder.Element}
		}
	}
	return cs
}

// Options tune a Service beyond the configuration file.
type Options struct {
	Hooks           gsthost.Hooks
	TeardownTimeout time.Duration
	Version         string
	// SpanExporter replaces the OTLP exporter chosen from the environment.
	SpanExporter sdktrace.SpanExporter
	// ContainerLimit replaces the memory limit read from the cgroup files
	// (memory.budget auto); nil reads them.
	ContainerLimit *membudget.Limit
	// Secrets is where the service adds the secrets of the cameras it runs,
	// for whoever redacts logs (gsthost's log router); nil keeps its own.
	Secrets *config.SecretSet
	// Redis is the client to publish with, the caller's to close; nil
	// connects one from cfg.Redis (NewRedisClient), which the service
	// closes when it stops.
	Redis redis.UniversalClient
	// Fence writes every frame under its camera's fleet lease
	// (internal/fleet); nil outside a fleet.
	Fence publish.Fence
}

// Service runs the configured cameras, and changes them while it runs
// (Apply, Restart): each camera has its own supervisor and publisher
// goroutines, so starting, stopping or rebuilding one leaves the others'
// pipelines, sequences and connections alone.
type Service struct {
	cfg     *config.Config // the settings fixed at start; cameras come and go through Apply
	log     *slog.Logger
	reg     *stats.Registry
	pub     *publish.Publisher
	redis   redis.UniversalClient
	opts    Options
	secrets *config.SecretSet

	limit     membudget.Limit
	memMu     sync.Mutex
	mem       membudget.Split
	perCamera atomic.Int64 // mem.PerCamera, read by every camera's sink side

	shutdownTimeout atomic.Int64 // shutdown.timeout, live

	instance string        // this process run: frame_id's and the shm segments' names
	shmGID   int           // shm.group's id; -1: the process's group
	shmN     atomic.Uint64 // numbers the shm segments of this run

	metrics *telemetry.Metrics
	history *stats.History // the console's charts
	tracer  *telemetry.Tracer

	applyMu  sync.Mutex        // one change of the camera set at a time; Run's shutdown takes it too
	stopping bool              // under applyMu: Run is shutting down, no more changes
	retired  map[string]uint64 // under applyMu: the last seq of each camera removed in this run

	mu   sync.RWMutex
	cams map[string]*camera
	run  *running // set by Run
}

// running is what a camera started by a running service hangs off.
type running struct {
	ctx    context.Context // Run's: cancelled at shutdown
	pubCtx context.Context // the publishers', cancelled after every supervisor stopped
}

// The camera's counters are the one writer of its accounting; each part on
// a frame's way reports to them through an interface it declares.
var (
	_ ring.Reporter       = (*stats.Camera)(nil)
	_ publish.Tally       = (*stats.Camera)(nil)
	_ publish.Retention   = (*stats.Camera)(nil)
	_ publish.ShmReporter = (*stats.Camera)(nil)
	_ gsthost.Ledger      = (*stats.Camera)(nil)
)

// camera is one camera's sink side, the handler of its appsink: each
// frame is counted, validated and pushed into the ring here, and nowhere
// else.
type camera struct {
	plan      Plan
	stats     *stats.Camera
	validator *validate.Validator
	ring      *ring.Ring[*frame.Frame]
	sup       *gsthost.Supervisor
	seq       atomic.Uint64
	latSrc    atomic.Value // frame.CaptureSource last recorded
	obs       *telemetry.CameraObservers
	tracer    *telemetry.Tracer
	snap      snapshotter
	fit       ringFit
	// shm puts the pixels into shared memory (delivery shm); nil: into the
	// entries. The publish loop uses it, and stopCamera removes its segment.
	shm *shm.Writer
	// lost: the camera's fleet lease is gone, so its ring is discarded
	// (dropped as fenced) when it stops, not flushed.
	lost atomic.Bool

	// Set when the camera is started (Service.start), nil before.
	stopSup, stopPub context.CancelFunc
	supDone, pubDone chan struct{}
}

// ringFit sizes a camera's ring in bytes within its share of memory.budget
// whenever its frame size or its share changes (the first frame, a new
// resolution, a JPEG frame size that moved by an eighth, a camera added or
// removed).
type ringFit struct {
	share  int64         // frame bytes the camera may hold; 0 = no bound
	shared *atomic.Int64 // the service's current share, nil: share is fixed
	batch  int           // redis.batch
	// shmSlots, with delivery shm: the frames of the camera's segment,
	// which its share holds besides the ring.
	shmSlots int
	log      *slog.Logger
	size     frame.SizeEstimate // the frame size the ring is sized for; sink goroutine only
}

// New prepares a service: it renders every camera's pipeline and connects
// the Redis client (lazily: Redis may come up later).
func New(cfg *config.Config, log *slog.Logger, opts Options) (*Service, error) {
	rc := opts.Redis
	if rc == nil {
		c, err := NewRedisClient(cfg.Redis, log)
		if err != nil {
			return nil, err
		}
		rc = c
	}

	s := &Service{cfg: cfg, log: log, reg: stats.NewRegistry(), redis: rc, opts: opts, cams: map[string]*camera{}, retired: map[string]uint64{}, secrets: opts.Secrets}
	if s.secrets == nil {
		s.secrets = &config.SecretSet{}
	}
	s.secrets.Add(cfg.Secrets()...)
	s.shutdownTimeout.Store(int64(cfg.Shutdown.Timeout))
	limit := opts.ContainerLimit
	if limit == nil {
		l, err := membudget.ContainerLimit("/sys/fs/cgroup", "/proc/self/cgroup")
		if err != nil {
			// Not fatal: without the limit, auto means no bound, as on a
			// machine without one.
			log.Warn("memory.budget auto: cannot read the container's memory limit; frame memory is bounded by ring_size only", "error", err)
		}
		limit = &l
	}
	s.limit = *limit
	s.planMemory(cfg.Cameras)
	s.instance = publish.NewInstanceID()
	if err := s.prepareShm(cfg); err != nil {
		return nil, err
	}
	s.metrics = telemetry.NewMetrics(s, nil, telemetry.BuildInfo{Version: opts.Version, GStreamer: gsthost.Version()})
	s.history = stats.NewHistory(s.reg, s.metrics, 0, 0)
	var err error
	s.tracer, err = telemetry.NewTracer(context.Background(), s.metrics, telemetry.TracingOptions{
		SampleRatio: cfg.Tracing.SampleRatio,
		QueueSize:   cfg.Tracing.QueueSize,
		Exporter:    opts.SpanExporter,
		Version:     opts.Version,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	s.pub = publish.New(rc, publish.Options{
		Stream:       cfg.Redis.Stream,
		Retention:    cfg.Redis.Retention,
		MaxLen:       cfg.Redis.MaxLen,
		MemoryBudget: cfg.Redis.MemoryBudget,
		Batch:        cfg.Redis.Batch,
		Timeout:      cfg.Redis.Timeout,
		Instance:     s.instance,
		Fence:        opts.Fence,
	}, log, s.metrics.PublishRecorder(s.tracer))

	for _, cc := range cfg.Cameras {
		c, err := s.build(cc, nil)
		if err != nil {
			return nil, err
		}
		s.cams[cc.ID] = c
		s.register(c)
	}
	return s, nil
}

// NewRedisClient connects (lazily: Redis may come up later) to the Redis
// of rc: one server, or a Redis Cluster with redis.mode cluster.
func NewRedisClient(rc config.Redis, log *slog.Logger) (redis.UniversalClient, error) {
	// Deadlines come from the publisher's contexts; a retried pipeline could
	// store a batch twice; and redialling 5 times inside every round trip
	// while Redis is down would eat the shutdown flush deadline. No CLIENT
	// SETINFO on connect: one command fewer for the ACL user
	// (docker/redis/gstcapture.acl), and Redis 7.0 does not know it.
	warnTLS := func(tc *tls.Config, addr string) {
		if tc != nil && tc.InsecureSkipVerify {
			log.Warn("redis.url: rediss with skip_verify: the TLS certificate of Redis is not checked, so anyone on the path can read the frames and the password; give Redis a certificate the system trusts and drop skip_verify",
				"redis_host", addr)
		}
	}
	if rc.Mode == config.RedisCluster {
		o, err := redis.ParseClusterURL(rc.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url (mode cluster): %w", err)
		}
		o.ReadTimeout, o.WriteTimeout, o.DialTimeout = rc.Timeout, rc.Timeout, rc.Timeout
		o.ContextTimeoutEnabled = true
		o.MaxRetries = -1
		o.DialerRetries = 1
		o.DisableIdentity = true
		// No redirects: go-redis's cluster pipeline resends every command
		// of a node whose connection broke mid-reply (io.EOF) up to
		// MaxRedirects times, storing the frames that had run twice
		// (TestRedisClusterConnectionsKilled). A MOVED or ASK reply fails
		// its frames (counted redis_error) and triggers a reload of the
		// slot map, so the next batch goes to the right node.
		o.MaxRedirects = -1
		// A master that died answers no MOVED: only a reload of the slot
		// map finds its promoted replica, and go-redis reloads it every
		// minute by default (a lazy CLUSTER SLOTS while commands flow).
		o.ClusterStateReloadInterval = time.Second
		warnTLS(o.TLSConfig, strings.Join(o.Addrs, ","))
		return redis.NewClusterClient(o), nil
	}
	o, err := redis.ParseURL(rc.URL)
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	o.ReadTimeout, o.WriteTimeout, o.DialTimeout = rc.Timeout, rc.Timeout, rc.Timeout
	o.ContextTimeoutEnabled = true
	o.MaxRetries = -1
	o.DialerRetries = 1
	o.DisableIdentity = true
	warnTLS(o.TLSConfig, o.Addr)
	return redis.NewClient(o), nil
}

// newCamera assembles one camera's per-frame path: validator, ring and
// observers; the supervisor is added by New.
func newCamera(plan Plan, st *stats.Camera, rules validate.Rules, obs *telemetry.CameraObservers, tr *telemetry.Tracer) *camera {
	return &camera{plan: plan, stats: st, validator: validate.New(rules), ring: ring.New[*frame.Frame](plan.Camera.Settings.RingSize, st), obs: obs, tracer: tr}
}

// Rules converts a camera's validation settings; config has already
// checked every value.
func Rules(v config.Validation) validate.Rules {
	return validate.Rules{
		Black:   validate.BlackRule{Action: v.Black.Action, MaxLuma: v.Black.MaxLuma},
		Uniform: validate.UniformRule{Action: v.Uniform.Action, MaxStddev: v.Uniform.MaxStddev},
		Frozen:  validate.FrozenRule{Action: v.Frozen.Action, After: v.Frozen.After},
		Size:    validate.SizeRule{Action: v.Size.Action},
		Corrupt: validate.CorruptRule{Action: v.Corrupt.Action},
	}
}

// onFrame is the appsink's handler, on the Sink goroutine (never a
// GStreamer streaming thread): count, validate, enqueue, return. It never
// blocks (the ring drops the oldest frame when full). A frame above
// max_width x max_height is counted as oversize and reported to the
// supervisor, which ends the pipeline. A frame that fails a rule with
// action pass is counted as flagged and published with the rules in its
// flags field.
func (c *camera) onFrame(f *frame.Frame) {
	if c.tooBig(f) {
		// Captured and dropped at once: not the camera's newest frame, so
		// the watchdog does not take the camera for streaming.
		c.stats.CapturedDropped(stats.DropOversize, 1)
		c.sup.Oversized(f.Width, f.Height)
		f.Release()
		return
	}
	c.stats.FrameCaptured(f.SinkTime)
	f.CameraID = c.plan.Camera.ID
	f.Seq = c.seq.Add(1)
	if f.PullError {
		// Captured (it left the appsink) but unreadable: counted here, by
		// the owner of the captured count, so the identity holds.
		c.stats.Drop(stats.DropPullError, 1)
		f.Release()
		return
	}
	if prev, _ := c.latSrc.Load().(frame.CaptureSource); prev != f.CaptureSource {
		c.latSrc.Store(f.CaptureSource)
		c.stats.SetLatencySource(string(f.CaptureSource))
	}
	span := c.tracer.StartCapture(f)
	t0 := time.Now()
	res := c.validator.Check(f, f.SinkTime)
	t1 := time.Now()
	c.obs.Validate.Observe(t1.Sub(t0).Seconds())
	span.Child(c.tracer, telemetry.SpanValidate, t0, t1)
	if res.Drop {
		c.stats.Drop(res.Reason, 1)
		span.End(res.Reason.String())
		f.Release()
		return
	}
	if !res.Flagged.Empty() {
		c.stats.Flag(res.Flagged)
		f.Flags = res.Flagged.String()
		span.Flag(f.Flags)
	}
	c.snap.offer(f)
	sz, changed := c.fit.size.Observe(f)
	if share := c.fit.current(); changed || share != c.fit.share {
		c.fit.share = share
		c.fitRing(sz, f.Format.Compressed())
	}
	// The publisher owns f from here and may already have released it, and
	// its pool reused it: below this line f is not read (span holds the
	// identity the enqueue span needs).
	c.ring.Push(f)
	t2 := time.Now()
	c.obs.Enqueue.Observe(t2.Sub(t1).Seconds())
	span.Child(c.tracer, telemetry.SpanEnqueue, t1, t2)
	span.End("")
}

// tooBig reports whether f is above the camera's max_width x max_height.
func (c *camera) tooBig(f *frame.Frame) bool {
	s := c.plan.Camera.Settings
	return (s.MaxWidth > 0 && f.Width > s.MaxWidth) || (s.MaxHeight > 0 && f.Height > s.MaxHeight)
}

// current is the camera's share of memory.budget now.
func (f *ringFit) current() int64 {
	if f.shared == nil {
		return f.share
	}
	return f.shared.Load()
}

// fitRing sizes the ring for frames of sz bytes (the mean of varying ones,
// JPEG) within the camera's share of memory.budget, and says so once per
// size when the share holds fewer than ring_size frames.
func (c *camera) fitRing(sz int64, varying bool) {
	ringSize := c.plan.Camera.Settings.RingSize
	share, batch := c.fit.share, publish.BatchFrames(c.fit.batch, int(sz))
	if c.fit.shmSlots > 0 {
		batch = 0 // no pixels in flight: they are in the segment
		if share > 0 {
			share = max(share-shm.SegmentBytes(c.fit.shmSlots, int(sz)), 1)
		}
	}
	size := membudget.SizeRing
	if varying {
		size = membudget.SizeRingVarying
	}
	r := size(share, int(sz), ringSize, batch)
	c.ring.SetByteLimit(r.Bytes)
	c.stats.SetRing(r.Frames, r.Bytes, r.Short)
	if r.Short && c.fit.log != nil {
		c.fit.log.Warn("memory.budget: the camera's share holds fewer frames than ring_size; its ring is shortened (raise memory.budget or the container's memory limit, or lower the resolution)",
			"camera_id", c.plan.Camera.ID, "frame_bytes", sz, "share_bytes", c.fit.share,
			"ring_frames", r.Frames, "ring_size", ringSize)
	}
}

// Metrics returns the Prometheus metrics.
func (s *Service) Metrics() *telemetry.Metrics { return s.metrics }

// Tracer returns the frame tracer.
func (s *Service) Tracer() *telemetry.Tracer { return s.tracer }

// RingLen returns how many frames wait in camera id's ring (telemetry.Source).
func (s *Service) RingLen(id string) int {
	if c := s.camera(id); c != nil {
		return c.ring.Len()
	}
	return 0
}

// camera returns camera id, nil when there is none.
func (s *Service) camera(id string) *camera {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cams[id]
}

// all returns every camera, sorted by id.
func (s *Service) all() []*camera {
	s.mu.RLock()
	out := make([]*camera, 0, len(s.cams))
	for _, c := range s.cams {
		out = append(out, c)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b *camera) int { return strings.Compare(a.plan.Camera.ID, b.plan.Camera.ID) })
	return out
}

// Registry exposes the per-camera counters.
func (s *Service) Registry() *stats.Registry { return s.reg }

// Redis is the service's Redis client (the camera API's store shares it).
func (s *Service) Redis() redis.UniversalClient { return s.redis }

// Publisher exposes the Redis publisher (for readiness).
func (s *Service) Publisher() *publish.Publisher { return s.pub }

// Frozen returns how many pipelines were abandoned since start.
func (s *Service) Frozen() int64 { return int64(s.reg.Frozen()) }

// Cameras returns the cameras in force, sorted by id.
func (s *Service) Cameras() []config.Camera {
	cams := s.all()
	out := make([]config.Camera, len(cams))
	for i, c := range cams {
		out[i] = c.plan.Camera
	}
	return out
}

// Run captures until ctx is cancelled, then stops capture and flushes the
// rings to Redis within shutdown.timeout. Cameras may be changed (Apply,
// Restart) before and while it runs.
func (s *Service) Run(ctx context.Context) {
	pubCtx, stopPub := context.WithCancel(context.Background())
	var watch sync.WaitGroup
	watch.Add(1)
	go func() { defer watch.Done(); s.pub.WatchMemory(pubCtx) }()
	watch.Add(1)
	go func() { defer watch.Done(); s.history.Run(pubCtx) }()
	s.applyMu.Lock()
	s.mu.Lock()
	s.run = &running{ctx: ctx, pubCtx: pubCtx}
	for _, c := range s.cams {
		s.start(c)
	}
	s.mu.Unlock()
	s.applyMu.Unlock()

	<-ctx.Done()
	s.log.Info("stopping capture")
	// A change in progress finishes first; later ones are refused.
	s.applyMu.Lock()
	s.stopping = true
	s.applyMu.Unlock()
	cams := s.all()
	for _, c := range cams {
		if c.supDone != nil {
			<-c.supDone
		}
	}
	stopPub()
	for _, c := range cams {
		if c.pubDone != nil {
			<-c.pubDone
		}
	}
	watch.Wait()

	flushCtx, cancel := context.WithTimeout(context.Background(), time.Duration(s.shutdownTimeout.Load()))
	defer cancel()
	var wg sync.WaitGroup
	var flushed atomic.Int64
	for _, c := range cams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Flush closes the ring: what it could not publish is counted
			// there, and the ring counts what is pushed later itself.
			flushed.Add(int64(s.pub.Flush(flushCtx, c.stats, c.ring)))
			s.closeShm(c)
		}()
	}
	wg.Wait()
	s.log.Info("capture stopped", "flushed_frames", flushed.Load())
	s.logAccounting(cams)
	if s.opts.Redis == nil {
		_ = s.redis.Close()
	}
	tctx, tcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer tcancel()
	_ = s.tracer.Shutdown(tctx)
}

// logAccounting logs one line per camera with the final counts, after the
// flush: every frame out of the appsink is published or dropped for one
// reason, so captured = published + dropped + left in ring (0 once the
// ring is closed) must hold exactly. unconfirmed_dropped counts frames of a
// round trip cut by the shutdown deadline or a vanished Redis: dropped, but
// Redis may still have stored them. A camera rebuilt by a reload keeps its
// counters, so its line covers every pipeline it had.
func (s *Service) logAccounting(cams []*camera) {
	for _, c := range cams {
		st := c.stats
		captured, published := st.Captured(), st.Published()
		dropped := make([]any, 0, len(stats.Reasons()))
		var total uint64
		for _, r := range stats.Reasons() {
			n := st.Dropped(r)
			total += n
			dropped = append(dropped, slog.Uint64(r.String(), n))
		}
		// Flagged frames were kept, so they are not a term of the identity.
		flagged := make([]any, 0, len(stats.ValidationReasons()))
		for _, r := range stats.ValidationReasons() {
			if n := st.Flagged(r); n > 0 {
				flagged = append(flagged, slog.Uint64(r.String(), n))
			}
		}
		left := uint64(c.ring.Len())
		pending, gaveUp := s.pub.Unconfirmed(st.ID)
		balanced := captured == published+total+left+uint64(pending)
		lvl := slog.LevelInfo
		if !balanced || pending > 0 {
			lvl = slog.LevelError
		}
		s.log.Log(context.Background(), lvl, "final accounting", "camera_id", st.ID,
			"captured", captured, "published", published, "dropped_total", total,
			slog.Group("dropped", dropped...), slog.Group("flagged", flagged...), "left_in_ring", left,
			"unconfirmed", pending, "unconfirmed_dropped", gaveUp, "balanced", balanced)
	}
}

// Snapshots returns every camera's status (health.Source).
func (s *Service) Snapshots(now time.Time) []stats.Snapshot {
	all := s.reg.All()
	out := make([]stats.Snapshot, len(all))
	for i, c := range all {
		out[i] = c.Snapshot(now)
	}
	return out
}

// RedisHealthy reports whether the publisher considers Redis up (health.Source).
func (s *Service) RedisHealthy() bool { return s.pub.Healthy() }

// RedisFull reports whether Redis refused frames for want of memory in the
// last few seconds (health.Source).
func (s *Service) RedisFull() bool { return s.pub.Full() }

// MemoryBudget returns the bytes frames and the Go heap may hold together
// (0 = unbounded; telemetry.Source).
func (s *Service) MemoryBudget() int64 {
	s.memMu.Lock()
	defer s.memMu.Unlock()
	return s.mem.Budget
}

// Memory returns how memory.budget is shared out (health.Source; main sets
// GOMEMLIMIT from it).
func (s *Service) Memory() stats.Memory {
	s.memMu.Lock()
	defer s.memMu.Unlock()
	m := stats.Memory{BudgetBytes: s.mem.Budget, Source: s.mem.Source, PerCameraBytes: s.mem.PerCamera}
	// What the runtime has, whoever set it (main from the split, or the
	// GOMEMLIMIT environment variable).
	if l := debug.SetMemoryLimit(-1); l < math.MaxInt64 {
		m.GoLimitBytes = l
	}
	return m
}

// GoMemoryLimit is the Go heap's share of memory.budget, for GOMEMLIMIT;
// 0 when there is no budget.
func (s *Service) GoMemoryLimit() int64 {
	s.memMu.Lock()
	defer s.memMu.Unlock()
	return s.mem.GoLimit
}

// RedisMemoryBudget returns the bytes all streams may hold (0 = unbounded;
// telemetry.Source).
func (s *Service) RedisMemoryBudget() int64 { return s.pub.MemoryBudget() }
