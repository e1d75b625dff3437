package pipelines

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/config"
	"gstcapture/internal/frame"
)

func avdec(threads string) Decoder {
	return Decoder{Element: "avdec_h264", Props: []Prop{{"output-corrupt", "false"}, {"max-threads", threads}}}
}

func base() Params {
	return Params{
		Codec:          "h264",
		Location:       "rtsp://192.168.1.10:554/Streaming/Channels/101",
		Protocols:      "tcp",
		LatencyMS:      200,
		TCPTimeout:     5 * time.Second,
		UDPTimeout:     2500 * time.Millisecond,
		Decoder:        avdec("1"),
		FPS:            10,
		Format:         "BGR",
		Converter:      ConverterSws,
		ConvertThreads: 1,
	}
}

const goldenH264 = `rtspsrc name=src location="rtsp://192.168.1.10:554/Streaming/Channels/101" protocols=tcp latency=200` +
	` drop-on-latency=false do-rtcp=true add-reference-timestamp-meta=true buffer-mode=slave ntp-sync=false` +
	` tcp-timeout=5000000 timeout=2500000` +
	` ! application/x-rtp,media=video,encoding-name=H264` +
	` ! rtph264depay request-keyframe=true` +
	` ! h264parse` +
	` ! avdec_h264 name=dec output-corrupt="false" max-threads="1"` +
	` ! capssetter caps="video/x-raw,framerate=(fraction)120/1"` +
	` ! videorate drop-only=true max-rate=10` +
	` ! swsconvert` +
	` ! video/x-raw,format=BGR` +
	` ! appsink name=sink sync=false max-buffers=2 drop=true enable-last-sample=false emit-signals=false qos=false wait-on-eos=false`

const goldenH265Scaled = `rtspsrc name=src location="rtsps://cam.example/live" protocols=udp+tcp latency=0` +
	` drop-on-latency=false do-rtcp=true add-reference-timestamp-meta=true buffer-mode=slave ntp-sync=false` +
	` tcp-timeout=3000000 timeout=1000000` +
	` ! application/x-rtp,media=video,encoding-name=H265` +
	` ! rtph265depay` +
	` ! h265parse` +
	` ! nvh265dec name=dec` +
	` ! capssetter caps="video/x-raw,framerate=(fraction)120/1"` +
	` ! videorate drop-only=true max-rate=5` +
	` ! videoscale n-threads=0` +
	` ! videoconvert n-threads=0` +
	` ! video/x-raw,format=NV12,width=640,height=360` +
	` ! fakesink name=sink sync=false enable-last-sample=false qos=false`

func TestRenderGolden(t *testing.T) {
	got, err := Render(base())
	require.NoError(t, err)
	assert.Equal(t, goldenH264, got)

	p := base()
	p.Codec = "h265"
	p.Location = "rtsps://cam.example/live"
	p.Protocols = "udp+tcp"
	p.LatencyMS = 0
	p.TCPTimeout, p.UDPTimeout = 3*time.Second, time.Second
	p.Decoder = Decoder{Element: "nvh265dec", GPU: true}
	p.FPS = 5
	p.Format = "NV12"
	p.Converter = ConverterVideoconvert
	p.Width, p.Height = 640, 360
	p.ConvertThreads = 0
	p.Sink = SinkFakesink
	got, err = Render(p)
	require.NoError(t, err)
	assert.Equal(t, goldenH265Scaled, got)
}

// format JPEG: I420 after the rate limit (and the scaling), the encoder
// named enc with its quality, image/jpeg caps, the sink.
const goldenH264JPEG = `rtspsrc name=src location="rtsp://192.168.1.10:554/Streaming/Channels/101" protocols=tcp latency=200` +
	` drop-on-latency=false do-rtcp=true add-reference-timestamp-meta=true buffer-mode=slave ntp-sync=false` +
	` tcp-timeout=5000000 timeout=2500000` +
	` ! application/x-rtp,media=video,encoding-name=H264` +
	` ! rtph264depay request-keyframe=true` +
	` ! h264parse` +
	` ! avdec_h264 name=dec output-corrupt="false" max-threads="1"` +
	` ! capssetter caps="video/x-raw,framerate=(fraction)120/1"` +
	` ! videorate drop-only=true max-rate=10` +
	` ! videoscale n-threads=1` +
	` ! videoconvert n-threads=1` +
	` ! video/x-raw,format=I420,width=640,height=360` +
	` ! jpegenc name=enc quality=85` +
	` ! image/jpeg` +
	` ! appsink name=sink sync=false max-buffers=2 drop=true enable-last-sample=false emit-signals=false qos=false wait-on-eos=false`

