package publish

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"gstcapture/internal/backoff"
	"gstcapture/internal/frame"
	"gstcapture/internal/lease"
	"gstcapture/internal/shm"
	"gstcapture/internal/stats"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultBatch   = 16
	DefaultTimeout = 2 * time.Second
)

// Retry delays while Redis is down (internal/backoff: doubling, equal
// jitter, so many cameras do not retry a recovering Redis in lockstep), and
// the safety-net poll of an idle ring.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
	pollEvery  = 50 * time.Millisecond
)

// retryBackoff returns the delays between attempts while Redis is down.
func retryBackoff() *backoff.Backoff { return backoff.New(minBackoff, maxBackoff) }

// Options configures a Publisher.
type Options struct {
	Stream string // key template, "frames:{camera_id}"
	// Retention is the history each stream keeps (MAXLEN ~ retention·fps),
	// shortened to fit MemoryBudget; 0 = 10 s.
	Retention time.Duration
	// MaxLen caps every stream's MAXLEN; 0 = no cap besides Retention.
	MaxLen int64
	// MemoryBudget bounds all streams together, in bytes; 0 = AutoShare of
	// Redis's maxmemory (none when Redis has none).
	MemoryBudget int64
	Batch        int           // max frames per pipelined round trip (default 16)
	Timeout      time.Duration // per round trip (default 2s); needs ContextTimeoutEnabled on the client
	Instance     string        // this process run, part of frame_id (default NewInstanceID())
	// Fence, when set, writes every frame under its camera's fleet lease
	// (internal/fleet); nil: plain XADD.
	Fence Fence
}

// Fence says under which fleet lease a camera's frames are written. The
// fleet coordinator implements it.
type Fence interface {
	// Token returns the lease camera id is captured under; false: none,
	// and its frames are dropped as fenced.
	Token(cameraID string) (FenceToken, bool)
	// Lost tells that Redis refused a write of the camera under epoch: the
	// lease is another replica's now. Called from the camera's publish
	// loop; must not block.
	Lost(cameraID string, epoch uint64)
	// Renewed tells that Redis stored a write of the camera under epoch
	// sent at: the script that checked the lease renewed it then, so the
	// coordinator need not renew a camera that publishes. Called once per
	// round trip from the camera's publish loop; must not block.
	Renewed(cameraID string, epoch uint64, at time.Time)
}

// Slots is where a camera with delivery shm puts its frames' pixels
// instead of the entry; internal/shm.Writer implements it. Only the
// camera's loop uses it.
type Slots interface {
	// Put copies f's pixels into the next slot and says where they are.
	Put(f *frame.Frame) (shm.Loc, error)
	// Slots is the ring's length: an entry older than that names a
	// lapped slot, so the stream's MAXLEN is capped at it.
	Slots() int
	// Segment names the current segment file and its size.
	Segment() (name string, bytes int64)
}

// ShmReporter is told a camera's new shm segment; the camera's counters
// implement it (*stats.Camera), and a Tally that does not is not told.
type ShmReporter interface {
	SetShm(segment string, bytes int64)
}

// shmEntryBytes is what the memory budget counts for an entry without
// data: its fields and Redis's overhead per entry.
const shmEntryBytes = 512

// FenceToken is one held lease.
type FenceToken struct {
	Keys  lease.Keys
	Owner string
	Epoch uint64
	TTL   time.Duration // the lease's length, renewed by every write
}

// Source is the per-camera ring the publisher drains; internal/ring.Ring
// of frames satisfies it.
type Source interface {
	// PopBatch appends up to cap(dst)-len(dst) of the oldest frames to dst
	// without blocking.
	PopBatch(dst []*frame.Frame) []*frame.Frame
	// Ready is signalled after each push.
	Ready() <-chan struct{}
	// Len is the number of frames waiting.
	Len() int
	// Close stops the source for good and returns the frames it still
	// held; frames pushed later are its own to release and count.
	Close() []*frame.Frame
}

// Tally is where the publisher reports what became of one camera's frames;
// the camera's counters implement it (*stats.Camera). Calls come from the
// camera's loop and must not block.
type Tally interface {
	CameraID() string
	// Stored counts n frames Redis acknowledged.
	Stored(n uint64)
	// Drop counts n frames that will not be published, for r.
	Drop(r stats.DropReason, n uint64)
}

