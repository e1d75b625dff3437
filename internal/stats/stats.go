package stats

import (
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// DropReason says why a captured frame was not published.
type DropReason int

// Drop reasons. Keep Reasons in the same order.
const (
	DropBlack        DropReason = iota // validation: black frame
	DropUniform                        // validation: uniform (grey/green) frame
	DropFrozen                         // validation: same picture for too long
	DropSize                           // validation: buffer size does not match caps
	DropCorrupt                        // decoder flagged the frame corrupted
	DropRingOverflow                   // ring full, oldest frame discarded
	DropRedisError                     // XADD failed
	DropShutdown                       // still queued when the shutdown deadline passed
	DropHandoff                        // out of the appsink, but the hand-off queue to Go was full
	DropPullError                      // out of the appsink, but not raw video or its buffer could not be mapped
	DropRedisOOM                       // XADD refused: Redis is at its maxmemory
	DropOversize                       // out of the appsink, but larger than max_width x max_height
	DropFenced                         // this replica no longer holds the camera's fleet lease: another one captures it
	DropShmError                       // delivery shm: no segment for the frame (shm.dir full or not writable)
	numReasons
)

var reasonNames = [numReasons]string{"black", "uniform", "frozen", "size", "corrupt", "ring_overflow", "redis_error", "shutdown", "handoff_overflow", "pull_error", "redis_oom", "oversize", "fenced", "shm_error"}

// String returns the metric label value of the reason.
func (r DropReason) String() string {
	if r < 0 || r >= numReasons {
		return "unknown"
	}
	return reasonNames[r]
}

// Reasons lists every drop reason in label order.
func Reasons() []DropReason {
	out := make([]DropReason, numReasons)
	for i := range out {
		out[i] = DropReason(i)
	}
	return out
}

// numValidation counts the validation reasons, DropBlack to DropCorrupt:
// the names of the rules, which also label frames a rule flagged (action
// pass) instead of dropping.
const numValidation = DropCorrupt + 1

// ValidationReasons lists the reasons a validation rule reports, in rule
// label order: the label set of the flagged counters.
func ValidationReasons() []DropReason { return Reasons()[:numValidation] }

// ReasonSet is a set of reasons, for the rules a frame failed.
type ReasonSet uint16

// Add returns s with r added.
func (s ReasonSet) Add(r DropReason) ReasonSet { return s | 1<<r }

// Has reports whether r is in s.
func (s ReasonSet) Has(r DropReason) bool { return s&(1<<r) != 0 }

// Empty reports whether s holds no reason.
func (s ReasonSet) Empty() bool { return s == 0 }

// String returns the reasons' labels comma-separated in label order
// ("black,frozen"), "" for the empty set. Sets of validation reasons come
// from a table, so the per-frame path does not allocate.
func (s ReasonSet) String() string {
	if s < 1<<numValidation {
		return validationSets[s]
	}
	return s.join()
}

func (s ReasonSet) join() string {
	out := ""
	for r := range numReasons {
		if s.Has(r) {
			if out != "" {
				out += ","
			}
			out += r.String()
		}
	}
	return out
}

var validationSets = func() (t [1 << numValidation]string) {
	for i := range t {
		t[i] = ReasonSet(i).join()
	}
	return t
}()

// State is a camera's connection state.
type State string

// Camera states. Streaming is the only state in which frames flow.
const (
	StateStarting     State = "starting"
	StateConnecting   State = "connecting"
	StateStreaming    State = "streaming"
	StateStalled      State = "stalled"
	StateDisconnected State = "disconnected"
	StateUnauthorized State = "unauthorized"
	StateError        State = "error"
	StateStopped      State = "stopped"
	// StateDisabled is a configured camera with enabled: false: it is
	// listed, and runs no pipeline.
	StateDisabled State = "disabled"
)

// States lists every state, for one metric series per state.
var States = []State{StateStarting, StateConnecting, StateStreaming, StateStalled, StateDisconnected, StateUnauthorized, StateError, StateStopped, StateDisabled}

// ReconnectReason says why a camera's pipeline was rebuilt: the label of
// rtsp_reconnects_total.
type ReconnectReason string

// Reconnect reasons.
const (
	ReconnectError        ReconnectReason = "error"        // a pipeline error, a build failure, a frozen start
	ReconnectEOS          ReconnectReason = "eos"          // the stream ended
	ReconnectStall        ReconnectReason = "stall"        // no frame for stall_timeout
	ReconnectTimeout      ReconnectReason = "timeout"      // rtspsrc's own timeout (no RTP or RTCP)
	ReconnectUnauthorized ReconnectReason = "unauthorized" // the camera refused the credentials
	ReconnectNoFrames     ReconnectReason = "no_frames"    // no first frame after starting
	ReconnectRestart      ReconnectReason = "restart"      // asked for (POST /api/v1/cameras/{id}/restart)
)

// ReconnectReasons lists every reconnect reason, for a series per reason
// from the start.
func ReconnectReasons() []ReconnectReason {
	return []ReconnectReason{ReconnectError, ReconnectEOS, ReconnectStall, ReconnectTimeout, ReconnectUnauthorized, ReconnectNoFrames, ReconnectRestart}
}

// ErrorType classifies a pipeline error: the label of rtsp_errors_total.
type ErrorType string

// Error types. The first four are GStreamer's error domains.
const (
	ErrCore         ErrorType = "core"
	ErrLibrary      ErrorType = "library"
	ErrResource     ErrorType = "resource"
	ErrStream       ErrorType = "stream"
	ErrOther        ErrorType = "other" // another domain
	ErrUnauthorized ErrorType = "unauthorized"
	ErrTimeout      ErrorType = "timeout"
	ErrStall        ErrorType = "stall"
	ErrBuild        ErrorType = "build"  // the launch string did not build
	ErrFrozen       ErrorType = "frozen" // a blocking call missed its deadline: the pipeline was abandoned
)

// ErrorTypes lists every error type, for a series per type from the start.
func ErrorTypes() []ErrorType {
	return []ErrorType{ErrCore, ErrLibrary, ErrResource, ErrStream, ErrOther, ErrUnauthorized, ErrTimeout, ErrStall, ErrBuild, ErrFrozen}
}

// Camera is one camera's counters and state, and their only writer: the
// packages on a frame's way report events to it through interfaces they
// declare themselves (ring.Reporter, publish.Tally, gsthost.Ledger), and
// the camera's sink side (internal/capture) calls FrameCaptured, Drop and
// Flag. Hot-path fields are atomics, so the sink goroutine never waits for
// a reader.
type Camera struct {
	ID string

	captured  atomic.Uint64
	published atomic.Uint64
	dropped   [numReasons]atomic.Uint64
	// flagged counts frames a validation rule with action pass flagged:
	// they are kept (published or dropped later), so outside the identity.
	flagged [numValidation]atomic.Uint64

	lastFrame  atomic.Int64  // unix ns of the newest frame handled, 0 before one
	reconnects atomic.Uint64 // sum over reasons

	// Frames lost before the appsink, so never captured (see gsthost's
	// stream watch): encoded frames skipped between a stream discontinuity
	// and the next keyframe, and frames into and out of the decoder.
	skipped    atomic.Uint64
	decoderIn  atomic.Uint64
	decoderOut atomic.Uint64

	mu           sync.Mutex
	source       string // where the camera is configured: "file" or "api"
	state        State
	since        time.Time
	lastError    string
	decoder      string
	codec        string
	latencySrc   string
	redisMaxLen  int64
	redisRet     time.Duration
	retShort     bool
	ringFrames   int
	ringBytes    int64
	ringShort    bool
	delivery     string
	shmSegment   string
	shmBytes     int64
	fps          fpsMeter
	reconnectsBy map[ReconnectReason]uint64
	errorsBy     map[ErrorType]uint64
	// changes are the camera's newest state changes, oldest first, at most
	// maxTransitions (the console's camera page).
	changes []Transition
}

// Transition is one change of a camera's state and the error text (already
// redacted) that caused it; "" when none did (a first frame, a restart).
type Transition struct {
	At     time.Time `json:"at"`
	From   State     `json:"from"`
	To     State     `json:"to"`
	Reason string    `json:"reason"`
}

// maxTransitions bounds what a camera keeps of its state changes: a camera
// that fails every retry changes state twice a retry, for months.
const maxTransitions = 32

// NewCamera returns counters for camera id in the starting state.
func NewCamera(id string) *Camera {
	return &Camera{ID: id, state: StateStarting, since: time.Now()}
}

// CameraID returns the camera's id.
func (c *Camera) CameraID() string { return c.ID }

// SetSource records where the camera is configured ("file" or "api").
func (c *Camera) SetSource(src string) {
	c.mu.Lock()
	c.source = src
	c.mu.Unlock()
}

// SetRetention records the camera's stream limit (see Snapshot).
func (c *Camera) SetRetention(maxLen int64, retention time.Duration, shortened bool) {
	c.mu.Lock()
	c.redisMaxLen, c.redisRet, c.retShort = maxLen, retention, shortened
	c.mu.Unlock()
}

// SetRing records the camera's ring size within memory.budget (see
// Snapshot): frames it holds, its byte limit (0 = none) and whether that is
// fewer than ring_size.
func (c *Camera) SetRing(frames int, bytesLimit int64, short bool) {
	c.mu.Lock()
	c.ringFrames, c.ringBytes, c.ringShort = frames, bytesLimit, short
	c.mu.Unlock()
}

// SetDelivery records where the camera's pixels go: "redis" or "shm".
func (c *Camera) SetDelivery(d string) {
	c.mu.Lock()
	c.delivery = d
	c.mu.Unlock()
}

// SetShm records the camera's current shared-memory segment (delivery
// shm) and its size; "" when it has none (before the first frame, and
// once it is removed).
func (c *Camera) SetShm(segment string, bytes int64) {
	c.mu.Lock()
	c.shmSegment, c.shmBytes = segment, bytes
	c.mu.Unlock()
}

// FrameCaptured records one frame out of the appsink, handled at now: it
// becomes the camera's newest frame (the stall watchdog's and
// rtsp_last_frame_timestamp_seconds' source) and counts towards its fps.
func (c *Camera) FrameCaptured(now time.Time) {
	c.captured.Add(1)
	c.lastFrame.Store(now.UnixNano())
	c.mu.Lock()
	c.fps.add(now)
	c.mu.Unlock()
}

// CapturedDropped counts n frames out of the appsink that were dropped for
// r before they were handled (hand-off overflow, oversize): captured and
// dropped at once, and not the camera's newest frame.
func (c *Camera) CapturedDropped(r DropReason, n uint64) {
	c.captured.Add(n)
	c.dropped[r].Add(n)
}

// HandoffOverflow counts n frames the appsink hand-off queue dropped
// (gsthost.Ledger).
func (c *Camera) HandoffOverflow(n uint64) { c.CapturedDropped(DropHandoff, n) }

// Drop counts n captured frames dropped for reason r (publish.Tally, and
// the sink side for pull errors and validation).
func (c *Camera) Drop(r DropReason, n uint64) { c.dropped[r].Add(n) }

// RingOverflow counts n frames the ring evicted for newer ones
// (ring.Reporter).
func (c *Camera) RingOverflow(n int) { c.Drop(DropRingOverflow, uint64(n)) }

// RingClosed counts n frames pushed into the ring after it closed
// (ring.Reporter).
func (c *Camera) RingClosed(n int) { c.Drop(DropShutdown, uint64(n)) }

// Stored counts n frames Redis acknowledged (publish.Tally).
func (c *Camera) Stored(n uint64) { c.published.Add(n) }

// Captured returns the number of frames out of the appsink.
func (c *Camera) Captured() uint64 { return c.captured.Load() }

// Published returns the number of frames Redis acknowledged.
func (c *Camera) Published() uint64 { return c.published.Load() }

// Dropped returns the number of frames dropped for reason r.
func (c *Camera) Dropped(r DropReason) uint64 { return c.dropped[r].Load() }

// DroppedTotal sums drops over every reason.
func (c *Camera) DroppedTotal() uint64 {
	var t uint64
	for i := range c.dropped {
		t += c.dropped[i].Load()
	}
	return t
}

// Flag counts one frame flagged, once under each validation reason in s.
func (c *Camera) Flag(s ReasonSet) {
	for r := range numValidation {
		if s.Has(r) {
			c.flagged[r].Add(1)
		}
	}
}

// Flagged returns the number of frames flagged for validation reason r (0
// for any other reason).
func (c *Camera) Flagged(r DropReason) uint64 {
	if r < 0 || r >= numValidation {
		return 0
	}
	return c.flagged[r].Load()
}

// LastFrame returns when the newest frame was handled (FrameCaptured), the
// zero time before the first.
func (c *Camera) LastFrame() time.Time {
	if ns := c.lastFrame.Load(); ns > 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// StreamCounts adds what a pipeline's stream watch counted since its last
// report: frames skipped as undecodable, and frames into and out of the
// decoder (gsthost.Ledger).
func (c *Camera) StreamCounts(skipped, decoderIn, decoderOut uint64) {
	c.skipped.Add(skipped)
	c.decoderIn.Add(decoderIn)
	c.decoderOut.Add(decoderOut)
}

// DecoderFrames returns the frames into and out of the decoder.
func (c *Camera) DecoderFrames() (in, out uint64) {
	// Out before in: both only grow, so in - out is never negative.
	out = c.decoderOut.Load()
	return c.decoderIn.Load(), out
}

// SetState moves the camera to s with the error text (already redacted)
// that caused it, and reports whether the state changed.
func (c *Camera) SetState(s State, errText string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := c.state != s
	if changed {
		now := time.Now()
		if len(c.changes) == maxTransitions {
			c.changes = append(c.changes[:0], c.changes[1:]...)
		}
		c.changes = append(c.changes, Transition{At: now, From: c.state, To: s, Reason: errText})
		c.state = s
		c.since = now
	}
	if errText != "" || s == StateStreaming {
		c.lastError = errText
	}
	return changed
}

// Transitions returns the camera's newest state changes, oldest first.
func (c *Camera) Transitions() []Transition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Transition{}, c.changes...)
}

