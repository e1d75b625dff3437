// Command camsim is the project's RTSP camera simulator, used by end-to-end
// tests, `make demo` and CPU benchmarks of the capture service.
//
// It owns a short H.264 or H.265 clip, encoded once at start-up into memory
// (videotestsrc → x264enc/x265enc → appsink, whole GOPs, IDR every --gop
// frames), and an RTSP server (gst-rtsp-server) with mounts /cam1 … /camN
// that loops that clip to every client. Serving only copies buffer
// references, so it costs almost no CPU and leaves the machine to the
// service under test. Like independent cameras, each camera sends its
// frames at its own phase of the frame interval (pseudo-random, the same in
// every run), not all cameras at the same instant: in lockstep, every
// camera's frame reached the service's decoders and Redis together, which
// no real fleet does: at 8 cameras that more than doubled the median
// appsink → Redis latency the benchmark measured (docs/performance.md).
//
//	camsim [--listen 127.0.0.1:8554] [--cameras 1] [--codec h264|h265]
//	       [--size 1280x720] [--fps 25] [--gop 2*fps] [--bitrate kbps]
//	       [--clip-seconds 4] [--user U --password P] [--control HOST:PORT]
//	       [--extra-sizes WxH[,WxH...]] [--tcp-only] [--audio] [--bframes N]
//	       [--tls-cert FILE --tls-key FILE]
//
// --tls-cert and --tls-key (PEM) serve rtsps:// instead of rtsp://, as a
// camera or NVR with its own (often privately signed) certificate does.
// --extra-sizes encodes one more clip per size at start-up (same codec,
// fps, GOP and length; bitrate scaled by area) for the size control below.
// --tcp-only refuses UDP transports: a SETUP over UDP gets 461 Unsupported
// Transport, as behind a firewall that only lets the RTSP connection
// through. --audio adds a G.711 A-law 8 kHz stream to every camera,
// pre-encoded and pushed with the video (stall and eos apply to both).
// --bframes N encodes N B-frames between reference frames (H.264 High,
// H.265 Main, B-pyramid, closed GOPs), so frames are sent in decode order
// and their RTP timestamps (presentation times) are not monotonic, as with
// encoders' defaults. Every frame is timestamped by the camera's schedule
// (exactly 1/fps apart), not by when it happened to leave, as a camera's
// capture clock does.
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
//	POST /cameras/{n}/corrupt?rate=R[&mode=mix|drop|damage]
//	                              from now on drop or damage each RTP packet
//	                              with probability R (0 < R <= 1), keyframes
//	                              included; mix (default) does either at
//	                              even odds; damage overwrites 8 bytes in
//	                              the second half of the NAL data and spares
//	                              parameter sets
//	POST /cameras/{n}/clean       stop corrupting
//	POST /cameras/{n}/size?w=W&h=H
//	                              switch to the W x H clip (--size or
//	                              --extra-sizes) at the next GOP start: the
//	                              IDR carries the new SPS/PPS in band
//	GET  /status                  JSON: sources, clients, frames pushed, stalled,
//	                              eos, size, corruption and its packet counts
//
// Bad parameters get 400 with a message naming them; an unknown camera 404.
//
// The GStreamer side is C (camsim.c) driven through cgo (gst.go); flags,
// signals and HTTP are Go. It imports only the standard library.
package main
