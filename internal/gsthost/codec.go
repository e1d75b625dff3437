package gsthost

// The camera's codec: checking the SDP against the configuration, codec
// auto's probe, and explaining rtspsrc errors from what the watch saw.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-gst/go-gst/gst"

	"gstcapture/internal/stats"
)

// CodecLaunch is what a camera runs for one codec.
type CodecLaunch struct {
	Launch  string // rendered launch string, as Spec.Launch
	Decoder string // decoder element, for stats and rtsp_decoder_info
}

// CodecSpec says which codec a camera runs and how its SDP is checked.
type CodecSpec struct {
	// Name is the configured codec. "h264" or "h265": the camera's SDP must
	// announce that video encoding, or the pipeline fails with an error
	// naming what it announced. "auto": every (re)connect first runs
	// ProbeLaunch until the SDP arrives, then the Auto entry of the
	// announced codec. "" checks nothing (pipelines without rtspsrc).
	Name        string
	Decoder     string // the decoder element of Name's launch string; "" with auto
	Auto        map[string]CodecLaunch
	ProbeLaunch string // rtspsrc named "src" and a sink, nothing else
}

// CodecAuto is the codec name that makes the supervisor probe the camera.
const CodecAuto = "auto"

// sdpEncoding maps a configured codec to the RTP encoding-name of its SDP.
var sdpEncoding = map[string]string{"h264": "H264", "h265": "H265"}

// codecOf maps an SDP encoding name back to a configured codec.
func codecOf(encoding string) (string, bool) {
	for c, e := range sdpEncoding {
		if e == encoding {
			return c, true
		}
	}
	return "", false
}

// lowerTrans names GstRTSPLowerTrans flags as the config's transport does.
var lowerTrans = []struct {
	flag uint
	name string
}{{1, "UDP"}, {2, "UDP multicast"}, {4, "TCP"}, {16, "HTTP"}, {32, "TLS"}}

// explain adds what the watch knows to a pipeline error rtspsrc words
// vaguely; "" when it knows nothing. rtspsrc reports "No supported stream
// was found" when the camera answered SETUP with 461 Unsupported Transport
// for every transport it was allowed to try (our own refusal of every
// stream is reported by the SDP check before that).
func (w *streamWatch) explain(e busError) string {
	if w == nil || w.c == nil || e.Source != "src" || !strings.Contains(e.Text, "No supported stream was found") {
		return ""
	}
	if w.refusedAll() {
		return ""
	}
	flags := w.protocols()
	var allowed []string
	for _, t := range lowerTrans {
		if flags&t.flag != 0 {
			allowed = append(allowed, t.name)
		}
	}
	if len(allowed) == 0 {
		return ""
	}
	hint := "check the camera's RTSP transport settings"
	if flags&4 == 0 {
		hint = "if UDP is blocked or disabled, set transport: tcp or auto"
	}
	return fmt.Sprintf("the camera refused RTP over %s, which is all the transport setting allows; %s", strings.Join(allowed, " and "), hint)
}

// tlsProblems name GTlsCertificateFlags as an operator reads them.
var tlsProblems = []struct {
	flag uint
	text string
}{
	{1, "it is signed by an unknown certificate authority"},
	{2, "it is not for the host in the camera's URL"},
	{4, "it is not valid yet"},
	{8, "it has expired"},
	{16, "it has been revoked"},
	{32, "it uses an insecure algorithm"},
	{64, "it could not be validated"},
}

// tlsCause explains an rtspsrc error after it refused the camera's rtsps
// certificate (rtspsrc itself says only "Failed to connect"); "" when it
// refused none.
func (w *streamWatch) tlsCause(e busError) string {
	if w == nil || w.c == nil || e.Source != "src" {
		return ""
	}
	if flags := w.tlsErrors(); flags != 0 {
		return explainTLS(flags)
	}
	return ""
}

// explainTLS says why an rtsps camera's certificate was refused (flags are
// GTlsCertificateFlags) and what to do about it.
func explainTLS(flags uint) string {
	var why []string
	for _, p := range tlsProblems {
		if flags&p.flag != 0 {
			why = append(why, p.text)
		}
	}
	if len(why) == 0 {
		why = append(why, fmt.Sprintf("validation flags %#x", flags))
	}
	hint := "fix the camera's certificate"
	switch {
	case flags&1 != 0:
		hint = "set tls_ca_file to a PEM file of the CA that signed it (or of the camera's own self-signed certificate)"
	case flags&2 != 0:
		hint = "use the host name or address the certificate names in the camera's URL"
	}
	return fmt.Sprintf("TLS: the camera's certificate was refused: %s; %s", strings.Join(why, ", "), hint)
}

