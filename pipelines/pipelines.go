package pipelines

import (
	"embed"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"gstcapture/internal/config"
	"gstcapture/internal/frame"
)

//go:embed h264.tmpl h265.tmpl probe.tmpl
var files embed.FS

var templates = template.Must(template.New("pipelines").
	Funcs(template.FuncMap{"q": mustQuote}).
	ParseFS(files, "*.tmpl"))

// Element names the rest of the code looks up in a rendered pipeline.
const (
	SourceName  = "src"
	DecoderName = "dec"
	EncoderName = "enc" // the JPEG encoder, with format JPEG only
	SinkName    = "sink"
)

// Sinks Render accepts. "fakesink" is the baseline without the Go callback.
const (
	SinkAppsink  = "appsink"
	SinkFakesink = "fakesink"
)

// frameRateCeiling is declared as the decoded framerate before videorate
// (capssetter), above any fps the config allows. RTSP streams whose SPS has
// no timing info decode with framerate=0/1, and videorate max-rate does not
// limit a 0/1 stream (measured on 1.22: 25 fps in, 25 fps out). With a
// declared rate, drop-only videorate limits by buffer timestamps, so the
// real rate of the camera is what counts and nothing is ever duplicated.
const frameRateCeiling = 120

// Prop is one element property, as gst-launch-1.0 would take it.
type Prop struct{ Name, Value string }

// Decoder is the decoder element and the properties to set on it.
type Decoder struct {
	Element string
	GPU     bool
	Props   []Prop
}

// Encoder is the JPEG encoder element of a camera with format JPEG
// (ChooseEncoder); the zero Encoder for the raw formats.
type Encoder struct {
	Element string
	GPU     bool
}

// JPEG encoders, best first for a camera decoding on the GPU. Both take
// system-memory I420 (nvjpegenc uploads it) and have a quality property
// of 1-100. nvjpegenc is in GStreamer's nvcodec plugin from 1.24.
const (
	EncoderNV   = "nvjpegenc"
	EncoderJPEG = "jpegenc"
)

// Params are the typed parameters of one camera's pipeline.
type Params struct {
	Codec          string        // h264 | h265: which template
	Location       string        // rtsp(s) URL without user-info
	Protocols      string        // rtspsrc protocols, see ProtocolsFor
	LatencyMS      int           // rtspsrc jitterbuffer latency
	TCPTimeout     time.Duration // rtspsrc tcp-timeout: connect, each request, and (TCP) data
	UDPTimeout     time.Duration // rtspsrc timeout: no UDP data -> retry over TCP or fail
	Decoder        Decoder
	FPS            int    // upper bound; a slower camera is not padded
	Format         string // frame.Format name
	Encoder        Encoder
	JPEGQuality    int    // the encoder's quality, 1-100; with Encoder only
	Width, Height  int    // 0, 0 = keep the camera's size
	Converter      string // ConverterSws or ConverterVideoconvert, see ChooseConverter
	ConvertThreads int    // videoconvert/videoscale n-threads, 0 = auto
	Sink           string // "appsink" (default) or "fakesink"
}

// view is what the templates see.
type view struct {
	Params
	FrameRateCeiling int
}

var (
	elementNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	propNameRe    = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	protocols     = map[string]bool{"tcp": true, "udp": true, "udp+tcp": true}
)

// Render returns the gst-launch-1.0 line for p, or an error naming the
// first parameter that is out of range or cannot be escaped.
func Render(p Params) (string, error) {
	if p.Sink == "" {
		p.Sink = SinkAppsink
	}
	if err := p.check(); err != nil {
		return "", err
	}
	var b strings.Builder
	if err := templates.ExecuteTemplate(&b, p.Codec+".tmpl", view{p, frameRateCeiling}); err != nil {
		return "", fmt.Errorf("render %s pipeline: %w", p.Codec, err)
	}
	return joinLines(b.String()), nil
}

// joinLines makes a rendered template one line. Templates put one element
// per line for reading; quoted values cannot hold a newline (quote rejects
// it), so trimming and joining lines never touches a value.
func joinLines(s string) string {
	var parts []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, " ")
}

// RenderProbe returns the launch line that codec auto runs before each
// connect to read the camera's SDP: rtspsrc with p's connection parameters
// (location, protocols, timeouts) and a fakesink. Other fields are ignored.
func RenderProbe(p Params) (string, error) {
	if err := p.checkSource(); err != nil {
		return "", err
	}
	var b strings.Builder
	if err := templates.ExecuteTemplate(&b, "probe.tmpl", view{p, frameRateCeiling}); err != nil {
		return "", fmt.Errorf("render probe pipeline: %w", err)
	}
	return joinLines(b.String()), nil
}

func (p Params) check() error {
	if p.Codec == "probe" || templates.Lookup(p.Codec+".tmpl") == nil {
		return fmt.Errorf("codec %q: no pipeline template (want h264 or h265)", p.Codec)
	}
	if err := p.checkSource(); err != nil {
		return err
	}
	if p.LatencyMS < 0 {
		return fmt.Errorf("latency %d ms: must be >= 0", p.LatencyMS)
	}
	return p.checkRest()
}

