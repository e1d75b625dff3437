package main

// #cgo pkg-config: gstreamer-1.0 gstreamer-app-1.0 gstreamer-rtp-1.0 gstreamer-rtsp-server-1.0 gio-2.0
// #include <stdlib.h>
// #include "camsim.h"
import "C"

import (
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// The C side keeps one global simulator; these wrappers turn its C
// conventions (negative returns, malloc'd strings) into Go ones.

// errUnknownCamera, errLoopTimeout and errNoSuchClip mirror the C return
// codes -1, -2 and -3.
var (
	errUnknownCamera = errors.New("unknown camera")
	errLoopTimeout   = errors.New("GLib main loop did not answer within 5 s")
	errNoSuchClip    = errors.New("no clip of that size")
)

func gstInit() { C.camsim_init() }

// encodeClip encodes the clip of size w x h once; it blocks for the whole
// encode. The first call is the clip every camera starts with.
func encodeClip(cfg config, w, h int) error {
	p := C.camsim_clip_params{
		width:        C.int(w),
		height:       C.int(h),
		fps:          C.int(cfg.fps),
		gop:          C.int(cfg.gop),
		bitrate_kbps: C.int(cfg.bitrateFor(w, h)),
		clip_frames:  C.int(cfg.clipFrames()),
		bframes:      C.int(cfg.bframes),
	}
	if cfg.codec == "h265" {
		p.h265 = 1
	}
	var cerr *C.char
	if C.camsim_encode_clip(&p, &cerr) != 0 {
		return errors.New(takeString(cerr))
	}
	return nil
}

// encodeAudio encodes the audio clip; call it after the first encodeClip.
func encodeAudio() error {
	var cerr *C.char
	if C.camsim_encode_audio(&cerr) != 0 {
		return errors.New(takeString(cerr))
	}
	return nil
}

func clipKeyframes() int { return int(C.camsim_clip_keyframes()) }
func clipCaps() string   { return takeString(C.camsim_clip_caps()) }

// startServer binds the RTSP socket and returns the bound port (useful when
// the requested port is 0).
func startServer(cfg config) (int, error) {
	o := C.camsim_server_opts{
		host:    C.CString(cfg.listenHost),
		port:    C.CString(cfg.listenPort),
		cameras: C.int(cfg.cameras),
	}
	defer C.free(unsafe.Pointer(o.host))
	defer C.free(unsafe.Pointer(o.port))
	if cfg.user != "" {
		o.user, o.password = C.CString(cfg.user), C.CString(cfg.password)
		defer C.free(unsafe.Pointer(o.user))
		defer C.free(unsafe.Pointer(o.password))
	}
	if cfg.tlsCert != "" {
		o.tls_cert, o.tls_key = C.CString(cfg.tlsCert), C.CString(cfg.tlsKey)
		defer C.free(unsafe.Pointer(o.tls_cert))
		defer C.free(unsafe.Pointer(o.tls_key))
	}
	if cfg.tcpOnly {
		o.tcp_only = 1
	}
	if cfg.audio {
		o.audio = 1
	}
	var cerr *C.char
	bound := C.camsim_server_start(&o, &cerr)
	if bound < 0 {
		return 0, errors.New(takeString(cerr))
	}
	return int(bound), nil
}

// runLoop blocks the calling OS thread in the GLib main loop until quitLoop.
func runLoop() { C.camsim_run() }

// quitLoop closes all RTSP clients and stops runLoop; safe from any thread.
func quitLoop() { C.camsim_quit() }

func setStalled(cam int, stalled bool) (int, error) {
	s := C.int(0)
	if stalled {
		s = 1
	}
	return result(C.camsim_set_stalled(C.int(cam), s))
}

func pushEOS(cam int) (int, error)    { return result(C.camsim_push_eos(C.int(cam))) }
func disconnect(cam int) (int, error) { return result(C.camsim_disconnect(C.int(cam))) }

// setSize switches camera cam to the clip of size w x h at its next GOP
// start.
func setSize(cam, w, h int) error {
	_, err := result(C.camsim_set_size(C.int(cam), C.int(w), C.int(h)))
	return err
}

// Corruption modes: what happens to a packet chosen for corruption.
var corruptModes = map[string]C.int{
	"mix":    C.CAMSIM_CORRUPT_MIX,
	"drop":   C.CAMSIM_CORRUPT_DROP,
	"damage": C.CAMSIM_CORRUPT_DAMAGE,
}

func corruptModeName(m C.int) string {
	for name, v := range corruptModes {
		if v == m {
			return name
		}
	}
	return "unknown"
}

// setCorrupt makes camera cam drop or damage (mode) each RTP packet with
// probability rate; rate 0 stops it.
func setCorrupt(cam int, rate float64, mode string) error {
	m, ok := corruptModes[mode]
	if !ok {
		return fmt.Errorf("corruption mode %q: want mix, drop or damage", mode)
	}
	_, err := result(C.camsim_set_corrupt(C.int(cam), C.int(math.Round(rate*1e6)), m))
	return err
}

type camStatus struct {
	ID            int    `json:"id"`
	URL           string `json:"url"`
	ActiveSources int    `json:"active_sources"`
	Clients       int    `json:"clients"`
	FramesPushed  uint64 `json:"frames_pushed"`
	Stalled       bool   `json:"stalled"`
	EOS           bool   `json:"eos"`
	// Size is the clip being sent; NextSize differs while a switch waits
	// for the next GOP start.
	Width      int `json:"width"`
	Height     int `json:"height"`
	NextWidth  int `json:"next_width"`
	NextHeight int `json:"next_height"`
	// CorruptRate is the share of RTP packets dropped or damaged (0: clean).
	CorruptRate float64 `json:"corrupt_rate"`
	CorruptMode string  `json:"corrupt_mode"`
	RTPDropped  uint64  `json:"rtp_dropped"`
	RTPDamaged  uint64  `json:"rtp_damaged"`
}

func cameraStatus(cam int) (camStatus, error) {
	var s C.camsim_cam_status
	if C.camsim_status(C.int(cam), &s) != 0 {
		return camStatus{}, errUnknownCamera
	}
	return camStatus{
		ID:            cam,
		ActiveSources: int(s.sources),
		Clients:       int(s.clients),
		FramesPushed:  uint64(s.frames_pushed),
		Stalled:       s.stalled != 0,
		EOS:           s.eos != 0,
		Width:         int(s.width),
		Height:        int(s.height),
		NextWidth:     int(s.next_width),
		NextHeight:    int(s.next_height),
		CorruptRate:   float64(s.corrupt_ppm) / 1e6,
		CorruptMode:   corruptModeName(s.corrupt_mode),
		RTPDropped:    uint64(s.rtp_dropped),
		RTPDamaged:    uint64(s.rtp_damaged),
	}, nil
}

func result(r C.int) (int, error) {
	switch r {
	case -1:
		return 0, errUnknownCamera
	case -2:
		return 0, errLoopTimeout
	case -3:
		return 0, errNoSuchClip
	}
	return int(r), nil
}

func takeString(s *C.char) string {
	if s == nil {
		return ""
	}
	defer C.camsim_free(unsafe.Pointer(s))
	return C.GoString(s)
}