// Recorder receives publish measurements (metrics implement it). Calls come
// from the camera loops, concurrently across cameras, and must not block.
type Recorder interface {
	// PublishDuration observes one successful pipelined round trip that
	// stored n frames.
	PublishDuration(cameraID string, d time.Duration, n int)
	// Published observes one frame right after Redis acknowledged it and
	// before it is released: start is when its round trip began, now -
	// f.SinkTime is appsink → Redis latency, now - f.CaptureTime capture →
	// published. f must not be retained, and f.Data must not be read.
	Published(cameraID string, f *frame.Frame, start, now time.Time)
}

// Publisher writes frames of any number of cameras to Redis. Run and Flush
// may be called concurrently for different cameras; each call keeps its own
// buffers.
type Publisher struct {
	client redis.UniversalClient
	opts   Options
	log    *slog.Logger
	rec    Recorder

	// down is shared by every camera: the first failure logs "redis down",
	// the first success after it logs "redis back".
	stateMu   sync.Mutex
	down      atomic.Bool
	downSince time.Time

	budget *budget
	// fullAt is the unix ns of the newest OOM reply: Redis refused an XADD
	// for want of memory. Not "down": it answers, and XTRIM still works.
	fullAt       atomic.Int64
	policyWarned atomic.Value // string: the eviction policy last warned about

	tracker     *connTracker
	barrierWarn sync.Once
	unsureMu    sync.Mutex
	unsure      map[string]*unconfirmed // by camera id
	slotsMu     sync.Mutex
	slots       map[string]Slots // by camera id: the cameras with delivery shm
}

// New returns a Publisher. log and rec may be nil.
//
// The client should be built with ContextTimeoutEnabled (otherwise go-redis
// ignores context deadlines, so Options.Timeout and Flush's deadline are
// bounded only by its Read/WriteTimeout), MaxRetries -1 (a retried pipeline
// can store a batch twice) and DialerRetries 1 (go-redis otherwise redials
// 5 times, 100 ms apart, inside every round trip while Redis is down): the
// publisher's own backoff is the retry policy.
func New(client redis.UniversalClient, opts Options, log *slog.Logger, rec Recorder) *Publisher {
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Instance == "" {
		opts.Instance = NewInstanceID()
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "publish")
	if enabled, known := contextTimeoutEnabled(client); known && !enabled {
		log.Warn("redis client has ContextTimeoutEnabled=false: publish timeout and shutdown deadline " +
			"are bounded by the client's read/write timeouts instead; set it in the redis client options")
	}
	p := &Publisher{client: client, opts: opts, log: log, rec: rec, tracker: newConnTracker(), unsure: map[string]*unconfirmed{}, slots: map[string]Slots{},
		budget: newBudget(opts.Retention, opts.MaxLen, opts.MemoryBudget, log)}
	client.AddHook(p.tracker)
	return p
}

func contextTimeoutEnabled(c redis.UniversalClient) (enabled, known bool) {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled, true
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled, true
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled, true
	}
	return false, false
}

// AddCamera registers a camera and its fps with the memory budget; Run
// trims its stream to the camera's share, and cam is told that limit
// whenever it changes. Call it before Run, for every camera, so that the
// first shares already count them all; a camera added later (or changed:
// its fps is updated) takes its share from the others.
func (p *Publisher) AddCamera(cam Retention, fps float64) {
	p.budget.tell(cam.CameraID(), cam)
	p.budget.add(cam.CameraID(), fps)
}

// RemoveCamera forgets a camera that is gone: its share of the memory
// budget (the others' shares grow) and its unconfirmed frames. Call it
// after the camera's Run and Flush returned. Its stream stays in Redis.
func (p *Publisher) RemoveCamera(id string) {
	p.budget.remove(id)
	p.unsureMu.Lock()
	delete(p.unsure, id)
	p.unsureMu.Unlock()
	p.slotsMu.Lock()
	delete(p.slots, id)
	p.slotsMu.Unlock()
}

// SetSlots makes camera id's next Run or Flush put pixels into s (delivery
// shm) instead of the entries, and caps its stream's MAXLEN at s's slots;
// nil: into the entries. Call it after AddCamera, before Run.
func (p *Publisher) SetSlots(id string, s Slots) {
	p.slotsMu.Lock()
	if s == nil {
		delete(p.slots, id)
	} else {
		p.slots[id] = s
	}
	p.slotsMu.Unlock()
	var n int64
	if s != nil {
		n = int64(s.Slots())
	}
	p.budget.setCap(id, n)
}