// SetDecoder records which codec and decoder element the camera runs, and
// reports whether that changed.
func (c *Camera) SetDecoder(codec, decoder string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := c.codec != codec || c.decoder != decoder
	c.codec, c.decoder = codec, decoder
	return changed
}

// SetLatencySource records where capture timestamps come from.
func (c *Camera) SetLatencySource(src string) {
	c.mu.Lock()
	c.latencySrc = src
	c.mu.Unlock()
}

// Snapshot is a consistent copy of a camera's status for health and the API.
type Snapshot struct {
	ID                  string            `json:"id"`
	Source              string            `json:"source,omitempty"`
	Enabled             bool              `json:"enabled"`
	State               State             `json:"state"`
	StateSince          time.Time         `json:"state_since"`
	FPS                 float64           `json:"fps"`
	LastFrameAgeSeconds *float64          `json:"last_frame_age_seconds"`
	Captured            uint64            `json:"frames_captured"`
	Published           uint64            `json:"frames_published"`
	Dropped             map[string]uint64 `json:"frames_dropped"`
	// Flagged counts frames kept but flagged by a validation rule whose
	// action is pass, by rule; they are in Published or Dropped as well.
	Flagged       map[string]uint64 `json:"frames_flagged"`
	Reconnects    uint64            `json:"reconnects"`
	Frozen        uint64            `json:"frozen_pipelines"`
	Codec         string            `json:"codec,omitempty"`
	Decoder       string            `json:"decoder,omitempty"`
	LastError     string            `json:"last_error,omitempty"`
	LatencySource string            `json:"latency_source,omitempty"`
	// SkippedUndecodable and DiscardedByDecoder count frames lost before
	// capture, which frames_dropped (captured frames only) does not hold.
	SkippedUndecodable uint64 `json:"frames_skipped_undecodable"`
	DiscardedByDecoder uint64 `json:"frames_discarded_by_decoder"`
	// The camera's stream limit: MAXLEN, the history it holds at the
	// camera's fps, and whether redis.memory_budget shortened it.
	RedisMaxLen        int64   `json:"redis_maxlen"`
	RedisRetention     float64 `json:"redis_retention_seconds"`
	RetentionShortened bool    `json:"retention_shortened"`
	// The camera's ring within memory.budget: frames of the current size
	// it holds, its byte limit (0 = ring_size frames, no byte bound) and
	// whether the budget made it smaller than ring_size.
	RingFrames     int   `json:"ring_frames"`
	RingBytesLimit int64 `json:"ring_bytes_limit"`
	RingShortened  bool  `json:"ring_shortened"`
	// Delivery is where the pixels go (redis or shm); with shm, the
	// current segment file under shm.dir and its size.
	Delivery   string `json:"delivery,omitempty"`
	ShmSegment string `json:"shm_segment,omitempty"`
	ShmBytes   int64  `json:"shm_bytes,omitempty"`
}