// resolveLaunch returns the launch string and codec of the next pipeline.
// With codec auto it probes the camera first; ok is false when the probe
// failed, and out says why.
func (s *Supervisor) resolveLaunch(ctx context.Context) (launch, codec string, out outcome, ok bool) {
	if s.spec.Codec.Name != CodecAuto {
		return s.spec.Launch, s.spec.Codec.Name, outcome{}, true
	}
	names, out, ok := s.probeSDP(ctx)
	if !ok {
		return "", "", out, false
	}
	for _, enc := range names {
		c, known := codecOf(enc)
		if !known {
			continue
		}
		cl, have := s.spec.Codec.Auto[c]
		if !have {
			return "", "", outcome{reason: stats.ReconnectError, state: stats.StateError, errType: stats.ErrBuild,
				text: fmt.Sprintf("camera announced %s but no %s decoder is available (codec auto)", enc, c)}, false
		}
		if s.cam.SetDecoder(c, cl.Decoder) {
			s.log.Info("codec detected", "codec", c, "decoder", cl.Decoder, "announced", strings.Join(names, ","))
		}
		return cl.Launch, c, outcome{}, true
	}
	what := "no video stream"
	if len(names) > 0 {
		what = strings.Join(names, ",")
	}
	return "", "", outcome{reason: stats.ReconnectError, state: stats.StateError, errType: stats.ErrStream,
		text: fmt.Sprintf("camera announced %s; codec auto decodes H264 and H265 video (element src)", what)}, false
}

// probeSDP runs the probe pipeline (rtspsrc alone, PAUSED, every stream
// refused: OPTIONS and DESCRIBE only, no session on the camera) until the
// camera's SDP arrives, an error is posted, or firstFrameAllowance passes,
// and returns the announced video encodings. The SDP is looked at before
// the bus, so rtspsrc's own "No supported stream" error that follows the
// refusal is never reported. Other errors are classified like the capture
// pipeline's, so a wrong password still reads as unauthorized.
func (s *Supervisor) probeSDP(ctx context.Context) ([]string, outcome, bool) {
	p, err := gst.NewPipelineFromString(s.spec.Codec.ProbeLaunch)
	if err != nil {
		return nil, outcome{reason: stats.ReconnectError, state: stats.StateError, errType: stats.ErrBuild, text: s.redact("codec auto probe: parse launch string: " + err.Error())}, false
	}
	src, err := s.findSource(p)
	if err != nil {
		return nil, outcome{reason: stats.ReconnectError, state: stats.StateError, errType: stats.ErrBuild, text: s.redact("codec auto probe: " + err.Error())}, false
	}
	unref(src.Object)
	w := newWatch(p, "", true)
	defer w.release()
	bus := p.GetPipelineBus()
	g := &guard{what: "codec auto probe"}
	defer s.stopProbe(g, p, bus)
	started, err := s.start(g, p, gst.StatePaused)
	if !started {
		return nil, s.frozenStart("codec auto probe"), false
	}
	if err != nil {
		if e, ok := probeBusError(bus); ok {
			return nil, s.classify(e, ""), false
		}
		return nil, outcome{reason: stats.ReconnectError, state: stats.StateError, errType: stats.ErrCore, text: "codec auto probe: pipeline refused to start"}, false
	}
	limit := s.spec.firstFrameAllowance()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if names, seen := w.announced(); seen {
			return names, outcome{}, true
		}
		if e, ok := probeBusError(bus); ok {
			return nil, s.classify(e, ""), false
		}
		select {
		case <-ctx.Done():
			return nil, outcome{}, false
		case <-deadline.C:
			return nil, outcome{reason: stats.ReconnectTimeout, state: stats.StateStalled, errType: stats.ErrTimeout,
				text: fmt.Sprintf("codec auto: no SDP from the camera within %s", limit)}, false
		case <-tick.C:
		}
	}
}

// probeBusError pops the bus up to the first ERROR message.
func probeBusError(bus *gst.Bus) (busError, bool) {
	for {
		m := bus.Pop()
		if m == nil {
			return busError{}, false
		}
		isErr := m.Type() == gst.MessageError
		var e busError
		if isErr {
			e = parseBusError(m)
		}
		releaseMessage(m)
		if isErr {
			return e, true
		}
	}
}

// findSource returns the pipeline's rtspsrc "src" with the credentials set
// (user-id and user-pw properties, never part of a launch string) and, for
// a private CA, its TLS database.
func (s *Supervisor) findSource(p *gst.Pipeline) (*gst.Element, error) {
	src, err := p.GetElementByName("src")
	if err != nil {
		return nil, errors.New("launch string has no element named \"src\"")
	}
	return src, s.setCredentials(src)
}

func (s *Supervisor) setCredentials(src *gst.Element) error {
	if s.spec.TLSCAFile != "" {
		if err := setTLSAnchors(src, s.spec.TLSCAFile); err != nil {
			return err
		}
	}
	if s.spec.User == "" && s.spec.Password == "" {
		return nil
	}
	if err := src.Set("user-id", s.spec.User); err != nil {
		return fmt.Errorf("set src user-id: %w", err)
	}
	if err := src.Set("user-pw", s.spec.Password); err != nil {
		return fmt.Errorf("set src user-pw: %w", err)
	}
	return nil
}

// stopProbe sets the probe pipeline to NULL within the teardown deadline;
// one that misses it, or its start deadline, is abandoned and counted as
// frozen once, like a capture pipeline (rtspsrc sends TEARDOWN on the way,
// which a wedged camera may never answer).
func (s *Supervisor) stopProbe(g *guard, p *gst.Pipeline, bus *gst.Bus) {
	if s.setNull(g, p) {
		unref(bus.Object, p.Bin.Element.Object)
		return
	}
	abandon(bus.Object, p.Bin.Element.Object)
	s.dumpDot(g, p, "probe-frozen")
}
