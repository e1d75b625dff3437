package gsthost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-gst/go-gst/gst"

	"gstcapture/internal/appsink"
	"gstcapture/internal/backoff"
	"gstcapture/internal/stats"
)

// Spec describes one camera's pipeline and how to supervise it.
type Spec struct {
	CameraID string
	// Launch is the rendered, credential-free launch string. It must name
	// the rtspsrc "src" and the appsink "sink".
	Launch         string
	User, Password string
	// Codec checks the camera's SDP, or (auto) picks the launch string from
	// it on every connect; see codec.go.
	Codec CodecSpec

	StallTimeout     time.Duration // no frame for this long while streaming: rebuild
	ReconnectInitial time.Duration
	ReconnectMax     time.Duration
	// TeardownTimeout bounds setting the pipeline to NULL, StartTimeout
	// setting it to PLAYING (the codec auto probe to PAUSED); past either
	// the pipeline is abandoned and counted as frozen.
	TeardownTimeout time.Duration
	StartTimeout    time.Duration
	// MaxWidth and MaxHeight are the camera's frame size limits (0: no
	// bound), named in the error when its handler reports a larger frame
	// (Oversized); the camera then goes to state error.
	MaxWidth, MaxHeight int
	// TLSCAFile, when set, is a PEM file of the certificates an rtsps
	// camera's certificate is checked against (config tls_ca_file).
	TLSCAFile string
}

// firstFrameAllowance is how long a fresh pipeline may take to deliver its
// first frame: connecting, the RTSP handshake and waiting for a keyframe
// take longer than the gap between two frames of a running stream.
func (s Spec) firstFrameAllowance() time.Duration {
	return max(s.StallTimeout, 10*time.Second)
}

// Hooks let tests inject faults into the supervisor.
type Hooks struct {
	// BeforeTeardown runs on the teardown goroutine before the pipeline is
	// set to NULL; a hook that blocks simulates a wedged element.
	BeforeTeardown func(cameraID string)
	// BeforeStart runs on the start goroutine before the pipeline is set
	// to PLAYING (the codec auto probe to PAUSED); a hook that blocks
	// simulates an element wedged in its state change.
	BeforeStart func(cameraID string)
}

// Ledger is where a supervisor reports its camera's pipeline events, and
// where it reads when the camera's newest frame was handled: the camera's
// counters implement it (*stats.Camera). Calls come from the supervisor's
// goroutine and must not block.
type Ledger interface {
	SetState(s stats.State, errText string) (changed bool)
	SetDecoder(codec, decoder string) (changed bool)
	Reconnect(r stats.ReconnectReason)
	// Error counts an error; stats.ErrFrozen is the camera's count of
	// abandoned pipelines.
	Error(t stats.ErrorType)
	// HandoffOverflow counts n frames out of the appsink that the hand-off
	// queue dropped: captured and dropped.
	HandoffOverflow(n uint64)
	// StreamCounts adds what the stream watch counted since its last call.
	StreamCounts(skipped, decoderIn, decoderOut uint64)
	// LastFrame is when the handler last took a frame (zero before one).
	LastFrame() time.Time
	// Captured counts the frames out of the appsink, handled or dropped.
	Captured() uint64
}

// Supervisor owns one camera's pipeline: one goroutine (Run) builds it,
// watches it and rebuilds it. Nothing else touches the pipeline.
type Supervisor struct {
	spec    Spec
	cam     Ledger
	handler appsink.Handler
	log     *slog.Logger
	redact  Redactor
	hooks   Hooks

	oversize atomic.Uint64 // width<<32 | height of a frame above MaxWidth/MaxHeight, 0 for none
	restart  chan struct{} // Restart's request; one pending at most
}

// NewSupervisor prepares a supervisor and records the camera's configured
// codec and decoder on cam. handler receives every frame, straight from the
// appsink's Sink goroutine; it must record each in cam (LastFrame), which
// the stall watchdog reads.
func NewSupervisor(spec Spec, cam Ledger, handler appsink.Handler, log *slog.Logger, redact Redactor, hooks Hooks) *Supervisor {
	if spec.TeardownTimeout <= 0 {
		spec.TeardownTimeout = 5 * time.Second
	}
	if spec.StartTimeout <= 0 {
		// Longer than teardown: opening a decoder (a GPU context) on a busy
		// host happens here, and a false frozen count costs liveness.
		spec.StartTimeout = 15 * time.Second
	}
	if redact == nil {
		redact = func(s string) string { return s }
	}
	cam.SetDecoder(spec.Codec.Name, spec.Codec.Decoder)
	return &Supervisor{spec: spec, cam: cam, handler: handler, log: log.With("camera_id", spec.CameraID), redact: redact, hooks: hooks,
		restart: make(chan struct{}, 1)}
}