func (p *Publisher) slotsOf(id string) Slots {
	p.slotsMu.Lock()
	defer p.slotsMu.Unlock()
	return p.slots[id]
}

// SetFleetShare makes the memory budget this replica's part of the
// fleet's: f is the share of the fleet's cameras it captures (0 < f <= 1).
// The replicas of a fleet write to one Redis, so redis.memory_budget (or
// auto's share of maxmemory) is the fleet's, not each replica's.
func (p *Publisher) SetFleetShare(f float64) { p.budget.setFleet(f) }

// MemoryBudget returns the bytes the streams may hold together (0 =
// unbounded).
func (p *Publisher) MemoryBudget() int64 { return p.budget.Bytes() }

// fullFor is how long after an OOM reply Redis counts as full.
const fullFor = 5 * time.Second

// Full reports whether Redis refused an XADD for want of memory in the
// last fullFor.
func (p *Publisher) Full() bool {
	at := p.fullAt.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < fullFor
}

// Options returns the options after defaults were applied.
func (p *Publisher) Options() Options { return p.opts }

// Healthy reports false while Redis is considered down: from a failed round
// trip, PING or settle until the next successful one.
func (p *Publisher) Healthy() bool { return !p.down.Load() }

func (p *Publisher) markDown(cameraID string, err error) {
	if p.down.Load() {
		return
	}
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	if p.down.Load() {
		return
	}
	p.downSince = time.Now()
	p.down.Store(true)
	p.log.Warn("redis down: frames wait in the ring, oldest dropped (ring_overflow), until it answers again",
		"camera_id", cameraID, "err", err)
}

func (p *Publisher) markUp(cameraID string) {
	if !p.down.Load() {
		return
	}
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	if !p.down.Load() {
		return
	}
	p.down.Store(false)
	p.log.Info("redis back: publishing resumed",
		"camera_id", cameraID, "down_for", time.Since(p.downSince).Round(time.Millisecond))
}

// Run publishes the camera's frames until ctx is done. A round trip already
// started when ctx is cancelled is allowed to finish (bounded by
// Options.Timeout); frames still in src are left for Flush.
//
// After a failed round trip it takes no more frames until Redis answers
// again (and the failed round trip's frames are settled), so that while
// Redis is down the ring keeps the newest frames and drops the oldest.
func (p *Publisher) Run(ctx context.Context, cam Tally, src Source) {
	w := p.newWorker(cam)
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	// Detached so that shutdown does not abort a half-written batch.
	rtParent := context.WithoutCancel(ctx)
	bo := retryBackoff()
	failed := w.unsure.len() > 0
	for ctx.Err() == nil {
		if failed {
			// Cancellable: an unfinished probe or settle is left to Flush.
			if _, err := w.recover(ctx); err != nil {
				if !sleep(ctx, bo.Next()) {
					return
				}
				continue
			}
			failed = false
		}
		batch := src.PopBatch(w.frames[:0:w.limit])
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-src.Ready():
			case <-poll.C:
			}
			continue
		}
		if _, err := w.send(rtParent, batch); err != nil {
			if errors.Is(err, errFull) || errors.Is(err, errFenced) {
				// Redis answered, and trimming made room (or the fleet is
				// stopping this camera): try again soon, without the
				// Redis-down backoff.
				if !sleep(ctx, minBackoff) {
					return
				}
				continue
			}
			failed = true
			if !sleep(ctx, bo.Next()) {
				return
			}
			continue
		}
		bo.Reset()
	}
}

// ping checks within Options.Timeout that Redis answers; an answer marks
// it up. The caller decides whether a failure marks it down.
func (p *Publisher) ping(parent context.Context, cameraID string) error {
	ctx, cancel := context.WithTimeout(parent, p.opts.Timeout)
	defer cancel()
	var to redis.Cmdable = p.client
	if cc, ok := p.client.(*redis.ClusterClient); ok {
		// A keyless PING goes to any master; the camera's writes go to the
		// master of its stream's slot, which may be the one that is down.
		m, err := cc.MasterForKey(ctx, StreamKey(p.opts.Stream, cameraID))
		if err != nil {
			return err
		}
		to = m
	}
	err := to.Ping(ctx).Err()
	if err == nil {
		p.markUp(cameraID)
	}
	return err
}

// errFull is send's error when Redis refused every failed XADD for want of
// memory (OOM) and nothing else went wrong.
var errFull = errors.New("redis full (OOM)")

