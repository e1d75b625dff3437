// Command camsim is the project's RTSP camera simulator, used by end-to-end
// tests, `make demo` and CPU benchmarks of the capture service.
//
// It owns a short H.264 or H.265 clip, encoded once at start-up into memory
// (videotestsrc → x264enc/x265enc → appsink, whole GOPs, IDR every --gop
// frames), and an RTSP server (gst-rtsp-server) with mounts /cam1 … /camN
// that loops that clip to every client. Serving only copies buffer
// references, so it costs almost no CPU and leaves the machine to the
// service under test.
//
//	camsim [--listen 127.0.0.1:8554] [--cameras 1] [--codec h264|h265]
//	       [--size 1280x720] [--fps 25] [--gop 2*fps] [--bitrate kbps]
//	       [--clip-seconds 4] [--user U --password P] [--control HOST:PORT]
//
// When serving it prints one line to stdout,
// "camsim ready rtsp://HOST:PORT/cam1 … rtsp://HOST:PORT/camN", and logs to
// stderr. A bad flag exits 2; SIGINT or SIGTERM stops it with status 0.
//
// It also owns an optional HTTP control interface (--control) to inject
// camera faults, per camera n (1-based):
//
//	POST /cameras/{n}/stall       stop sending frames; sessions stay open
//	POST /cameras/{n}/resume      send frames again, from where it stalled
//	POST /cameras/{n}/eos         end-of-stream: the server ends the stream
//	POST /cameras/{n}/disconnect  close the RTSP connections of camera n
//	GET  /status                  JSON: sources, clients, frames pushed, stalled, eos
//
// The GStreamer side is C (camsim.c) driven through cgo (gst.go); flags,
// signals and HTTP are Go. It imports only the standard library.
package main