// Restart asks Run to rebuild the pipeline now (reconnect reason restart),
// without the backoff delay; a request while one is pending is the same
// request. It never blocks.
func (s *Supervisor) Restart() {
	select {
	case s.restart <- struct{}{}:
	default:
	}
}

// outcome says why a pipeline ended.
type outcome struct {
	reason  stats.ReconnectReason
	state   stats.State     // camera state until the next frame
	errType stats.ErrorType // "" for none
	text    string          // redacted detail
}

// Run supervises until ctx is cancelled, then stops the pipeline.
func (s *Supervisor) Run(ctx context.Context) {
	bo := backoff.New(s.spec.ReconnectInitial, s.spec.ReconnectMax)
	s.setState(stats.StateConnecting, "")
	for {
		streamed, out := s.runOnce(ctx)
		if ctx.Err() != nil {
			break
		}
		if streamed || out.reason == stats.ReconnectRestart {
			bo.Reset()
		}
		s.cam.Reconnect(out.reason)
		if out.errType != "" {
			s.cam.Error(out.errType)
		}
		delay := bo.Next()
		if out.reason == stats.ReconnectRestart {
			delay = 0
		}
		s.setState(out.state, out.text, slog.String("reason", string(out.reason)), slog.Duration("retry_in", delay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-s.restart:
			t.Stop()
		case <-t.C:
		}
		if ctx.Err() != nil {
			break
		}
	}
	s.setState(stats.StateStopped, "")
}

// setState logs only when the state changes, so a camera that fails every
// retry produces one line, not one per attempt.
func (s *Supervisor) setState(st stats.State, text string, attrs ...any) {
	if !s.cam.SetState(st, text) {
		s.log.Debug("camera state unchanged", append(attrs, "state", st, "error", text)...)
		return
	}
	lvl := slog.LevelInfo
	if text != "" {
		lvl = slog.LevelWarn
	}
	args := append([]any{"state", st}, attrs...)
	if text != "" {
		args = append(args, "error", text)
	}
	s.log.Log(context.Background(), lvl, "camera state changed", args...)
}

// pipeline is one built graph and its appsink.
type pipeline struct {
	guard
	p        *gst.Pipeline
	bus      *gst.Bus     // taken once: every GetPipelineBus is a new reference
	src, el  *gst.Element // wrappers holding references, dropped by release
	sink     *appsink.Sink
	location string       // rtspsrc location (credential-free), "" when unknown
	watch    *streamWatch // SDP check, keyframe and rate gates, decoder counts (watch.go)

	handoffSeen uint64 // sink.Overflow() already counted
}

// release drops the references the Go wrappers of a stopped pipeline hold.
// go-gst v1.4.0 drops them only from finalizers, and this process makes so
// little Go garbage that the GC may not run for minutes: until it does,
// every rebuilt pipeline keeps its sockets (its bus's poll, rtspsrc's) and
// buffers (docs/performance.md, "Pipeline rebuilds").
func (pl *pipeline) release() {
	unref(pl.src.Object, pl.el.Object, pl.bus.Object, pl.p.Bin.Element.Object)
}

// unref drops the references of go-gst wrappers now instead of from their
// finalizers. The wrappers must not be used afterwards.
func unref(objs ...*gst.Object) {
	for _, o := range objs {
		g := o.InitiallyUnowned.Object
		runtime.SetFinalizer(g, nil)
		g.Unref()
	}
}

// abandon keeps the C objects of a frozen pipeline's wrappers for good. A
// go-gst v1.4.0 wrapper unrefs its object from its finalizer, and the
// wrapper of a pipeline whose SetState is still stuck in C is garbage once
// the supervisor lets go of it: the finalizer would dispose the pipeline
// under that call (a use after free; a test reproduces it as a SIGSEGV in
// gst_element_set_state).
func abandon(objs ...*gst.Object) {
	for _, o := range objs {
		runtime.SetFinalizer(o.InitiallyUnowned.Object, nil)
	}
}

// releaseMessage frees a popped bus message now rather than from its
// finalizer: a message holds a reference to the element that posted it.
func releaseMessage(m *gst.Message) {
	runtime.SetFinalizer(m, nil)
	m.Unref()
}

func (s *Supervisor) build(launch, codec string) (*pipeline, error) {
	p, err := gst.NewPipelineFromString(launch)
	if err != nil {
		return nil, fmt.Errorf("parse launch string: %w", err)
	}
	src, err := s.findSource(p)
	if err != nil {
		return nil, err
	}
	el, err := p.GetElementByName("sink")
	if err != nil {
		return nil, errors.New("launch string has no element named \"sink\"")
	}
	sink, err := appsink.Attach(el, s.handler)
	if err != nil {
		return nil, err
	}
	loc, _ := src.GetProperty("location")
	location, _ := loc.(string)
	return &pipeline{guard: guard{what: "pipeline"}, p: p, bus: p.GetPipelineBus(), src: src, el: el, sink: sink, location: location, watch: attachWatch(p, codec)}, nil
}

// Oversized tells the supervisor that the handler got a w x h frame above
// MaxWidth x MaxHeight: its owner loop ends the pipeline, and the camera
// goes to state error. Safe from any goroutine, and on a nil Supervisor.
func (s *Supervisor) Oversized(w, h int) {
	if s != nil {
		s.oversize.CompareAndSwap(0, uint64(w)<<32|uint64(uint32(h)))
	}
}

// oversized is the outcome of a camera whose frames exceed the limits.
func (s *Supervisor) oversized(v uint64) outcome {
	return outcome{reason: stats.ReconnectError, state: stats.StateError, errType: stats.ErrStream,
		text: fmt.Sprintf("camera sends %dx%d frames, above the limit of %dx%d (max_width, max_height): raise them for this camera, or set width and height to scale it down",
			v>>32, uint32(v), s.spec.MaxWidth, s.spec.MaxHeight)}
}

// pollInterval is how often the owner reads the bus and checks frame age.
const pollInterval = 50 * time.Millisecond

// streamingFrames is how many frames a pipeline must deliver before its
// camera is streaming and the backoff starts over. One frame is not a
// stream: a camera (or relay) that answers every new session with a cached
// keyframe and then hangs stayed "stalled" only for the backoff, showed
// "streaming" for a stall_timeout after each rebuild, and was rebuilt at
// the initial backoff for ever.
const streamingFrames = 2

// runOnce builds, plays and watches one pipeline until it fails or ctx ends.
func (s *Supervisor) runOnce(ctx context.Context) (streamed bool, out outcome) {
	s.oversize.Store(0)
	// The previous pipeline's frames were all handled when its teardown
	// detached the sink: a newer frame is this pipeline's.
	before, capturedBefore := s.cam.LastFrame(), s.cam.Captured()
	launch, codec, out, ok := s.resolveLaunch(ctx)
	if !ok {
		return false, out
	}
	pl, err := s.build(launch, codec)
	if err != nil {
		return false, outcome{reason: stats.ReconnectError, state: stats.StateError, errType: stats.ErrBuild, text: s.redact(err.Error())}
	}
	defer pl.watch.release() // after teardown
	defer s.teardown(pl)
	started, err := s.start(&pl.guard, pl.p, gst.StatePlaying)
	if !started {
		return false, s.frozenStart("pipeline")
	}
	if err != nil {
		if e, ok := s.drainBus(ctx, pl); ok {
			return false, e
		}
		return false, outcome{reason: stats.ReconnectError, state: stats.StateError, errType: stats.ErrCore, text: "pipeline refused to start"}
	}
	start := time.Now()
	// While the keyframe gate holds frames back, the camera is sending and
	// only the next keyframe will help: a rebuild would wait for one too.
	// So the watchdog counts from the newest gated frame as well. A camera
	// with a 10 s GOP (libx265's default) joined mid-GOP, or after a loss,
	// was rebuilt before its keyframe came, and again, for good.
	var gatedAt time.Time
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return streamed, outcome{}
		case <-s.restart:
			return streamed, outcome{reason: stats.ReconnectRestart, state: stats.StateConnecting}
		case <-tick.C:
		}
		if v := s.oversize.Load(); v != 0 {
			return streamed, s.oversized(v)
		}
		if e, ok := s.drainBus(ctx, pl); ok {
			return streamed, e
		}
		now := time.Now()
		if pl.watch.sync(s.cam) {
			gatedAt = now
		}
		s.syncSink(pl)
		last := s.cam.LastFrame()
		framed := !last.Equal(before) // a frame of this pipeline was handled
		switch {
		case !framed && now.Sub(laterOf(start, gatedAt)) > s.spec.firstFrameAllowance():
			return false, outcome{reason: stats.ReconnectNoFrames, state: stats.StateStalled, errType: stats.ErrStall,
				text: fmt.Sprintf("no frame within %s of starting the pipeline", s.spec.firstFrameAllowance())}
		case framed && now.Sub(laterOf(last, gatedAt)) > s.spec.StallTimeout:
			return streamed, outcome{reason: stats.ReconnectStall, state: stats.StateStalled, errType: stats.ErrStall,
				text: fmt.Sprintf("no frame for %s (stall_timeout)", s.spec.StallTimeout)}
		case framed && !streamed && s.cam.Captured()-capturedBefore >= streamingFrames:
			streamed = true
			s.setState(stats.StateStreaming, "")
		}
	}
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// drainBus handles every pending bus message and reports the first one
// that ends the pipeline. Popping (rather than BlockPopMessage) keeps the
// owner goroutine free to run the watchdog and see ctx.
func (s *Supervisor) drainBus(ctx context.Context, pl *pipeline) (outcome, bool) {
	for {
		m := pl.bus.Pop()
		if m == nil {
			return outcome{}, false
		}
		out, done := s.handleMessage(ctx, pl, m)
		releaseMessage(m)
		if done {
			return out, true
		}
	}
}

