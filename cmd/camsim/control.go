package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// newControlHandler serves the fault-injection API:
//
//	POST /cameras/{n}/stall       stop sending frames; sessions stay open
//	POST /cameras/{n}/resume      send frames again
//	POST /cameras/{n}/eos         end the stream (end-of-stream into appsrc)
//	POST /cameras/{n}/disconnect  close the RTSP connections of camera n
//	GET  /status                  JSON per camera
func newControlHandler(cfg config, urls []string) http.Handler {
	mux := http.NewServeMux()
	action := func(name string, fn func(cam int) (int, error)) {
		mux.HandleFunc("POST /cameras/{n}/"+name, func(w http.ResponseWriter, r *http.Request) {
			n, err := strconv.Atoi(r.PathValue("n"))
			if err != nil || n < 1 || n > cfg.cameras {
				writeJSON(w, http.StatusNotFound, map[string]string{
					"error": fmt.Sprintf("no camera %q: have 1 to %d", r.PathValue("n"), cfg.cameras)})
				return
			}
			affected, err := fn(n)
			if err != nil {
				code := http.StatusInternalServerError
				if errors.Is(err, errLoopTimeout) {
					code = http.StatusServiceUnavailable
				}
				writeJSON(w, code, map[string]string{"error": fmt.Sprintf("camera %d %s: %v", n, name, err)})
				return
			}
			// affected: appsrcs for stall/resume/eos, clients for disconnect.
			writeJSON(w, http.StatusOK, map[string]any{"camera": n, "action": name, "affected": affected})
		})
	}
	action("stall", func(n int) (int, error) { return setStalled(n, true) })
	action("resume", func(n int) (int, error) { return setStalled(n, false) })
	action("eos", pushEOS)
	action("disconnect", disconnect)

	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		type status struct {
			Codec       string      `json:"codec"`
			Width       int         `json:"width"`
			Height      int         `json:"height"`
			FPS         int         `json:"fps"`
			GOP         int         `json:"gop"`
			BitrateKbps int         `json:"bitrate_kbps"`
			ClipFrames  int         `json:"clip_frames"`
			Cameras     []camStatus `json:"cameras"`
		}
		st := status{
			Codec: cfg.codec, Width: cfg.width, Height: cfg.height, FPS: cfg.fps, GOP: cfg.gop,
			BitrateKbps: cfg.bitrateKbps, ClipFrames: cfg.clipFrames(),
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

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