// errFenced is send's error when Redis refused frames because this replica
// no longer holds the camera's lease, and nothing else went wrong.
var errFenced = errors.New("fenced: the camera's lease is another replica's")

// recover checks that Redis answers: it settles unconfirmed frames when
// there are any (returning how many turned out stored), else it pings.
func (w *worker) recover(parent context.Context) (stored int, err error) {
	if w.unsure.len() > 0 {
		stored, err = w.settle(parent)
	} else {
		err = w.p.ping(parent, w.id)
	}
	if err != nil && !ended(parent) {
		w.p.markDown(w.id, err)
	}
	return stored, err
}

// Flush publishes what is left in src after capture stopped, until src is
// empty or ctx is done, and settles the camera's unconfirmed frames. Then
// it closes src: frames it could not publish in time are released and
// counted as DropShutdown; unconfirmed frames it could not settle are
// counted as dropped under the reason of their failure (see Unconfirmed).
// It returns the number of frames published.
func (p *Publisher) Flush(ctx context.Context, cam Tally, src Source) int {
	w := p.newWorker(cam)
	published := 0
	bo := retryBackoff()
	failed := false
	for ctx.Err() == nil && (src.Len() > 0 || w.unsure.len() > 0) {
		if failed || w.unsure.len() > 0 {
			// As in Run: settle a failed round trip before sending more.
			stored, err := w.recover(ctx)
			published += stored
			if err != nil {
				if !sleep(ctx, bo.Next()) {
					break
				}
				continue
			}
			failed = false
			continue
		}
		batch := src.PopBatch(w.frames[:0:w.limit])
		if len(batch) == 0 {
			break
		}
		n, err := w.send(ctx, batch)
		published += n
		if err != nil {
			failed = true
			if !sleep(ctx, bo.Next()) {
				break
			}
			continue
		}
		bo.Reset()
	}
	w.giveUp()
	left := src.Close()
	for _, f := range left {
		f.Release()
	}
	w.drop(stats.DropShutdown, uint64(len(left)))
	// A round trip cut by the deadline, and unconfirmed frames given up,
	// count as shutdown too.
	if w.shutdown > 0 {
		p.log.Warn("shutdown deadline passed before every frame was published",
			"camera_id", w.id, "published", published, "dropped", w.shutdown, "err", ctx.Err())
	}
	return published
}

// Discard closes src without publishing: a fleet camera whose lease is
// gone, whose frames Redis would refuse. Its frames, and unconfirmed ones,
// are counted as dropped for r. It returns the frames it dropped from src.
func (p *Publisher) Discard(cam Tally, src Source, r stats.DropReason) int {
	w := p.newWorker(cam)
	w.giveUp()
	left := src.Close()
	for _, f := range left {
		f.Release()
	}
	w.drop(r, uint64(len(left)))
	return len(left)
}

// worker holds one camera loop's reusable buffers.
type worker struct {
	p        *Publisher
	cam      Tally
	id       string
	shutdown uint64             // frames this worker counted as DropShutdown
	limit    int                // frames per round trip: Options.Batch, fewer for big frames
	maxLen   *atomic.Int64      // the camera's MAXLEN, kept by the budget
	size     frame.SizeEstimate // the camera's frame size (a JPEG camera's mean)
	bytes    int64              // the entry size last told to the budget
	unsure   *unconfirmed
	fenced   bool // writes go through the camera's fleet lease
	token    FenceToken
	enc      *Encoder
	pipe     redis.Pipeliner
	frames   []*frame.Frame
	args     []any
	cmds     []*redis.Cmd
	slots    Slots     // delivery shm; nil: pixels in the entries
	locs     []shm.Loc // where each frame of the batch is, with slots
	segment  string    // the segment last logged
	shmErr   string    // the shm error last logged
}

// maxBatchBytes bounds the pixels of one pipelined round trip, so that a
// batch of 1080p frames (6 MB each) does not take longer than the round-trip
// timeout on a loaded machine and fail as a whole.
const maxBatchBytes = 16 << 20

// BatchFrames is how many frames of frameBytes one round trip takes, at
// most batch (redis.batch): the frames a camera has in flight besides its
// ring, which memory.budget counts too.
func BatchFrames(batch, frameBytes int) int {
	if frameBytes > 0 {
		return min(batch, max(1, maxBatchBytes/frameBytes))
	}
	return batch
}