// handleMessage acts on one bus message and reports whether it ends the
// pipeline.
func (s *Supervisor) handleMessage(ctx context.Context, pl *pipeline, m *gst.Message) (outcome, bool) {
	switch m.Type() {
	case gst.MessageError:
		e := parseBusError(m)
		s.dumpDot(&pl.guard, pl.p, "error")
		cause := pl.watch.tlsCause(e)
		if cause != "" {
			// the TLS handshake, not the network: no connect probe
		} else if e.failedToConnect() {
			cause = explainConnect(ctx, pl.location, min(s.spec.StallTimeout, 2*time.Second))
		} else {
			cause = pl.watch.explain(e)
		}
		return s.classify(e, cause), true
	case gst.MessageEOS:
		return outcome{reason: stats.ReconnectEOS, state: stats.StateDisconnected, text: "stream ended (EOS)"}, true
	case gst.MessageWarning:
		e := parseBusError(m)
		s.log.Debug("pipeline warning", "element", e.Source, "warning", s.redact(e.Text), "debug", s.redact(e.Debug))
	case gst.MessageElement:
		if st := m.GetStructure(); st != nil && st.Name() == "GstRTSPSrcTimeout" {
			return outcome{reason: stats.ReconnectTimeout, state: stats.StateStalled, errType: stats.ErrTimeout, text: "RTSP source timed out (no RTP or RTCP)"}, true
		}
	}
	return outcome{}, false
}