// Memory is how memory.budget is shared out, for /health.
type Memory struct {
	BudgetBytes    int64  `json:"budget_bytes"` // 0 = no bound
	Source         string `json:"source,omitempty"`
	GoLimitBytes   int64  `json:"go_limit_bytes"`   // GOMEMLIMIT; 0 = the runtime's
	PerCameraBytes int64  `json:"per_camera_bytes"` // frame bytes each camera may hold
}

// Snapshot copies the camera's status at now.
func (c *Camera) Snapshot(now time.Time) Snapshot {
	s := Snapshot{
		ID:         c.ID,
		Captured:   c.captured.Load(),
		Published:  c.published.Load(),
		Reconnects: c.reconnects.Load(),
		Frozen:     c.Frozen(),
		Dropped:    make(map[string]uint64, numReasons),

		SkippedUndecodable: c.skipped.Load(),
	}
	if in, out := c.DecoderFrames(); in > out {
		s.DiscardedByDecoder = in - out
	}
	for i := range c.dropped {
		if v := c.dropped[i].Load(); v > 0 {
			s.Dropped[DropReason(i).String()] = v
		}
	}
	s.Flagged = map[string]uint64{}
	for i := range c.flagged {
		if v := c.flagged[i].Load(); v > 0 {
			s.Flagged[DropReason(i).String()] = v
		}
	}
	if last := c.LastFrame(); !last.IsZero() {
		age := now.Sub(last).Seconds()
		s.LastFrameAgeSeconds = &age
	}
	c.mu.Lock()
	s.State, s.StateSince, s.Source = c.state, c.since, c.source
	s.Enabled = c.state != StateDisabled
	s.LastError, s.Codec, s.Decoder, s.LatencySource = c.lastError, c.codec, c.decoder, c.latencySrc
	s.RedisMaxLen, s.RedisRetention, s.RetentionShortened = c.redisMaxLen, c.redisRet.Seconds(), c.retShort
	s.RingFrames, s.RingBytesLimit, s.RingShortened = c.ringFrames, c.ringBytes, c.ringShort
	s.Delivery, s.ShmSegment, s.ShmBytes = c.delivery, c.shmSegment, c.shmBytes
	s.FPS = c.fps.rate(now)
	c.mu.Unlock()
	return s
}

