package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// errBadRequest marks a control request whose parameters are wrong (400).
type errBadRequest struct{ msg string }

func (e errBadRequest) Error() string { return e.msg }

func badRequest(format string, a ...any) error { return errBadRequest{fmt.Sprintf(format, a...)} }

// newControlHandler serves the fault-injection API:
//
//	POST /cameras/{n}/stall       stop sending frames; sessions stay open
//	POST /cameras/{n}/resume      send frames again
//	POST /cameras/{n}/eos         end the stream (end-of-stream into appsrc)
//	POST /cameras/{n}/disconnect  close the RTSP connections of camera n
//	POST /cameras/{n}/corrupt?rate=R[&mode=mix|drop|damage]
//	                              drop or damage each RTP packet with probability R
//	POST /cameras/{n}/clean       stop corrupting
//	POST /cameras/{n}/size?w=W&h=H
//	                              switch to the W x H clip at the next GOP start
//	GET  /status                  JSON per camera
func newControlHandler(cfg config, urls []string) http.Handler {
	mux := http.NewServeMux()
	action := func(name string, fn func(cam int, r *http.Request) (int, error)) {
		mux.HandleFunc("POST /cameras/{n}/"+name, func(w http.ResponseWriter, r *http.Request) {
			n, err := strconv.Atoi(r.PathValue("n"))
			if err != nil || n < 1 || n > cfg.cameras {
				writeJSON(w, http.StatusNotFound, map[string]string{
					"error": fmt.Sprintf("no camera %q: have 1 to %d", r.PathValue("n"), cfg.cameras)})
				return
			}
			affected, err := fn(n, r)
			if err != nil {
				code := http.StatusInternalServerError
				var bad errBadRequest
				switch {
				case errors.As(err, &bad):
					code = http.StatusBadRequest
				case errors.Is(err, errLoopTimeout):
					code = http.StatusServiceUnavailable
				}
				writeJSON(w, code, map[string]string{"error": fmt.Sprintf("camera %d %s: %v", n, name, err)})
				return
			}
			// affected: appsrcs for stall/resume/eos, clients for disconnect,
			// 0 for corrupt/clean/size (they act on the camera, not on a media).
			writeJSON(w, http.StatusOK, map[string]any{"camera": n, "action": name, "affected": affected})
		})
	}
	action("stall", func(n int, _ *http.Request) (int, error) { return setStalled(n, true) })
	action("resume", func(n int, _ *http.Request) (int, error) { return setStalled(n, false) })
	action("eos", func(n int, _ *http.Request) (int, error) { return pushEOS(n) })
	action("disconnect", func(n int, _ *http.Request) (int, error) { return disconnect(n) })
	action("corrupt", func(n int, r *http.Request) (int, error) {
		q := r.URL.Query()
		rate, err := strconv.ParseFloat(q.Get("rate"), 64)
		if err != nil || math.IsNaN(rate) || rate <= 0 || rate > 1 {
			return 0, badRequest("rate %q: want a share of packets, more than 0 and at most 1 (e.g. rate=0.05)", q.Get("rate"))
		}
		mode := q.Get("mode")
		if mode == "" {
			mode = "mix"
		}
		if _, ok := corruptModes[mode]; !ok {
			return 0, badRequest("mode %q: want mix, drop or damage", mode)
		}
		return 0, setCorrupt(n, rate, mode)
	})
	action("clean", func(n int, _ *http.Request) (int, error) { return 0, setCorrupt(n, 0, "mix") })
	action("size", func(n int, r *http.Request) (int, error) {
		q := r.URL.Query()
		w, errW := strconv.Atoi(q.Get("w"))
		h, errH := strconv.Atoi(q.Get("h"))
		if errW != nil || errH != nil {
			return 0, badRequest("want w and h as numbers, e.g. size?w=320&h=240")
		}
		err := setSize(n, w, h)
		if errors.Is(err, errNoSuchClip) {
			return 0, badRequest("no clip of size %dx%d: have %s (add sizes with --extra-sizes)", w, h, sizeList(cfg.sizes()))
		}
		return 0, err
	})

	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		type status struct {
			Codec       string      `json:"codec"`
			Width       int         `json:"width"`
			Height      int         `json:"height"`
			Sizes       []string    `json:"sizes"`
			FPS         int         `json:"fps"`
			GOP         int         `json:"gop"`
			BitrateKbps int         `json:"bitrate_kbps"`
			ClipFrames  int         `json:"clip_frames"`
			TCPOnly     bool        `json:"tcp_only"`
			Audio       bool        `json:"audio"`
			Cameras     []camStatus `json:"cameras"`
		}
		st := status{
			Codec: cfg.codec, Width: cfg.width, Height: cfg.height, FPS: cfg.fps, GOP: cfg.gop,
			BitrateKbps: cfg.bitrateKbps, ClipFrames: cfg.clipFrames(),
			Sizes:   strings.Split(sizeList(cfg.sizes()), ", "),
			TCPOnly: cfg.tcpOnly, Audio: cfg.audio,
			Cameras: make([]camStatus, 0, cfg.cameras),
		}
		for i := 1; i <= cfg.cameras; i++ {
			cs, err := cameraStatus(i)
			if err != nil {
				writeJSON(w, http.StatusInternalServerError, map[string]string{"error": fmt.Sprintf("camera %d: %v", i, err)})
				return
			}
			cs.URL = urls[i-1]
			st.Cameras = append(st.Cameras, cs)
		}
		writeJSON(w, http.StatusOK, st)
	})
	return mux
}

func sizeList(sizes [][2]int) string {
	s := make([]string, len(sizes))
	for i, sz := range sizes {
		s[i] = fmt.Sprintf("%dx%d", sz[0], sz[1])
	}
	return strings.Join(s, ", ")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
