package gsthost

import (
	"context"
	"log/slog"
	"os"
	"sync"

	"github.com/go-gst/go-gst/gst"
)

var initOnce sync.Once

// Redactor removes secrets from text before it is logged.
type Redactor func(string) string

// Init initialises GStreamer once per process and routes its log into log.
// Without GST_DEBUG only GStreamer's errors are forwarded, at debug level:
// the supervisor already reports each bus error once per state change, and
// rtspsrc logs an ERROR line on every failed connect. With GST_DEBUG set its
// thresholds apply as usual and every message reaches log (at least at info
// level, so a user who asked for GST_DEBUG sees it).
func Init(log *slog.Logger, redact Redactor) {
	initOnce.Do(func() {
		gst.Init(nil)
		registerSwsConvert()
		if redact == nil {
			redact = func(s string) string { return s }
		}
		_, userAsked := os.LookupEnv("GST_DEBUG")
		if !userAsked {
			setDefaultThreshold(gst.LevelError)
		}
		gst.SetLogFunction(func(cat *gst.DebugCategory, level gst.DebugLevel, file, function string, line int, _ *gst.LoggedObject, msg *gst.DebugMessage) {
			lvl := slogLevel(level, userAsked)
			if !log.Enabled(context.Background(), lvl) {
				return
			}
			log.LogAttrs(context.Background(), lvl, redact(msg.Get()),
				slog.String("component", "gstreamer"),
				slog.String("category", cat.GetName()),
				slog.String("object", redact(msg.GetId())),
				slog.String("at", file),
				slog.Int("line", line))
		})
	})
}

func slogLevel(l gst.DebugLevel, userAsked bool) slog.Level {
	switch {
	case !userAsked:
		return slog.LevelDebug
	case l == gst.LevelError:
		return slog.LevelError
	case l == gst.LevelWarning || l == gst.LevelFixMe:
		return slog.LevelWarn
	case userAsked:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}