func jpegParams() Params {
	p := base()
	p.Format = "JPEG"
	p.Converter = ConverterVideoconvert
	p.Encoder = Encoder{Element: EncoderJPEG}
	p.JPEGQuality = 85
	p.Width, p.Height = 640, 360
	return p
}

func TestRenderJPEG(t *testing.T) {
	got, err := Render(jpegParams())
	require.NoError(t, err)
	assert.Equal(t, goldenH264JPEG, got)

	// The GPU path: nvjpegenc takes the decoder's system-memory frames
	// converted to I420, like jpegenc; unscaled, no videoscale.
	p := jpegParams()
	p.Codec = "h265"
	p.Decoder = Decoder{Element: "nvh265dec", GPU: true}
	p.Encoder = Encoder{Element: EncoderNV, GPU: true}
	p.JPEGQuality = 1
	p.Width, p.Height = 0, 0
	p.Sink = SinkFakesink
	got, err = Render(p)
	require.NoError(t, err)
	elements, _ := launchTokens(t, got)
	assert.Equal(t, []string{"rtspsrc", "application/x-rtp,media=video,encoding-name=H265", "rtph265depay", "h265parse", "nvh265dec",
		"capssetter", "videorate", "videoconvert", "video/x-raw,format=I420", "nvjpegenc", "image/jpeg", "fakesink"}, elements)
	assert.Contains(t, got, " ! nvh265dec name=dec ! capssetter ")
	assert.Contains(t, got, " ! nvjpegenc name=enc quality=1 ! image/jpeg ! fakesink ")

	for _, tc := range []struct {
		name   string
		modify func(*Params)
		want   string
	}{
		{"no encoder", func(p *Params) { p.Encoder = Encoder{} }, `format JPEG: encoder "": want jpegenc or nvjpegenc`},
		{"other encoder", func(p *Params) { p.Encoder.Element = "avenc_mjpeg" }, `format JPEG: encoder "avenc_mjpeg"`},
		{"quality 0", func(p *Params) { p.JPEGQuality = 0 }, "jpeg quality 0: must be between 1 and 100"},
		{"quality 101", func(p *Params) { p.JPEGQuality = 101 }, "jpeg quality 101"},
		{"encoder with a raw format", func(p *Params) { p.Format = "I420" }, "encoder jpegenc: format I420 is raw, it takes no encoder"},
		{"swsconvert", func(p *Params) { p.Converter = ConverterSws }, "converter swsconvert cannot output JPEG"},
	} {
		p := jpegParams()
		tc.modify(&p)
		_, err := Render(p)
		assert.ErrorContains(t, err, tc.want, tc.name)
	}
}

// nvjpegenc when the camera decodes on the GPU and GStreamer has it;
// jpegenc otherwise; nothing for a raw format.
func TestChooseEncoder(t *testing.T) {
	gpu, cpu := Decoder{Element: "nvh264dec", GPU: true}, avdec("1")
	for _, tc := range []struct {
		name   string
		format string
		dec    Decoder
		have   func(string) bool
		want   Encoder
		err    string
	}{
		{"raw", "BGR", gpu, haveOnly(), Encoder{}, ""},
		{"GPU decoder, nvjpegenc present", "JPEG", gpu, haveOnly(EncoderNV, EncoderJPEG), Encoder{Element: EncoderNV, GPU: true}, ""},
		{"GPU decoder, GStreamer before 1.24", "JPEG", gpu, haveOnly(EncoderJPEG), Encoder{Element: EncoderJPEG}, ""},
		{"CPU decoder", "JPEG", cpu, haveOnly(EncoderNV, EncoderJPEG), Encoder{Element: EncoderJPEG}, ""},
		{"none, CPU", "JPEG", cpu, haveOnly(EncoderNV), Encoder{}, "format JPEG: no JPEG encoder found (looked for jpegenc; install gstreamer1.0-plugins-good for jpegenc)"},
		{"none, GPU", "JPEG", gpu, haveOnly(), Encoder{}, "looked for nvjpegenc, jpegenc;"},
	} {
		got, err := ChooseEncoder(tc.format, tc.dec, tc.have)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, tc.name)
			continue
		}
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.want, got, tc.name)
	}
}