// State returns the current state.
func (c *Camera) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// fpsMeter counts frames in one-second buckets over the last few seconds.
type fpsMeter struct {
	buckets [fpsWindow]uint32
	secs    [fpsWindow]int64
}

const fpsWindow = 5

func (m *fpsMeter) add(now time.Time) {
	sec := now.Unix()
	i := sec % fpsWindow
	if m.secs[i] != sec {
		m.secs[i], m.buckets[i] = sec, 0
	}
	m.buckets[i]++
}

// rate averages the complete seconds of the window before now.
func (m *fpsMeter) rate(now time.Time) float64 {
	sec := now.Unix()
	var n uint32
	for i := range m.secs {
		if s := m.secs[i]; s < sec && s >= sec-(fpsWindow-1) {
			n += m.buckets[i]
		}
	}
	return float64(n) / float64(fpsWindow-1)
}

// Registry holds every camera's counters, keyed by id.
type Registry struct {
	mu       sync.RWMutex
	cams     map[string]*Camera
	onRemove []func(id string)
	// frozenGone keeps the frozen pipelines of removed cameras: their
	// goroutines and C objects are still leaked, so liveness counts them.
	frozenGone uint64
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{cams: map[string]*Camera{}} }

// Add registers (or returns the existing) counters for id.
func (r *Registry) Add(id string) *Camera {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.cams[id]; ok {
		return c
	}
	c := NewCamera(id)
	r.cams[id] = c
	return c
}

