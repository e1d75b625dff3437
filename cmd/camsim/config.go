package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
)

// config is the validated command line.
type config struct {
	listenHost  string
	listenPort  string
	cameras     int
	codec       string // "h264" or "h265"
	width       int
	height      int
	fps         int
	gop         int
	bitrateKbps int
	clipSeconds float64
	user        string
	password    string
	tlsCert     string // PEM certificate (chain) file: serve rtsps
	tlsKey      string // its private key
	control     string // empty: no control server
	// extraSizes are further clips (same codec, fps, gop, length) that a
	// camera can switch to through the control API.
	extraSizes [][2]int
	tcpOnly    bool // refuse UDP transports
	audio      bool // add an audio stream to every camera
	bframes    int  // B-frames between reference frames, 0 = none
}

// errUsage marks a command-line error: the message names the flag, and the
// process exits 2.
type errUsage struct{ msg string }

func (e errUsage) Error() string { return e.msg }

func usageErr(format string, a ...any) error { return errUsage{fmt.Sprintf(format, a...)} }

// clipFrames is the clip length in frames, rounded to whole GOPs so the loop
// restarts on an IDR frame.
func (c config) clipFrames() int {
	gops := int(math.Round(c.clipSeconds * float64(c.fps) / float64(c.gop)))
	return max(gops, 1) * c.gop
}

// parseFlags parses and validates args (without the program name). Errors
// are errUsage, or flag.ErrHelp for -h.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("camsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8554", "RTSP `HOST:PORT` (port 0 picks a free one)")
	cameras := fs.Int("cameras", 1, "number of cameras, served as /cam1 … /camN")
	codec := fs.String("codec", "h264", "h264 or h265")
	size := fs.String("size", "1280x720", "frame size `WxH` (even numbers)")
	fps := fs.Int("fps", 25, "frames per second")
	gop := fs.Int("gop", 0, "frames between IDR frames (default 2*fps)")
	bitrate := fs.Int("bitrate", 0, "encoder bitrate in kbit/s (default 2000 at 1280x720, scaled by frame area)")
	clipSeconds := fs.Float64("clip-seconds", 4, "clip length in seconds, rounded to whole GOPs")
	user := fs.String("user", "", "require RTSP basic auth with this user (needs --password)")
	password := fs.String("password", "", "password for --user")
	tlsCert := fs.String("tls-cert", "", "serve rtsps with this PEM certificate (chain) file (needs --tls-key)")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert")
	control := fs.String("control", "", "HTTP control server `HOST:PORT` (default: none)")
	extraSizes := fs.String("extra-sizes", "", "further clip sizes `WxH[,WxH...]` a camera can switch to (POST /cameras/{n}/size)")
	tcpOnly := fs.Bool("tcp-only", false, "refuse UDP transports: only RTP over the RTSP connection works")
	audio := fs.Bool("audio", false, "add an audio stream (G.711 A-law, 8 kHz) to every camera")
	bframes := fs.Int("bframes", 0, "B-frames between reference frames (0-4; H.264 is then High profile), as encoders' defaults send")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: camsim [flags]\n\nServes a looped synthetic clip as RTSP cameras.\n\n")
		fs.PrintDefaults()
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, err
		}
		// flag has already printed the error and the usage.
		return config{}, errUsage{err.Error()}
	}
	if fs.NArg() > 0 {
		return config{}, usageErr("unexpected argument %q (all options are flags)", fs.Arg(0))
	}

	c := config{
		cameras:     *cameras,
		codec:       *codec,
		fps:         *fps,
		gop:         *gop,
		bitrateKbps: *bitrate,
		clipSeconds: *clipSeconds,
		user:        *user,
		password:    *password,
		tlsCert:     *tlsCert,
		tlsKey:      *tlsKey,
		control:     *control,
		tcpOnly:     *tcpOnly,
		audio:       *audio,
		bframes:     *bframes,
	}
	var err error
	if c.listenHost, c.listenPort, err = splitHostPort(*listen); err != nil {
		return config{}, usageErr("--listen %q: %v", *listen, err)
	}
	if c.control != "" {
		if _, _, err := splitHostPort(c.control); err != nil {
			return config{}, usageErr("--control %q: %v", c.control, err)
		}
	}
	if c.cameras < 1 || c.cameras > 64 {
		return config{}, usageErr("--cameras %d: want 1 to 64", c.cameras)
	}
	if c.codec != "h264" && c.codec != "h265" {
		return config{}, usageErr("--codec %q: want h264 or h265", c.codec)
	}
	if c.width, c.height, err = parseSize(*size); err != nil {
		return config{}, usageErr("--size %q: %v", *size, err)
	}
	if *extraSizes != "" {
		seen := map[[2]int]bool{{c.width, c.height}: true}
		for _, sz := range strings.Split(*extraSizes, ",") {
			w, h, err := parseSize(strings.TrimSpace(sz))
			if err != nil {
				return config{}, usageErr("--extra-sizes %q: %v", sz, err)
			}
			if seen[[2]int{w, h}] {
				return config{}, usageErr("--extra-sizes: %dx%d is listed twice (or is --size)", w, h)
			}
			seen[[2]int{w, h}] = true
			c.extraSizes = append(c.extraSizes, [2]int{w, h})
		}
	}
	if c.fps < 1 || c.fps > 120 {
		return config{}, usageErr("--fps %d: want 1 to 120", c.fps)
	}
	if c.gop == 0 {
		c.gop = 2 * c.fps
	}
	if c.gop < 1 || c.gop > 1000 {
		return config{}, usageErr("--gop %d: want 1 to 1000", c.gop)
	}
	if c.bframes < 0 || c.bframes > 4 {
		return config{}, usageErr("--bframes %d: want 0 to 4", c.bframes)
	}
	if c.bframes >= c.gop {
		return config{}, usageErr("--bframes %d: must be less than --gop %d", c.bframes, c.gop)
	}
	if c.bitrateKbps == 0 {
		c.bitrateKbps = defaultBitrate(c.width, c.height)
	}
	if c.bitrateKbps < 1 || c.bitrateKbps > 100000 {
		return config{}, usageErr("--bitrate %d: want 1 to 100000 kbit/s", c.bitrateKbps)
	}
	if math.IsNaN(c.clipSeconds) || c.clipSeconds <= 0 || c.clipSeconds > 60 {
		return config{}, usageErr("--clip-seconds %v: want more than 0 and at most 60", c.clipSeconds)
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return config{}, usageErr("--tls-cert and --tls-key must be given together")
	}
	if (c.user == "") != (c.password == "") {
		return config{}, usageErr("--user and --password must be given together")
	}
	if strings.Contains(c.user, ":") {
		return config{}, usageErr("--user %q: must not contain ':' (basic auth separator)", c.user)
	}
	return c, nil
}