func TestRenderSinks(t *testing.T) {
	for _, sink := range []string{"", SinkAppsink} {
		p := base()
		p.Sink = sink
		got, err := Render(p)
		require.NoError(t, err)
		assert.Equal(t, goldenH264, got, "sink %q", sink)
	}
	p := base()
	p.Sink = SinkFakesink
	got, err := Render(p)
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(got, " ! video/x-raw,format=BGR ! fakesink name=sink sync=false enable-last-sample=false qos=false"), got)
	assert.NotContains(t, got, "appsink")
	assert.Equal(t, strings.TrimSuffix(goldenH264, goldenH264[strings.Index(goldenH264, " ! appsink"):]),
		strings.TrimSuffix(got, got[strings.Index(got, " ! fakesink"):]), "only the sink differs")
}

// The two templates differ only in the RTP caps, depayloader and parser.
func TestTemplatesShareTheGraph(t *testing.T) {
	for _, scaled := range []bool{false, true} {
		p := base()
		if scaled {
			p.Width, p.Height = 320, 240
		}
		a, err := Render(p)
		require.NoError(t, err)
		p.Codec = "h265"
		b, err := Render(p)
		require.NoError(t, err)
		tail := func(s string) string { return s[strings.Index(s, " ! avdec_h264"):] }
		head := func(s string) string { return s[:strings.Index(s, " ! application/x-rtp")] }
		assert.Equal(t, tail(a), tail(b))
		assert.Equal(t, head(a), head(b))
	}
}

// launchTokens splits a launch line on the '!' links outside quotes, and
// unescapes quoted values as the gst-launch parser does (a backslash
// escapes the next character), so a test can see the graph it would build.
func launchTokens(t *testing.T, line string) (elements []string, values map[string]string) {
	t.Helper()
	values = map[string]string{}
	var cur, val strings.Builder
	inQuote, key := false, ""
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\':
			i++
			require.Less(t, i, len(line), "dangling backslash")
			val.WriteByte(line[i])
			cur.WriteByte('x')
		case c == '"':
			if inQuote {
				values[key] = val.String()
				val.Reset()
			} else {
				f := strings.Fields(cur.String())
				key = strings.TrimSuffix(f[len(f)-1], "=")
			}
			inQuote = !inQuote
			cur.WriteByte('x')
		case inQuote:
			val.WriteByte(c)
			cur.WriteByte('x')
		case c == '!':
			elements = append(elements, strings.Fields(cur.String())[0])
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	require.False(t, inQuote, "unterminated quote in %s", line)
	elements = append(elements, strings.Fields(cur.String())[0])
	return elements, values
}