// checkSource checks the parameters of rtspsrc's connection.
func (p Params) checkSource() error {
	if !strings.HasPrefix(p.Location, "rtsp://") && !strings.HasPrefix(p.Location, "rtsps://") {
		// Also keeps a value from starting with '"', which GStreamer's string
		// deserializer would unwrap a second time.
		return errors.New("location must start with rtsp:// or rtsps://")
	}
	if _, err := quote(p.Location); err != nil {
		return fmt.Errorf("location: %w", err)
	}
	if !protocols[p.Protocols] {
		return fmt.Errorf("protocols %q: want tcp, udp or udp+tcp", p.Protocols)
	}
	if p.TCPTimeout < time.Millisecond || p.UDPTimeout < time.Millisecond {
		return fmt.Errorf("tcp timeout %s, udp timeout %s: both must be >= 1ms", p.TCPTimeout, p.UDPTimeout)
	}
	return nil
}

// checkRest checks the parameters after the source.
func (p Params) checkRest() error {
	if !elementNameRe.MatchString(p.Decoder.Element) {
		return fmt.Errorf("decoder element %q: not an element name", p.Decoder.Element)
	}
	for _, prop := range p.Decoder.Props {
		if !propNameRe.MatchString(prop.Name) || prop.Name == "name" {
			return fmt.Errorf("decoder property %q: not a property name", prop.Name)
		}
		if _, err := quote(prop.Value); err != nil {
			return fmt.Errorf("decoder property %s: %w", prop.Name, err)
		}
	}
	if p.FPS < 1 || p.FPS > frameRateCeiling {
		return fmt.Errorf("fps %d: must be between 1 and %d", p.FPS, frameRateCeiling)
	}
	f, err := frame.ParseFormat(p.Format)
	if err != nil {
		return err
	}
	if err := p.checkEncoder(f); err != nil {
		return err
	}
	if p.Width < 0 || p.Height < 0 || (p.Width == 0) != (p.Height == 0) {
		return fmt.Errorf("size %dx%d: set both or neither", p.Width, p.Height)
	}
	if p.Converter != ConverterSws && p.Converter != ConverterVideoconvert {
		return fmt.Errorf("converter %q: want %s or %s", p.Converter, ConverterSws, ConverterVideoconvert)
	}
	if p.Converter == ConverterSws && !swsFormats[p.Format] {
		return fmt.Errorf("converter %s cannot output %s", ConverterSws, p.Format)
	}
	if p.ConvertThreads < 0 {
		return fmt.Errorf("convert threads %d: must be >= 0", p.ConvertThreads)
	}
	if p.Sink != SinkAppsink && p.Sink != SinkFakesink {
		return fmt.Errorf("sink %q: want appsink or fakesink", p.Sink)
	}
	return nil
}

// checkEncoder checks that format f has the encoder it needs: a JPEG
// encoder and its quality for JPEG, none for a raw format.
func (p Params) checkEncoder(f frame.Format) error {
	switch {
	case f != frame.JPEG && p.Encoder.Element != "":
		return fmt.Errorf("encoder %s: format %s is raw, it takes no encoder", p.Encoder.Element, f)
	case f != frame.JPEG:
		return nil
	case p.Encoder.Element != EncoderJPEG && p.Encoder.Element != EncoderNV:
		return fmt.Errorf("format JPEG: encoder %q: want %s or %s", p.Encoder.Element, EncoderJPEG, EncoderNV)
	case p.JPEGQuality < 1 || p.JPEGQuality > 100:
		return fmt.Errorf("jpeg quality %d: must be between 1 and 100", p.JPEGQuality)
	}
	return nil
}

// quote makes s one gst-launch-1.0 property value: wrapped in double quotes,
// with '\' and '"' escaped by a backslash (the parser removes one level).
//
// Rejected, because no escaping survives the parser:
//   - control characters, newlines included;
//   - invalid UTF-8 (GStreamer refuses the string);
//   - a trailing backslash: its escaped form `\\"` ends the value with `\"`,
//     which the lexer may read as an escaped quote, running the value on
//     into the next property.
//
// Inside the quotes '!', spaces, '=' and single quotes are plain text, so
// a value can neither end early nor add elements.
func quote(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("control character %U cannot be escaped", r)
		}
	}
	if strings.HasSuffix(s, `\`) {
		return "", errors.New("a trailing backslash cannot be escaped")
	}
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`, nil
}

// mustQuote is quote for the templates; Render has already checked every
// value it is given, so an error here is a bug.
func mustQuote(s string) (string, error) { return quote(s) }

// Candidates lists the decoder elements for a codec, best first.
func Candidates(codec string) (gpu, cpu []string) {
	switch codec {
	case "h264":
		return []string{"nvh264dec"}, []string{"avdec_h264", "openh264dec"}
	case "h265":
		return []string{"nvh265dec"}, []string{"avdec_h265", "libde265dec"}
	}
	return nil, nil
}

