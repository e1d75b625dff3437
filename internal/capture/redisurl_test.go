package capture

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"gstcapture/internal/config"
)

// rediss with skip_verify is allowed, and said loudly at start: nothing
// checks who is at the other end.
func TestRedissSkipVerifyWarns(t *testing.T) {
	for _, tc := range []struct {
		url  string
		warn bool
	}{
		{"rediss://127.0.0.1:1/0?skip_verify=true", true},
		{"rediss://127.0.0.1:1/0", false},
		{"redis://127.0.0.1:1/0", false},
	} {
		var logs bytes.Buffer
		cfg := &config.Config{Redis: config.Redis{URL: tc.url, Timeout: time.Second, Retention: 10 * time.Second},
			Shutdown: config.Shutdown{Timeout: time.Second}, Cameras: []config.Camera{autoCamera()}}
		// Whether GStreamer finds decoders here or not (New may fail on
		// the camera), the Redis URL was looked at first.
		if svc, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)), Options{}); err == nil {
			_ = svc.redis.Close()
		}
		if tc.warn {
			assert.Contains(t, logs.String(), "rediss with skip_verify", tc.url)
		} else {
			assert.NotContains(t, logs.String(), "skip_verify", tc.url)
		}
	}
}
