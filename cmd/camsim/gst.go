package main

// #cgo pkg-config: gstreamer-1.0 gstreamer-app-1.0 gstreamer-rtsp-server-1.0
// #include <stdlib.h>
// #include "camsim.h"
import "C"

import (
	"errors"
	"unsafe"
)

// The C side keeps one global simulator; these wrappers turn its C
// conventions (negative returns, malloc'd strings) into Go ones.

// errUnknownCamera and errLoopTimeout mirror the C return codes -1 and -2.
var (
	errUnknownCamera = errors.New("unknown camera")
	errLoopTimeout   = errors.New("GLib main loop did not answer within 5 s")
)

func gstInit() { C.camsim_init() }

// encodeClip encodes the clip once; it blocks for the whole encode.
func encodeClip(cfg config) error {
	p := C.camsim_clip_params{
		width:        C.int(cfg.width),
		height:       C.int(cfg.height),
		fps:          C.int(cfg.fps),
		gop:          C.int(cfg.gop),
		bitrate_kbps: C.int(cfg.bitrateKbps),
		clip_frames:  C.int(cfg.clipFrames()),
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

func clipKeyframes() int { return int(C.camsim_clip_keyframes()) }
func clipCaps() string   { return takeString(C.camsim_clip_caps()) }

// startServer binds the RTSP socket and returns the bound port (useful when
// the requested port is 0).
func startServer(host, port string, cameras int, user, password string) (int, error) {
	chost, cport := C.CString(host), C.CString(port)
	defer C.free(unsafe.Pointer(chost))
	defer C.free(unsafe.Pointer(cport))
	var cuser, cpass *C.char
	if user != "" {
		cuser, cpass = C.CString(user), C.CString(password)
		defer C.free(unsafe.Pointer(cuser))
		defer C.free(unsafe.Pointer(cpass))
	}
	var cerr *C.char
	bound := C.camsim_server_start(chost, cport, C.int(cameras), cuser, cpass, &cerr)
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

type camStatus struct {
	ID            int    `json:"id"`
	URL           string `json:"url"`
	ActiveSources int    `json:"active_sources"`
	Clients       int    `json:"clients"`
	FramesPushed  uint64 `json:"frames_pushed"`
	Stalled       bool   `json:"stalled"`
	EOS           bool   `json:"eos"`
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
	}, nil
}

func result(r C.int) (int, error) {
	switch r {
	case -1:
		return 0, errUnknownCamera
	case -2:
		return 0, errLoopTimeout
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