// ChooseDecoder picks the decoder for codec. preference is auto (first GPU
// decoder present, else first CPU one), gpu (GPU only) or cpu (CPU only).
// have reports whether GStreamer has an element (gst.Find in gsthost).
func ChooseDecoder(codec, preference string, decoderThreads int, have func(element string) bool) (Decoder, error) {
	gpu, cpu := Candidates(codec)
	if gpu == nil && cpu == nil {
		return Decoder{}, fmt.Errorf("codec %q: no decoders known (want h264 or h265)", codec)
	}
	var lists [][]string
	switch preference {
	case "auto":
		lists = [][]string{gpu, cpu}
	case "gpu":
		lists = [][]string{gpu}
	case "cpu":
		lists = [][]string{cpu}
	default:
		return Decoder{}, fmt.Errorf("decoder preference %q: want auto, gpu or cpu", preference)
	}
	var looked []string
	for i, list := range lists {
		for _, el := range list {
			looked = append(looked, el)
			if have(el) {
				isGPU := preference == "gpu" || (preference == "auto" && i == 0)
				return Decoder{Element: el, GPU: isGPU, Props: decoderProps(el, decoderThreads)}, nil
			}
		}
	}
	kind := map[string]string{"auto": "", "gpu": "GPU ", "cpu": "CPU "}[preference]
	return Decoder{}, fmt.Errorf("no %s%s decoder found (looked for %s; install gstreamer1.0-libav for avdec_*, or the nvcodec plugin and NVIDIA driver for nv*dec)",
		kind, codec, strings.Join(looked, ", "))
}

// decoderProps are the properties set on each decoder element.
func decoderProps(element string, threads int) []Prop {
	switch {
	case strings.HasPrefix(element, "avdec_"):
		return []Prop{
			// Frames libav knows to be broken are not output at all.
			{"output-corrupt", "false"},
			// Bounded per camera; 0 lets libav use every core per stream.
			{"max-threads", fmt.Sprint(threads)},
		}
	case element == "libde265dec":
		return []Prop{{"max-threads", fmt.Sprint(threads)}}
	}
	return nil
}

// ChooseEncoder picks the encoder of a camera publishing format: none for
// a raw format; for JPEG, nvjpegenc when the camera decodes on the GPU
// (dec.GPU) and GStreamer has it, else jpegenc. have reports whether
// GStreamer has an element.
func ChooseEncoder(format string, dec Decoder, have func(element string) bool) (Encoder, error) {
	if format != string(frame.JPEG) {
		return Encoder{}, nil
	}
	looked := []string{EncoderJPEG}
	if dec.GPU {
		if have(EncoderNV) {
			return Encoder{Element: EncoderNV, GPU: true}, nil
		}
		looked = []string{EncoderNV, EncoderJPEG}
	}
	if have(EncoderJPEG) {
		return Encoder{Element: EncoderJPEG}, nil
	}
	return Encoder{}, fmt.Errorf("format JPEG: no JPEG encoder found (looked for %s; install gstreamer1.0-plugins-good for jpegenc)", strings.Join(looked, ", "))
}

// Colour converters: gstcapture's swsconvert element (libswscale, in
// internal/gsthost) or GStreamer's videoconvert.
const (
	ConverterSws          = "swsconvert"
	ConverterVideoconvert = "videoconvert"
)

// swsFormats are the published formats swsconvert produces.
var swsFormats = map[string]bool{string(frame.BGR): true, string(frame.RGB): true}

// ChooseConverter picks the colour converter for a published format.
// preference auto takes swsconvert for BGR and RGB: libswscale's SIMD
// YUV->RGB is 4.6x cheaper than videoconvert's (docs/performance.md);
// planar and grey outputs are cheap for videoconvert and stay with it, and
// so does JPEG's I420 in front of the encoder (no conversion at all for a
// decoder's I420).
func ChooseConverter(format, preference string) string {
	if preference == "auto" && swsFormats[format] {
		return ConverterSws
	}
	return ConverterVideoconvert
}

// ProtocolsFor maps config transport to rtspsrc's protocols flags.
// "auto" is "udp+tcp": rtspsrc tries UDP and falls back to TCP when no UDP
// packet arrives within the timeout property.
func ProtocolsFor(transport string) string {
	switch transport {
	case "udp":
		return "udp"
	case "auto":
		return "udp+tcp"
	default:
		return "tcp"
	}
}

// ForCamera builds the Params of cam's pipeline from its effective
// settings, with its decoder and encoder (ChooseDecoder, ChooseEncoder).
func ForCamera(cam config.Camera, dec Decoder, enc Encoder) Params {
	s := cam.Settings
	return Params{
		Codec:          cam.Codec,
		Location:       cam.Location,
		Protocols:      ProtocolsFor(s.Transport),
		LatencyMS:      int(s.Latency / time.Millisecond),
		TCPTimeout:     s.StallTimeout,
		UDPTimeout:     max(s.StallTimeout/2, time.Second),
		Decoder:        dec,
		FPS:            s.FPS,
		Format:         string(s.Format),
		Encoder:        enc,
		JPEGQuality:    s.JPEGQuality,
		Width:          s.Width,
		Height:         s.Height,
		Converter:      ChooseConverter(string(s.Format), s.Converter),
		ConvertThreads: s.ConvertThreads,
		Sink:           SinkAppsink,
	}
}
