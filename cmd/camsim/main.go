package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:])) }

// run returns the exit status: 0 after a clean stop, 1 on a runtime
// failure, 2 on a bad command line.
func run(args []string) int {
	cfg, err := parseFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "camsim: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	// Registered first so a signal during the encode is not fatal; it is
	// acted on once start-up is done.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	gstInit()
	start := time.Now()
	for i, sz := range cfg.sizes() {
		t0 := time.Now()
		if err := encodeClip(cfg, sz[0], sz[1]); err != nil {
			log.Error("cannot encode the clip", "codec", cfg.codec, "size", fmt.Sprintf("%dx%d", sz[0], sz[1]), "err", err)
			return 1
		}
		if i > 0 {
			log.Info("extra clip encoded", "size", fmt.Sprintf("%dx%d", sz[0], sz[1]),
				"bitrate_kbps", cfg.bitrateFor(sz[0], sz[1]), "encode_seconds", time.Since(t0).Seconds())
			continue
		}
		log.Info("clip encoded", "codec", cfg.codec, "size", fmt.Sprintf("%dx%d", cfg.width, cfg.height),
			"fps", cfg.fps, "gop", cfg.gop, "bitrate_kbps", cfg.bitrateKbps,
			"frames", cfg.clipFrames(), "keyframes", clipKeyframes(),
			"encode_seconds", time.Since(t0).Seconds(), "caps", clipCaps())
	}
	if cfg.audio {
		if err := encodeAudio(); err != nil {
			log.Error("cannot encode the audio clip", "err", err)
			return 1
		}
		log.Info("audio clip encoded", "encoding", "PCMA", "rate", 8000)
	}

	// Control listener before RTSP so a busy port fails before anything is
	// served.
	var ctl net.Listener
	if cfg.control != "" {
		if ctl, err = net.Listen("tcp", cfg.control); err != nil {
			log.Error("cannot listen for --control", "addr", cfg.control, "err", err)
			return 1
		}
	}
	port, err := startServer(cfg)
	if err != nil {
		log.Error("cannot start the RTSP server for --listen", "err", err)
		return 1
	}
	urls := make([]string, cfg.cameras)
	for i := range urls {
		scheme := "rtsp"
		if cfg.tlsCert != "" {
			scheme = "rtsps"
		}
		urls[i] = fmt.Sprintf("%s://%s/cam%d", scheme, net.JoinHostPort(cfg.listenHost, fmt.Sprint(port)), i+1)
	}

	loopDone := make(chan struct{})
	go func() {
		// The GLib loop blocks its thread for the life of the process.
		runtime.LockOSThread()
		runLoop()
		close(loopDone)
	}()

	var httpSrv *http.Server
	if ctl != nil {
		httpSrv = &http.Server{
			Handler:           newControlHandler(cfg, urls),
			ReadHeaderTimeout: 5 * time.Second,
		}
		go func() {
			if err := httpSrv.Serve(ctl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("control server stopped", "err", err)
			}
		}()
		log.Info("control server listening", "url", "http://"+ctl.Addr().String())
	}

	log.Info("serving", "startup_seconds", time.Since(start).Seconds(), "cameras", cfg.cameras)
	fmt.Println("camsim ready " + strings.Join(urls, " "))

	select {
	case s := <-sigs:
		log.Info("stopping", "signal", s.String())
		quitLoop()
	case <-loopDone:
		log.Error("GLib main loop ended on its own")
		return 1
	}
	select {
	case <-loopDone:
	case <-time.After(5 * time.Second):
		log.Warn("GLib main loop did not stop within 5 s; exiting anyway")
	}
	if httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(ctx)
	}
	return 0
}