// classify maps a bus error to an outcome; cause, when not empty, is what
// the supervisor found out beyond GStreamer's message.
func (s *Supervisor) classify(e busError, cause string) outcome {
	text := e.Text
	if d := lastLine(e.Debug); d != "" {
		text += ": " + d
	}
	if cause != "" {
		text += ": " + cause
	}
	text = s.redact(fmt.Sprintf("%s (element %s)", text, e.Source))
	if e.unauthorized() {
		return outcome{reason: stats.ReconnectUnauthorized, state: stats.StateUnauthorized, errType: stats.ErrUnauthorized, text: text}
	}
	typ := stats.ErrorType(strings.TrimSuffix(strings.TrimPrefix(e.Domain, "gst-"), "-error-quark"))
	switch typ {
	case stats.ErrCore, stats.ErrLibrary, stats.ErrResource, stats.ErrStream:
	default:
		typ = stats.ErrOther
	}
	return outcome{reason: stats.ReconnectError, state: stats.StateError, errType: typ, text: text}
}

// failedToConnect reports rtspsrc's error for a connection it could not
// open at once. rtspsrc says only "Failed to connect. (Generic error)" for a
// name that does not resolve and for a refused connection alike (the cause
// goes to GStreamer's log, not to the message); a connect that timed out
// says so already.
func (e busError) failedToConnect() bool {
	return e.Domain == "gst-resource-error-quark" && strings.Contains(e.Debug, "Failed to connect") &&
		!strings.Contains(e.Debug, "Timeout")
}

