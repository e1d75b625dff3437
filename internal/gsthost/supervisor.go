package gsthost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-gst/go-gst/gst"

	"gstcapture/internal/appsink"
	"gstcapture/internal/backoff"
	"gstcapture/internal/frame"
	"gstcapture/internal/stats"
)

// Spec describes one camera's pipeline and how to supervise it.
type Spec struct {
	CameraID string
	// Launch is the rendered, credential-free launch string. It must name
	// the rtspsrc "src" and the appsink "sink".
	Launch         string
	User, Password string

	StallTimeout     time.Duration // no frame for this long while streaming: rebuild
	ReconnectInitial time.Duration
	ReconnectMax     time.Duration
	// TeardownTimeout bounds setting the pipeline to NULL; past it the
	// pipeline is abandoned and counted as frozen.
	TeardownTimeout time.Duration
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
}

// Supervisor owns one camera's pipeline: one goroutine (Run) builds it,
// watches it and rebuilds it. Nothing else touches the pipeline.
type Supervisor struct {
	spec    Spec
	cam     *stats.Camera
	handler appsink.Handler
	log     *slog.Logger
	redact  Redactor
	frozen  *atomic.Int64
	hooks   Hooks

	lastFrame atomic.Int64 // unix ns of the newest frame of the current pipeline
}

// NewSupervisor prepares a supervisor. frozen counts abandoned pipelines
// process-wide (for liveness); handler receives every frame.
func NewSupervisor(spec Spec, cam *stats.Camera, handler appsink.Handler, log *slog.Logger, redact Redactor, frozen *atomic.Int64, hooks Hooks) *Supervisor {
	if spec.TeardownTimeout <= 0 {
		spec.TeardownTimeout = 5 * time.Second
	}
	if redact == nil {
		redact = func(s string) string { return s }
	}
	return &Supervisor{spec: spec, cam: cam, handler: handler, log: log.With("camera_id", spec.CameraID), redact: redact, frozen: frozen, hooks: hooks}
}

// outcome says why a pipeline ended.
type outcome struct {
	reason  string      // reconnect reason label
	state   stats.State // camera state until the next frame
	errType string      // errors_total type label, "" for none
	text    string      // redacted detail
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
		if streamed {
			bo.Reset()
		}
		s.cam.Reconnect(out.reason)
		if out.errType != "" {
			s.cam.Error(out.errType)
		}
		delay := bo.Next()
		s.setState(out.state, out.text, slog.String("reason", out.reason), slog.Duration("retry_in", delay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
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
	p    *gst.Pipeline
	sink *appsink.Sink
}

func (s *Supervisor) build() (*pipeline, error) {
	p, err := gst.NewPipelineFromString(s.spec.Launch)
	if err != nil {
		return nil, fmt.Errorf("parse launch string: %w", err)
	}
	src, err := p.GetElementByName("src")
	if err != nil {
		return nil, errors.New("launch string has no element named \"src\"")
	}
	if s.spec.User != "" || s.spec.Password != "" {
		if err := src.Set("user-id", s.spec.User); err != nil {
			return nil, fmt.Errorf("set src user-id: %w", err)
		}
		if err := src.Set("user-pw", s.spec.Password); err != nil {
			return nil, fmt.Errorf("set src user-pw: %w", err)
		}
	}
	el, err := p.GetElementByName("sink")
	if err != nil {
		return nil, errors.New("launch string has no element named \"sink\"")
	}
	sink, err := appsink.Attach(el, s.onFrame)
	if err != nil {
		return nil, err
	}
	return &pipeline{p: p, sink: sink}, nil
}

func (s *Supervisor) onFrame(f *frame.Frame) {
	s.lastFrame.Store(f.SinkTime.UnixNano())
	s.handler(f)
}

// pollInterval is how often the owner reads the bus and checks frame age.
const pollInterval = 50 * time.Millisecond

// runOnce builds, plays and watches one pipeline until it fails or ctx ends.
func (s *Supervisor) runOnce(ctx context.Context) (streamed bool, out outcome) {
	s.lastFrame.Store(0)
	pl, err := s.build()
	if err != nil {
		return false, outcome{reason: "error", state: stats.StateError, errType: "build", text: s.redact(err.Error())}
	}
	defer s.teardown(pl)
	if err := pl.p.SetState(gst.StatePlaying); err != nil {
		if e, ok := s.drainBus(pl); ok {
			return false, e
		}
		return false, outcome{reason: "error", state: stats.StateError, errType: "core", text: "pipeline refused to start"}
	}
	start := time.Now()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return streamed, outcome{}
		case <-tick.C:
		}
		if e, ok := s.drainBus(pl); ok {
			return streamed, e
		}
		now := time.Now()
		last := s.lastFrame.Load()
		switch {
		case last == 0 && now.Sub(start) > s.spec.firstFrameAllowance():
			return false, outcome{reason: "no_frames", state: stats.StateStalled, errType: "stall",
				text: fmt.Sprintf("no frame within %s of starting the pipeline", s.spec.firstFrameAllowance())}
		case last != 0 && now.Sub(time.Unix(0, last)) > s.spec.StallTimeout:
			return true, outcome{reason: "stall", state: stats.StateStalled, errType: "stall",
				text: fmt.Sprintf("no frame for %s (stall_timeout)", s.spec.StallTimeout)}
		case last != 0 && !streamed:
			streamed = true
			s.setState(stats.StateStreaming, "")
		}
	}
}