func TestRenderEscapesNastyLocations(t *testing.T) {
	wantGraph := []string{"rtspsrc", "application/x-rtp,media=video,encoding-name=H264", "rtph264depay", "h264parse", "avdec_h264", "capssetter", "videorate", "swsconvert", "video/x-raw,format=BGR", "appsink"}
	cases := []struct {
		location string
		quoted   string
	}{
		{"rtsp://h/a b", `"rtsp://h/a b"`},
		{"rtsp://h/a!b ! identity name=evil ! fakesink", `"rtsp://h/a!b ! identity name=evil ! fakesink"`},
		{`rtsp://h/x" ! fakesink name="evil`, `"rtsp://h/x\" ! fakesink name=\"evil"`},
		{`rtsp://h/back\slash`, `"rtsp://h/back\\slash"`},
		{`rtsp://h/\"both\\"`, `"rtsp://h/\\\"both\\\\\""`},
		{`rtsp://h/'single' "double"`, `"rtsp://h/'single' \"double\""`},
		{"rtsp://h/a=b,c;d{e}(f)#g$h%22", `"rtsp://h/a=b,c;d{e}(f)#g$h%22"`},
		{"rtsp://h/ünïcode", `"rtsp://h/ünïcode"`},
	}
	for _, tc := range cases {
		p := base()
		p.Location = tc.location
		got, err := Render(p)
		require.NoError(t, err, tc.location)
		assert.Contains(t, got, " location="+tc.quoted+" ", tc.location)
		elements, values := launchTokens(t, got)
		assert.Equal(t, wantGraph, elements, tc.location)
		assert.Equal(t, tc.location, values["location"], "round trip of %s", tc.location)
	}
}

func TestRenderRejects(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*Params)
		want   string
	}{
		{"newline in location", func(p *Params) { p.Location = "rtsp://h/a\n! fakesink" }, "control character U+000A"},
		{"tab in location", func(p *Params) { p.Location = "rtsp://h/a\tb" }, "control character U+0009"},
		{"NUL in location", func(p *Params) { p.Location = "rtsp://h/a\x00b" }, "control character U+0000"},
		{"DEL in location", func(p *Params) { p.Location = "rtsp://h/a\x7fb" }, "control character U+007F"},
		{"trailing backslash", func(p *Params) { p.Location = `rtsp://h/a\` }, "trailing backslash"},
		{"invalid UTF-8", func(p *Params) { p.Location = "rtsp://h/\xff" }, "not valid UTF-8"},
		{"not rtsp", func(p *Params) { p.Location = "http://h/a" }, "location must start with rtsp://"},
		{"leading quote", func(p *Params) { p.Location = `"rtsp://h/a"` }, "location must start with rtsp://"},
		{"empty location", func(p *Params) { p.Location = "" }, "location must start with rtsp://"},
		{"unknown codec", func(p *Params) { p.Codec = "vp8" }, `codec "vp8": no pipeline template`},
		{"path in codec", func(p *Params) { p.Codec = "../h264" }, "no pipeline template"},
		{"protocols", func(p *Params) { p.Protocols = "tcp ! fakesink" }, "protocols"},
		{"negative latency", func(p *Params) { p.LatencyMS = -1 }, "latency -1 ms"},
		{"zero timeout", func(p *Params) { p.TCPTimeout = 0 }, "tcp timeout 0s"},
		{"decoder element", func(p *Params) { p.Decoder.Element = "avdec_h264 ! fakesink" }, "decoder element"},
		{"empty decoder", func(p *Params) { p.Decoder.Element = "" }, "decoder element"},
		{"prop name", func(p *Params) { p.Decoder.Props = []Prop{{"a=b", "1"}} }, `decoder property "a=b"`},
		{"prop renames element", func(p *Params) { p.Decoder.Props = []Prop{{"name", "x"}} }, `decoder property "name"`},
		{"prop value newline", func(p *Params) { p.Decoder.Props = []Prop{{"max-threads", "1\n"}} }, "decoder property max-threads: control character"},
		{"fps zero", func(p *Params) { p.FPS = 0 }, "fps 0"},
		{"fps too high", func(p *Params) { p.FPS = 121 }, "fps 121"},
		{"format", func(p *Params) { p.Format = "BGR ! fakesink" }, "unknown format"},
		{"width only", func(p *Params) { p.Width = 640 }, "size 640x0"},
		{"negative size", func(p *Params) { p.Width, p.Height = -2, -2 }, "size -2x-2"},
		{"threads", func(p *Params) { p.ConvertThreads = -1 }, "convert threads -1"},
		{"sink", func(p *Params) { p.Sink = "autovideosink" }, `sink "autovideosink"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.modify(&p)
			got, err := Render(p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Empty(t, got)
		})
	}
}