// Get returns the counters for id.
func (r *Registry) Get(id string) (*Camera, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.cams[id]
	return c, ok
}

// All returns every camera sorted by id.
func (r *Registry) All() []*Camera {
	r.mu.RLock()
	out := make([]*Camera, 0, len(r.cams))
	for _, c := range r.cams {
		out = append(out, c)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// OnRemove adds fn to the functions Remove calls with the id of a removed
// camera, so that what others keep per camera (telemetry's metric series)
// goes in the same call.
func (r *Registry) OnRemove(fn func(id string)) {
	r.mu.Lock()
	r.onRemove = append(r.onRemove, fn)
	r.mu.Unlock()
}

// Remove forgets camera id: its counters, hence its snapshot and every
// metric series collected from it, and, through OnRemove, whatever else is
// kept per camera. It reports whether id was registered. Whoever writes to
// the camera's counters must have stopped.
func (r *Registry) Remove(id string) bool {
	r.mu.Lock()
	c, ok := r.cams[id]
	if ok {
		delete(r.cams, id)
		r.frozenGone += c.Frozen()
	}
	hooks := append([]func(id string){}, r.onRemove...)
	r.mu.Unlock()
	if !ok {
		return false
	}
	for _, fn := range hooks {
		fn(id)
	}
	return true
}

// Frozen returns how many pipelines were abandoned since start, over every
// camera, removed ones included (for liveness).
func (r *Registry) Frozen() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := r.frozenGone
	for _, c := range r.cams {
		n += c.Frozen()
	}
	return n
}

// Reconnect counts one pipeline rebuild for reason (gsthost.Ledger).
func (c *Camera) Reconnect(reason ReconnectReason) {
	c.reconnects.Add(1)
	c.mu.Lock()
	if c.reconnectsBy == nil {
		c.reconnectsBy = map[ReconnectReason]uint64{}
	}
	c.reconnectsBy[reason]++
	c.mu.Unlock()
}

// Error counts one error of type typ (gsthost.Ledger). ErrFrozen is also
// the camera's count of frozen pipelines (Frozen).
func (c *Camera) Error(typ ErrorType) {
	c.mu.Lock()
	if c.errorsBy == nil {
		c.errorsBy = map[ErrorType]uint64{}
	}
	c.errorsBy[typ]++
	c.mu.Unlock()
}

// Reconnects returns the pipeline rebuilds over every reason.
func (c *Camera) Reconnects() uint64 { return c.reconnects.Load() }

// Frozen returns how many of the camera's pipelines were abandoned because
// a blocking GStreamer call missed its deadline.
func (c *Camera) Frozen() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errorsBy[ErrFrozen]
}

// ReconnectsByReason copies the reconnect counters.
func (c *Camera) ReconnectsByReason() map[ReconnectReason]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return copyCounts(c.reconnectsBy)
}

// ErrorsByType copies the error counters.
func (c *Camera) ErrorsByType() map[ErrorType]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return copyCounts(c.errorsBy)
}

// copyCounts copies a counter map; never nil, so a camera without any
// reads as {} in JSON.
func copyCounts[K comparable](m map[K]uint64) map[K]uint64 {
	out := make(map[K]uint64, len(m))
	maps.Copy(out, m)
	return out
}
