package gsthost

// DOT dumps of a pipeline's graph, written without credentials.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-gst/go-gst/gst"
)

// dotDumpTimeout bounds taking a pipeline's graph: it locks every element
// and pad in turn, which a wedged element may hold.
const dotDumpTimeout = 2 * time.Second

// dotEpoch stands in for GStreamer's start time (gst_init, not exported),
// from which it counts the timestamp of a dump's file name.
var dotEpoch = time.Now()

// dotWriteWarned makes a dump directory that cannot be written a warning
// once per process, not once per failing pipeline.
var dotWriteWarned atomic.Bool

// dumpDot writes p's graph into GST_DEBUG_DUMP_DOT_DIR when it is set, as
// gst-launch-1.0 does, bounded like every other blocking call. GStreamer's
// own gst_debug_bin_to_dot_file would write rtspsrc's user-id and user-pw
// as they are, so the graph is taken as text, cleaned (cleanDot, then every
// configured secret) and written here, readable by the owner only.
func (s *Supervisor) dumpDot(g *guard, p *gst.Pipeline, what string) {
	dir := os.Getenv("GST_DEBUG_DUMP_DOT_DIR")
	if dir == "" {
		return
	}
	var data string // written by the call, read only once it returned
	if !s.bounded(g, "DOT dump", dotDumpTimeout, nil, func() { data = p.DebugBinToDotData(gst.DebugGraphShowAll) }) {
		return
	}
	name := dotFileName(time.Since(dotEpoch), "gstcapture-"+s.spec.CameraID+"-"+what)
	path, err := writeDot(dir, name, s.redact(cleanDot(data)))
	if err != nil {
		lvl := s.log.Debug
		if !dotWriteWarned.Swap(true) {
			lvl = s.log.Warn
		}
		lvl("cannot write DOT dump (GST_DEBUG_DUMP_DOT_DIR)", "error", err)
		return
	}
	s.log.Debug("DOT dump written", "path", path)
}

// dotFileName is GStreamer's name for a timestamped dump: hours, minutes,
// seconds and nanoseconds since start, then base, then ".dot".
func dotFileName(elapsed time.Duration, base string) string {
	ns := elapsed.Nanoseconds()
	sec := ns / 1e9
	base = strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator {
			return '_'
		}
		return r
	}, base)
	return fmt.Sprintf("%d.%02d.%02d.%09d-%s.dot", sec/3600, sec/60%60, sec%60, ns%1e9, base)
}

// writeDot writes data to dir/name with mode 0600, whole or not at all (an
// operator may be copying the directory meanwhile).
func writeDot(dir, name, data string) (string, error) {
	f, err := os.CreateTemp(dir, ".dot-*") // mode 0600
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	path := filepath.Join(dir, name)
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return path, nil
}

// secretProperty reports whether an element property holds a credential.
func secretProperty(name string) bool {
	switch name {
	case "user-id", "user-pw", "proxy-id", "proxy-pw":
		return true
	}
	return strings.Contains(name, "password") || strings.Contains(name, "passwd")
}

// urlProperty reports whether an element property holds a URL whose user
// info and query may carry a credential (a token in the query).
func urlProperty(name string) bool {
	return name == "location" || name == "proxy" || name == "uri"
}

// cleanDot blanks the values of credential properties in a DOT graph of
// gst_debug_bin_to_dot_data, and the user info and query values of URL
// properties. It relies on the graph's structure rather than on knowing
// the secrets: a long value is cut at 80 characters and escaped twice,
// so a redactor looking for the whole secret would miss it. In a label,
// properties are separated by the two characters `\n`, and every other
// backslash in it starts an escape of two or more characters, so scanning
// escapes pairwise finds each property's start and end.
func cleanDot(dot string) string {
	var b strings.Builder
	b.Grow(len(dot))
	i := 0
	for i < len(dot) {
		if dot[i] != '\\' || i+1 >= len(dot) {
			b.WriteByte(dot[i])
			i++
			continue
		}
		b.WriteString(dot[i : i+2])
		i += 2
		if dot[i-1] != 'n' {
			continue
		}
		// After a separator: "name=value"?
		eq := i
		for eq < len(dot) && isPropNameByte(dot[eq]) {
			eq++
		}
		if eq == i || eq >= len(dot) || dot[eq] != '=' {
			continue
		}
		name := dot[i:eq]
		end := dotValueEnd(dot, eq+1)
		value := dot[eq+1 : end]
		switch {
		case value == "NULL": // unset: nothing to hide, and worth seeing
		case secretProperty(name):
			value = "***"
		case urlProperty(name):
			value = cleanDotURL(value)
		}
		b.WriteString(name + "=" + value)
		i = end
	}
	return b.String()
}

func isPropNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// dotValueEnd returns where the property value starting at i ends: at the
// next separator `\n` or at the quote that closes the label.
func dotValueEnd(dot string, i int) int {
	for i < len(dot) {
		switch dot[i] {
		case '\\':
			if i+1 < len(dot) && dot[i+1] == 'n' {
				return i
			}
			i += 2
		case '"':
			return i
		default:
			i++
		}
	}
	return len(dot)
}

// cleanDotURL removes the user info of an escaped, maybe cut, URL value
// (`\"rtsp://user:pw@host/path?token=x\"`) and blanks its query values.
func cleanDotURL(v string) string {
	const quote, ellipsis = `\"`, "…"
	body, suffix := v, ""
	for _, s := range []string{quote, ellipsis} {
		if strings.HasSuffix(body, s) && len(body) > len(quote) {
			body, suffix = strings.TrimSuffix(body, s), s
			break
		}
	}
	if sch := strings.Index(body, "://"); sch >= 0 {
		auth := sch + len("://")
		end := strings.IndexAny(body[auth:], "/?#")
		if end < 0 {
			if suffix == ellipsis {
				// Cut inside the authority: the rest may start a password.
				body = body[:auth] + "***"
			}
			end = len(body) - auth
		}
		if at := strings.LastIndexByte(body[auth:auth+end], '@'); at >= 0 {
			body = body[:auth] + body[auth+at+1:]
		}
	}
	if q := strings.IndexByte(body, '?'); q >= 0 {
		parts := strings.Split(body[q+1:], "&")
		for k, part := range parts {
			if eq := strings.IndexByte(part, '='); eq >= 0 {
				parts[k] = part[:eq+1] + "***"
			} else if part != "" {
				parts[k] = "***"
			}
		}
		body = body[:q+1] + strings.Join(parts, "&")
	}
	return body + suffix
}