func TestQuotedPropValues(t *testing.T) {
	p := base()
	p.Decoder = Decoder{Element: "avdec_h264", Props: []Prop{{"skip-frame", `a "b" \c`}}}
	got, err := Render(p)
	require.NoError(t, err)
	assert.Contains(t, got, ` ! avdec_h264 name=dec skip-frame="a \"b\" \\c" ! `)
}

func TestCandidates(t *testing.T) {
	gpu, cpu := Candidates("h264")
	assert.Equal(t, []string{"nvh264dec"}, gpu)
	assert.Equal(t, []string{"avdec_h264", "openh264dec"}, cpu)
	gpu, cpu = Candidates("h265")
	assert.Equal(t, []string{"nvh265dec"}, gpu)
	assert.Equal(t, []string{"avdec_h265", "libde265dec"}, cpu)
	gpu, cpu = Candidates("mjpeg")
	assert.Nil(t, gpu)
	assert.Nil(t, cpu)
}

func haveOnly(elements ...string) func(string) bool {
	return func(e string) bool {
		for _, x := range elements {
			if x == e {
				return true
			}
		}
		return false
	}
}

func TestChooseDecoder(t *testing.T) {
	all := haveOnly("nvh264dec", "avdec_h264", "openh264dec", "nvh265dec", "avdec_h265", "libde265dec")
	cases := []struct {
		name, codec, pref string
		threads           int
		have              func(string) bool
		want              Decoder
		err               string
	}{
		{"auto, all present", "h264", "auto", 2, all, Decoder{Element: "nvh264dec", GPU: true}, ""},
		{"auto, no GPU", "h264", "auto", 2, haveOnly("avdec_h264", "openh264dec"), Decoder{Element: "avdec_h264", Props: []Prop{{"output-corrupt", "false"}, {"max-threads", "2"}}}, ""},
		{"auto, only openh264", "h264", "auto", 2, haveOnly("openh264dec"), Decoder{Element: "openh264dec"}, ""},
		{"auto, none", "h264", "auto", 1, haveOnly(), Decoder{}, "no h264 decoder found (looked for nvh264dec, avdec_h264, openh264dec;"},
		{"gpu, present", "h265", "gpu", 1, all, Decoder{Element: "nvh265dec", GPU: true}, ""},
		{"gpu, absent", "h265", "gpu", 1, haveOnly("avdec_h265"), Decoder{}, "no GPU h265 decoder found (looked for nvh265dec;"},
		{"cpu, all present", "h265", "cpu", 0, all, Decoder{Element: "avdec_h265", Props: []Prop{{"output-corrupt", "false"}, {"max-threads", "0"}}}, ""},
		{"cpu, only libde265", "h265", "cpu", 3, haveOnly("nvh265dec", "libde265dec"), Decoder{Element: "libde265dec", Props: []Prop{{"max-threads", "3"}}}, ""},
		{"cpu, absent", "h265", "cpu", 1, haveOnly("nvh265dec"), Decoder{}, "no CPU h265 decoder found (looked for avdec_h265, libde265dec;"},
		{"unknown codec", "vp9", "auto", 1, all, Decoder{}, `codec "vp9": no decoders known`},
		{"unknown preference", "h264", "fast", 1, all, Decoder{}, `decoder preference "fast"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ChooseDecoder(tc.codec, tc.pref, tc.threads, tc.have)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestProtocolsFor(t *testing.T) {
	assert.Equal(t, "tcp", ProtocolsFor("tcp"))
	assert.Equal(t, "udp", ProtocolsFor("udp"))
	assert.Equal(t, "udp+tcp", ProtocolsFor("auto"))
	assert.Equal(t, "tcp", ProtocolsFor(""), "unset falls back to the config default")
}

func TestForCamera(t *testing.T) {
	cam := config.Camera{
		ID:       "cam1",
		Codec:    "h265",
		Location: "rtsp://10.0.0.5:554/live",
		User:     "admin",
		Password: "hunter2-secret",
		Settings: config.Settings{
			FPS: 5, Format: frame.GRAY8, Width: 320, Height: 240, Transport: "auto",
			Latency: 150*time.Millisecond + 700*time.Microsecond, StallTimeout: 6 * time.Second,
			ConvertThreads: 2, DecoderThreads: 4,
		},
	}
	dec, err := ChooseDecoder(cam.Codec, "cpu", cam.Settings.DecoderThreads, haveOnly("avdec_h265"))
	require.NoError(t, err)
	p := ForCamera(cam, dec, Encoder{})
	assert.Equal(t, Params{
		Codec: "h265", Location: "rtsp://10.0.0.5:554/live", Protocols: "udp+tcp", LatencyMS: 150,
		TCPTimeout: 6 * time.Second, UDPTimeout: 3 * time.Second, Decoder: dec,
		FPS: 5, Format: "GRAY8", Width: 320, Height: 240, Converter: ConverterVideoconvert, ConvertThreads: 2, Sink: SinkAppsink,
	}, p)

	cam.Settings.StallTimeout = time.Second
	assert.Equal(t, time.Second, ForCamera(cam, dec, Encoder{}).UDPTimeout, "UDP timeout never below 1s")

	line, err := Render(p)
	require.NoError(t, err)
	assert.NotContains(t, line, cam.Password)
	assert.NotContains(t, line, "admin")
	assert.Contains(t, line, `avdec_h265 name=dec output-corrupt="false" max-threads="4"`)
	assert.Contains(t, line, "max-rate=5 ! videoscale n-threads=2 ! videoconvert n-threads=2 ! video/x-raw,format=GRAY8,width=320,height=240")

	cam.Settings.Format, cam.Settings.JPEGQuality = frame.JPEG, 70
	cam.Settings.Converter = "auto"
	enc := Encoder{Element: EncoderJPEG}
	p = ForCamera(cam, dec, enc)
	assert.Equal(t, [4]any{"JPEG", enc, 70, ConverterVideoconvert}, [4]any{p.Format, p.Encoder, p.JPEGQuality, p.Converter})
	line, err = Render(p)
	require.NoError(t, err)
	assert.Contains(t, line, "max-rate=5 ! videoscale n-threads=2 ! videoconvert n-threads=2 ! video/x-raw,format=I420,width=320,height=240 ! jpegenc name=enc quality=70 ! image/jpeg ! appsink")
}

// Every format and size the config accepts renders.
func TestForCameraRendersEveryFormat(t *testing.T) {
	for _, f := range frame.Formats {
		for _, conv := range config.Choices("converter") {
			cam := config.Camera{Codec: "h264", Location: "rtsp://h/x", Settings: config.Settings{FPS: 120, Format: f, Transport: "tcp", StallTimeout: time.Second, Converter: conv}}
			enc, err := ChooseEncoder(string(f), avdec("1"), haveOnly(EncoderJPEG))
			require.NoError(t, err)
			cam.Settings.JPEGQuality = 85
			_, err = Render(ForCamera(cam, avdec("1"), enc))
			assert.NoError(t, err, "%s %s", f, conv)
		}
	}
}

// BGR and RGB go through swsconvert unless the operator asks for
// videoconvert; the other formats always take videoconvert.
func TestChooseConverter(t *testing.T) {
	for _, c := range []struct{ format, pref, want string }{
		{"BGR", "auto", ConverterSws}, {"RGB", "auto", ConverterSws},
		{"I420", "auto", ConverterVideoconvert}, {"NV12", "auto", ConverterVideoconvert}, {"GRAY8", "auto", ConverterVideoconvert},
		{"BGR", "videoconvert", ConverterVideoconvert}, {"RGB", "videoconvert", ConverterVideoconvert},
	} {
		assert.Equal(t, c.want, ChooseConverter(c.format, c.pref), "%s %s", c.format, c.pref)
	}
	p := base()
	p.Format = "I420"
	_, err := Render(p)
	assert.EqualError(t, err, "converter swsconvert cannot output I420")
	p.Converter = "autovideoconvert"
	_, err = Render(p)
	assert.EqualError(t, err, `converter "autovideoconvert": want swsconvert or videoconvert`)
}