// explainConnect finds out why location's host cannot be reached, the way
// rtspsrc connects: resolve the name, then open a TCP connection (closed at
// once). It returns "" when both work now. Bounded by timeout and ctx.
func explainConnect(ctx context.Context, location string, timeout time.Duration) string {
	u, err := url.Parse(location)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "554"
		if u.Scheme == "rtsps" {
			port = "322"
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host := u.Hostname()
	if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			err = errors.New(dnsErr.Err)
		}
		return fmt.Sprintf("cannot resolve host %q: %v", host, err)
	}
	addr := net.JoinHostPort(host, port)
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			err = opErr.Err
		}
		return fmt.Sprintf("cannot connect to %s: %v", addr, err)
	}
	_ = c.Close()
	return ""
}

// lastLine returns the human part of a GStreamer debug string, whose
// first line is only "file.c(line): function (): /pipeline/element:".
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	// A one-line debug string is only the location: nothing for a user.
	if strings.HasSuffix(s, ":") && strings.Contains(s, "/GstPipeline:") {
		return ""
	}
	return s
}

// teardown stops the pipeline within the deadline. A pipeline that is
// abandoned, now or by an earlier call, keeps its C objects (they may be in
// use by the call still running) and gets a DOT dump.
func (s *Supervisor) teardown(pl *pipeline) {
	pl.sink.Detach()
	s.syncSink(pl)
	if s.setNull(&pl.guard, pl.p) {
		pl.sink.Free()
		pl.release()
		return
	}
	abandon(pl.src.Object, pl.el.Object, pl.bus.Object, pl.p.Bin.Element.Object)
	s.dumpDot(&pl.guard, pl.p, "frozen")
}

// syncSink reports the frames the appsink hand-off dropped since the last
// call: out of the appsink (captured) and dropped, so captured stays
// published + dropped.
func (s *Supervisor) syncSink(pl *pipeline) {
	n := pl.sink.Overflow()
	if d := n - pl.handoffSeen; d > 0 {
		s.cam.HandoffOverflow(d)
		pl.handoffSeen = n
	}
}

// guard records whether one of a pipeline's blocking GStreamer calls
// missed its deadline: the pipeline is then abandoned, counted as frozen
// once, and not touched again but for a DOT dump.
type guard struct {
	what   string // names the pipeline in the log: "pipeline", "codec auto probe"
	frozen string // the call that missed its deadline; "" while none has
}

// bounded runs call, a GStreamer call that can block, on its own goroutine
// after hook (a test fault; nil in production), and waits at most d for it.
// A C call cannot be cancelled: one that misses the deadline is left
// running, its pipeline abandoned (that goroutine and the pipeline's C
// objects leak), counted as frozen and logged, because waiting would wedge
// this camera for good. bounded reports whether call returned in time; only
// then may the caller read what call wrote.
func (s *Supervisor) bounded(g *guard, op string, d time.Duration, hook func(cameraID string), call func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if hook != nil {
			hook(s.spec.CameraID)
		}
		call()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
	}
	if g.frozen != "" {
		s.log.Warn(g.what+" "+op+" missed its deadline as well", "deadline", d, "frozen_by", g.frozen)
		return false
	}
	g.frozen = op
	s.cam.Error(stats.ErrFrozen) // the one count of a frozen pipeline
	s.log.Error(g.what+" frozen: "+op+" missed its deadline, abandoned", "deadline", d)
	return false
}

// start sets p to st (PLAYING, or PAUSED for the probe) within the start
// deadline. ok is false when p missed it and was abandoned; err is
// SetState's otherwise.
func (s *Supervisor) start(g *guard, p *gst.Pipeline, st gst.State) (ok bool, err error) {
	var setErr error // written by the call, read only once it returned
	if !s.bounded(g, "start", s.spec.StartTimeout, s.hooks.BeforeStart, func() { setErr = p.SetState(st) }) {
		return false, nil
	}
	return true, setErr
}

// frozenStart is the outcome of a pipeline abandoned at its start deadline
// (counted as a "frozen" error already).
func (s *Supervisor) frozenStart(what string) outcome {
	return outcome{reason: stats.ReconnectError, state: stats.StateError,
		text: fmt.Sprintf("%s did not start within %s: abandoned as frozen", what, s.spec.StartTimeout)}
}

// setNull sets p to NULL within the teardown deadline and reports whether
// it got there; an abandoned p is not touched again.
func (s *Supervisor) setNull(g *guard, p *gst.Pipeline) bool {
	if g.frozen != "" {
		return false
	}
	return s.bounded(g, "teardown", s.spec.TeardownTimeout, s.hooks.BeforeTeardown, func() { _ = p.SetState(gst.StateNull) })
}