// fitBatch sizes the next batches from the newest frame's size.
func (w *worker) fitBatch(f *frame.Frame) {
	if w.slots != nil {
		return // the pixels do not travel
	}
	w.limit = BatchFrames(w.p.opts.Batch, len(f.Data))
}

// fitStream tells the budget the camera's entry size when it changed
// (raw frames: a new size; JPEG: the running mean of the frames moved by
// an eighth; delivery shm: entries without pixels) and takes the camera's
// current MAXLEN for the next XADDs.
func (w *worker) fitStream(batch []*frame.Frame) {
	var sz int64
	for _, f := range batch {
		sz, _ = w.size.Observe(f)
	}
	if w.slots != nil {
		sz = shmEntryBytes
	}
	if sz != w.bytes {
		w.bytes = sz
		w.p.budget.resize(w.id, sz)
	}
	w.enc.SetMaxLen(w.maxLen.Load())
}

// put copies the batch's pixels into the camera's segment (delivery shm)
// and returns the frames that got a slot, their places in w.locs. A frame
// without one is dropped (shm_error), and the error logged when it is new.
func (w *worker) put(batch []*frame.Frame) []*frame.Frame {
	kept := batch[:0]
	w.locs = w.locs[:0]
	for _, f := range batch {
		loc, err := w.slots.Put(f)
		if err != nil {
			if msg := err.Error(); msg != w.shmErr {
				w.shmErr = msg
				w.p.log.Error("delivery shm: frames dropped (shm_error) until the camera's segment can be made",
					"camera_id", w.id, "err", err)
			}
			f.Release()
			w.drop(stats.DropShmError, 1)
			continue
		}
		if w.shmErr != "" {
			w.shmErr = ""
			w.p.log.Info("delivery shm: the camera's segment works again", "camera_id", w.id)
		}
		if loc.Segment != w.segment {
			w.segment = loc.Segment
			_, size := w.slots.Segment()
			if r, ok := w.cam.(ShmReporter); ok {
				r.SetShm(loc.Segment, size)
			}
			w.p.log.Info("delivery shm: new segment", "camera_id", w.id, "segment", loc.Segment,
				"bytes", size, "slots", w.slots.Slots(), "width", f.Width, "height", f.Height, "format", f.Format)
		}
		kept = append(kept, f)
		w.locs = append(w.locs, loc)
	}
	clear(batch[len(kept):])
	return kept
}

func (p *Publisher) newWorker(cam Tally) *worker {
	id := cam.CameraID()
	w := &worker{
		p:      p,
		cam:    cam,
		id:     id,
		limit:  p.opts.Batch,
		unsure: p.unconfirmedOf(id),
		enc:    NewEncoder(StreamKey(p.opts.Stream, id), id, p.opts.Instance, 0),
		maxLen: p.budget.add(id, 0),
		pipe:   p.client.Pipeline(),
		frames: make([]*frame.Frame, 0, p.opts.Batch),
		args:   make([]any, 0, p.opts.Batch*ArgsPerEntry),
		cmds:   make([]*redis.Cmd, 0, p.opts.Batch),
		slots:  p.slotsOf(id),
	}
	if w.slots != nil {
		w.locs = make([]shm.Loc, 0, p.opts.Batch)
	}
	if p.opts.Fence != nil {
		w.fenced = true
		if t, ok := p.opts.Fence.Token(id); ok {
			w.token = t
			w.enc.Fence(t)
		}
	}
	return w
}

// drop counts n frames dropped for r.
func (w *worker) drop(r stats.DropReason, n uint64) {
	if n == 0 {
		return
	}
	if r == stats.DropShutdown {
		w.shutdown += n
	}
	w.cam.Drop(r, n)
}