// defaultBitrate is 2000 kbit/s at 1280x720, scaled by frame area.
func defaultBitrate(w, h int) int {
	area := float64(w*h) / (1280 * 720)
	return max(int(math.Round(2000*area)), 100)
}

// sizes lists every clip size, --size first.
func (c config) sizes() [][2]int {
	return append([][2]int{{c.width, c.height}}, c.extraSizes...)
}

// bitrateFor is the bitrate of the clip of size w x h: an explicit
// --bitrate applies to --size, and extra sizes are scaled from it by area.
func (c config) bitrateFor(w, h int) int {
	if w == c.width && h == c.height {
		return c.bitrateKbps
	}
	scaled := float64(c.bitrateKbps) * float64(w*h) / float64(c.width*c.height)
	return min(max(int(math.Round(scaled)), 100), 100000)
}

func splitHostPort(s string) (string, string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", "", fmt.Errorf("want HOST:PORT: %v", err)
	}
	if host == "" {
		return "", "", errors.New("want HOST:PORT with a host, e.g. 127.0.0.1:8554 or 0.0.0.0:8554")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", "", fmt.Errorf("port %q: want a number from 0 to 65535", port)
	}
	return host, port, nil
}

func parseSize(s string) (int, int, error) {
	ws, hs, ok := strings.Cut(s, "x")
	w, errW := strconv.Atoi(ws)
	h, errH := strconv.Atoi(hs)
	if !ok || errW != nil || errH != nil {
		return 0, 0, errors.New("want WxH, e.g. 1280x720")
	}
	// I420 needs even dimensions; the bounds keep the in-memory clip sane.
	if w < 16 || h < 16 || w > 7680 || h > 4320 || w%2 != 0 || h%2 != 0 {
		return 0, 0, errors.New("want even width 16..7680 and height 16..4320")
	}
	return w, h, nil
}