// drainBus handles every pending bus message and reports the first one
// that ends the pipeline. Popping (rather than BlockPopMessage) keeps the
// owner goroutine free to run the watchdog and see ctx.
func (s *Supervisor) drainBus(pl *pipeline) (outcome, bool) {
	bus := pl.p.GetPipelineBus()
	for {
		m := bus.Pop()
		if m == nil {
			return outcome{}, false
		}
		switch m.Type() {
		case gst.MessageError:
			e := parseBusError(m)
			s.dumpDot(pl, "error")
			return s.classify(e), true
		case gst.MessageEOS:
			return outcome{reason: "eos", state: stats.StateDisconnected, errType: "", text: "stream ended (EOS)"}, true
		case gst.MessageWarning:
			e := parseBusError(m)
			s.log.Debug("pipeline warning", "element", e.Source, "warning", s.redact(e.Text), "debug", s.redact(e.Debug))
		case gst.MessageElement:
			if st := m.GetStructure(); st != nil && st.Name() == "GstRTSPSrcTimeout" {
				return outcome{reason: "timeout", state: stats.StateStalled, errType: "timeout", text: "RTSP source timed out (no RTP or RTCP)"}, true
			}
		}
	}
}

func (s *Supervisor) classify(e busError) outcome {
	text := e.Text
	if d := lastLine(e.Debug); d != "" {
		text += ": " + d
	}
	text = s.redact(fmt.Sprintf("%s (element %s)", text, e.Source))
	if e.unauthorized() {
		return outcome{reason: "unauthorized", state: stats.StateUnauthorized, errType: "unauthorized", text: text}
	}
	typ := strings.TrimSuffix(strings.TrimPrefix(e.Domain, "gst-"), "-error-quark")
	switch typ {
	case "core", "library", "resource", "stream":
	default:
		typ = "other"
	}
	return outcome{reason: "error", state: stats.StateError, errType: typ, text: text}
}

// lastLine returns the human part of a GStreamer debug string, whose
// first line is only "file.c(line): function (): /pipeline/element:".
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[i+1:])
	}
	return s
}

// teardown stops the pipeline within the deadline. A pipeline that does
// not reach NULL in time is abandoned (its goroutine and C objects leak)
// and counted, because waiting would wedge this camera for good.
func (s *Supervisor) teardown(pl *pipeline) {
	pl.sink.Detach()
	done := make(chan struct{})
	go func() {
		if h := s.hooks.BeforeTeardown; h != nil {
			h(s.spec.CameraID)
		}
		_ = pl.p.SetState(gst.StateNull)
		close(done)
	}()
	t := time.NewTimer(s.spec.TeardownTimeout)
	defer t.Stop()
	select {
	case <-done:
		pl.sink.Free()
	case <-t.C:
		s.cam.Frozen.Add(1)
		n := s.frozen.Add(1)
		s.cam.Error("frozen")
		s.log.Error("pipeline frozen: teardown missed its deadline, abandoned", "deadline", s.spec.TeardownTimeout, "frozen_total", n)
		s.dumpDot(pl, "frozen")
	}
}

// dumpDot writes the graph when GST_DEBUG_DUMP_DOT_DIR is set, as
// gst-launch-1.0 does; it is bounded like every other blocking call.
func (s *Supervisor) dumpDot(pl *pipeline, what string) {
	if os.Getenv("GST_DEBUG_DUMP_DOT_DIR") == "" {
		return
	}
	done := make(chan struct{})
	go func() {
		pl.p.DebugBinToDotFileWithTs(gst.DebugGraphShowAll, "gstcapture-"+s.spec.CameraID+"-"+what)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		s.log.Warn("DOT dump timed out")
	}
}