// send writes batch in one pipelined round trip, counts and releases every
// frame, and returns how many were stored. The round trip gets
// Options.Timeout under parent; a failure caused by parent ending is counted
// as DropShutdown and does not mark Redis down. A frame whose command may
// have reached Redis without an answer is neither: it is unconfirmed until
// settle finds out.
func (w *worker) send(parent context.Context, batch []*frame.Frame) (int, error) {
	ctx, cancel := context.WithTimeout(parent, w.p.opts.Timeout)
	defer cancel()

	if w.fenced && w.token.Owner == "" {
		// A fleet camera without a lease: nothing may be written.
		for i, f := range batch {
			f.Release()
			batch[i] = nil
		}
		w.drop(stats.DropFenced, uint64(len(batch)))
		return 0, errFenced
	}
	if w.slots != nil {
		if batch = w.put(batch); len(batch) == 0 {
			return 0, nil
		}
	}
	w.fitBatch(batch[len(batch)-1])
	w.fitStream(batch)
	args, cmds := w.args[:0], w.cmds[:0]
	for i, f := range batch {
		start := len(args)
		if w.slots != nil {
			args = w.enc.AppendAt(args, f, &w.locs[i])
		} else {
			args = w.enc.Append(args, f)
		}
		// Full slice expression: each command owns exactly its arguments.
		cmds = append(cmds, w.pipe.Do(ctx, args[start:len(args):len(args)]...))
	}
	start := time.Now()
	_, err := w.pipe.Exec(ctx)
	now := time.Now()

	// The caller's deadline, not Redis, ended this round trip. The socket
	// deadline can fire a hair before ctx's own timer, hence the clock.
	cut := err != nil && ended(parent)
	reason := stats.DropRedisError
	if cut {
		reason = stats.DropShutdown
	}

	// go-redis has written (or given up on) every byte: the frames can go.
	ok, unsure, oom, fenced := 0, 0, 0, 0
	for i, f := range batch {
		switch cerr := cmds[i].Err(); {
		case cerr == nil:
			ok++
			if w.p.rec != nil {
				w.p.rec.Published(w.id, f, start, now)
			}
		case isOOM(cerr):
			oom++
		case lease.IsFenced(cerr):
			fenced++
		case !notSent(cerr):
			w.unsure.add(f.Seq, reason)
			unsure++
		}
		f.Release()
		batch[i] = nil
	}
	clear(args)
	clear(cmds)
	w.enc.Reset()

	failed := len(batch) - ok - unsure - oom - fenced
	if ok > 0 {
		if w.fenced {
			w.p.opts.Fence.Renewed(w.id, w.token.Epoch, start)
		}
		w.cam.Stored(uint64(ok))
		if w.p.rec != nil {
			w.p.rec.PublishDuration(w.id, now.Sub(start), ok)
		}
	}
	if err == nil {
		w.p.markUp(w.id)
		return ok, nil
	}
	if oom > 0 {
		w.drop(stats.DropRedisOOM, uint64(oom))
		w.full(parent)
	}
	if fenced > 0 {
		w.drop(stats.DropFenced, uint64(fenced))
		w.p.opts.Fence.Lost(w.id, w.token.Epoch)
	}
	w.drop(reason, uint64(failed))
	if !cut && (failed > 0 || unsure > 0) {
		w.p.markDown(w.id, err)
		return ok, err
	}
	if oom > 0 && !cut {
		return ok, errFull
	}
	if fenced > 0 && !cut {
		// Redis answered: it is up, the lease is gone.
		w.p.markUp(w.id)
		return ok, errFenced
	}
	return ok, err
}

// isOOM reports Redis's "OOM command not allowed when used memory >
// 'maxmemory'" reply.
func isOOM(err error) bool {
	return isRedisError(err) && strings.HasPrefix(err.Error(), "OOM ")
}

// full handles an OOM reply: Redis holds more than its maxmemory, so it
// refuses XADD but still runs XTRIM. Every camera's share shrinks, and this
// camera's stream is trimmed to its new length now; the others trim on
// their next XADD, or here when Redis refuses them too.
func (w *worker) full(parent context.Context) {
	first := !w.p.Full()
	w.p.fullAt.Store(time.Now().UnixNano())
	shrunk := w.p.budget.shrink(time.Now())
	n := w.maxLen.Load()
	var trimmed int64
	var err error
	if n > 0 { // 0: a camera outside the budget, with no MAXLEN to trim to
		ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), w.p.opts.Timeout)
		defer cancel()
		trimmed, err = w.p.client.XTrimMaxLen(ctx, StreamKey(w.p.opts.Stream, w.id), n).Result()
	}
	if first {
		w.p.log.Warn("redis full: XADD refused for want of memory (OOM); frames dropped as redis_oom, streams trimmed to fit",
			"camera_id", w.id, "maxlen", n, "trimmed", trimmed, "shrunk", shrunk, "budget_bytes", w.p.budget.Bytes(), "trim_err", err)
	}
}

// ended reports whether ctx is done or its deadline has passed.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// sleep waits d or until ctx is done; it reports whether the full d passed.
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
