package gsthost

// DOT dumps of a pipeline's graph.

import (
	"os"
	"time"

	"github.com/go-gst/go-gst/gst"
)

// dotDumpTimeout bounds taking a pipeline's graph: it locks every element
// and pad in turn, which a wedged element may hold.
const dotDumpTimeout = 2 * time.Second

// dumpDot writes p's graph when GST_DEBUG_DUMP_DOT_DIR is set, as
// gst-launch-1.0 does, bounded like every other blocking call.
func (s *Supervisor) dumpDot(g *guard, p *gst.Pipeline, what string) {
	if os.Getenv("GST_DEBUG_DUMP_DOT_DIR") == "" {
		return
	}
	s.bounded(g, "DOT dump", dotDumpTimeout, nil, func() {
		p.DebugBinToDotFileWithTs(gst.DebugGraphShowAll, "gstcapture-"+s.spec.CameraID+"-"+what)
	})
}
