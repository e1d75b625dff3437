package stats

import (
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
	numReasons
)

var reasonNames = [numReasons]string{"black", "uniform", "frozen", "size", "corrupt", "ring_overflow", "redis_error", "shutdown", "handoff_overflow", "pull_error", "redis_oom"}

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
)

// States lists every state, for one metric series per state.
var States = []State{StateStarting, StateConnecting, StateStreaming, StateStalled, StateDisconnected, StateUnauthorized, StateError, StateStopped}

// Camera is one camera's live counters. Hot-path fields are atomics so the
// streaming thread never takes a lock.
type Camera struct {
	ID string

	Captured  atomic.Uint64
	Published atomic.Uint64
	dropped   [numReasons]atomic.Uint64
	// flagged counts frames a validation rule with action pass flagged:
	// they are kept (published or dropped later), so outside the identity.
	flagged [numValidation]atomic.Uint64

	LastFrameUnixNano atomic.Int64
	Reconnects        atomic.Uint64 // sum over reasons
	Frozen            atomic.Uint64 // pipelines abandoned because teardown missed its deadline

	// Frames lost before the appsink, so never captured (see gsthost's
	// stream watch): encoded frames skipped between a stream discontinuity
	// and the next keyframe, and frames into and out of the decoder.
	SkippedUndecodable atomic.Uint64
	DecoderIn          atomic.Uint64
	DecoderOut         atomic.Uint64

	mu           sync.Mutex
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
	fps          fpsMeter
	reconnectsBy map[string]uint64
	errorsBy     map[string]uint64
}

// NewCamera returns counters for camera id in the starting state.
func NewCamera(id string) *Camera {
	return &Camera{ID: id, state: StateStarting, since: time.Now()}
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

// Drop counts n frames dropped for reason r.
func (c *Camera) Drop(r DropReason, n uint64) { c.dropped[r].Add(n) }

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

// FrameCaptured records one frame out of the appsink at now.
func (c *Camera) FrameCaptured(now time.Time) {
	c.Captured.Add(1)
	c.LastFrameUnixNano.Store(now.UnixNano())
	c.mu.Lock()
	c.fps.add(now)
	c.mu.Unlock()
}

// SetState moves the camera to s with the error text (already redacted)
// that caused it, and reports whether the state changed.
func (c *Camera) SetState(s State, errText string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := c.state != s
	if changed {
		c.state = s
		c.since = time.Now()
	}
	if errText != "" || s == StateStreaming {
		c.lastError = errText
	}
	return changed
}

// SetDecoder records which codec and decoder element the camera runs.
func (c *Camera) SetDecoder(codec, decoder string) {
	c.mu.Lock()
	c.codec, c.decoder = codec, decoder
	c.mu.Unlock()
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
		Captured:   c.Captured.Load(),
		Published:  c.Published.Load(),
		Reconnects: c.Reconnects.Load(),
		Frozen:     c.Frozen.Load(),
		Dropped:    make(map[string]uint64, numReasons),

		SkippedUndecodable: c.SkippedUndecodable.Load(),
	}
	// Out before in: both only grow, so the difference is never negative.
	out := c.DecoderOut.Load()
	if in := c.DecoderIn.Load(); in > out {
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
	if last := c.LastFrameUnixNano.Load(); last > 0 {
		age := now.Sub(time.Unix(0, last)).Seconds()
		s.LastFrameAgeSeconds = &age
	}
	c.mu.Lock()
	s.State, s.StateSince = c.state, c.since
	s.LastError, s.Codec, s.Decoder, s.LatencySource = c.lastError, c.codec, c.decoder, c.latencySrc
	s.RedisMaxLen, s.RedisRetention, s.RetentionShortened = c.redisMaxLen, c.redisRet.Seconds(), c.retShort
	s.RingFrames, s.RingBytesLimit, s.RingShortened = c.ringFrames, c.ringBytes, c.ringShort
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
	mu   sync.RWMutex
	cams map[string]*Camera
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

// Reconnect counts one pipeline rebuild for reason (a bounded label:
// error, eos, stall, timeout, unauthorized, no_frames).
func (c *Camera) Reconnect(reason string) {
	c.Reconnects.Add(1)
	c.mu.Lock()
	if c.reconnectsBy == nil {
		c.reconnectsBy = map[string]uint64{}
	}
	c.reconnectsBy[reason]++
	c.mu.Unlock()
}

// Error counts one error of a bounded type (resource, stream, core,
// library, unauthorized, timeout, stall, build).
func (c *Camera) Error(typ string) {
	c.mu.Lock()
	if c.errorsBy == nil {
		c.errorsBy = map[string]uint64{}
	}
	c.errorsBy[typ]++
	c.mu.Unlock()
}

// ReconnectsByReason copies the reconnect counters.
func (c *Camera) ReconnectsByReason() map[string]uint64 { return c.copyMap(&c.reconnectsBy) }

// ErrorsByType copies the error counters.
func (c *Camera) ErrorsByType() map[string]uint64 { return c.copyMap(&c.errorsBy) }

func (c *Camera) copyMap(m *map[string]uint64) map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(*m))
	for k, v := range *m {
		out[k] = v
	}
	return out
}
