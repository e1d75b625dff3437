// Command gstcapture captures RTSP cameras with GStreamer, validates every
// frame and publishes frames to Redis Streams.
//
//	gstcapture run --config FILE        run the service
//	gstcapture validate --config FILE   check a configuration (exit 2 on problems)
//	gstcapture render --config FILE     print each camera's gst-launch-1.0 pipeline
//	gstcapture probe [--json]           GStreamer version and decoder choice
//	gstcapture healthcheck [--url U]    exit 0 when /healthz answers 200
//	gstcapture version
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: gstcapture <command> [flags]

commands:
  run --config FILE                 run the service
  validate --config FILE            check a configuration; exit 2 with every problem
  render --config FILE [--camera ID] [--sink appsink|fakesink]
                                    print launch strings for gst-launch-1.0
  probe [--json]                    GStreamer version, decoders present, choice per codec
  healthcheck [--url URL]           exit 0 when the liveness probe answers 200
  version                           print the version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var code int
	switch cmd {
	case "run":
		code = cmdRun(args)
	case "validate":
		code = cmdValidate(args)
	case "render":
		code = cmdRender(args)
	case "probe":
		code = cmdProbe(args)
	case "healthcheck":
		code = cmdHealthcheck(args)
	case "version", "--version":
		fmt.Println("gstcapture", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "gstcapture: unknown command %q\n\n%s", cmd, usage)
		code = 2
	}
	os.Exit(code)
}
