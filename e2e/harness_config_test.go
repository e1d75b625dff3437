package e2e

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// svcConfig is the configuration file of a gstcapture under test. A test
// sets its cameras and the settings it is about; a zero field is left out
// of the file, so gstcapture's default holds (internal/config: log info in
// JSON, fps 10, BGR, stall_timeout 5s, reconnect 1s..30s, ring_size 32,
// redis retention 10s without maxlen, health min_ready 1). The HTTP listener
// and the API tokens come from the environment (startService).
type svcConfig struct {
	Redis        string // redis.url
	MaxLen       int    // redis.maxlen
	Retention    string // redis.retention
	RedisTimeout string // redis.timeout
	RedisMode    string // redis.mode: single (default) or cluster

	// fleet: a replica of a fleet when Fleet is set.
	Fleet        bool   // fleet.enabled
	ReplicaID    string // fleet.replica_id (default: the host name)
	Lease        string // fleet.lease
	FleetMaxCams int    // fleet.max_cameras

	LogLevel string // log.level; the format is JSON, which the log reader parses
	// AnyReady sets health.min_ready 0: /readyz does not wait for a camera
	// (the tests' failing cameras would hold it at 503).
	AnyReady    bool
	MaxFrozen   int     // health.max_frozen
	Shutdown    string  // shutdown.timeout
	Memory      string  // memory.budget
	SampleRatio float64 // tracing.sample_ratio
	MetricsAuth string  // http.auth.metrics

	// defaults: for every camera.
	FPS          int
	StallTimeout string
	Reconnect    reconnect
	RingSize     int

	Cameras []camCfg
}

// reconnect is defaults.reconnect: the backoff's first and longest delay.
type reconnect struct {
	Initial string `yaml:"initial,omitempty"`
	Max     string `yaml:"max,omitempty"`
}

// camCfg is one entry of cameras.
type camCfg struct {
	ID        string `yaml:"id"`
	URL       string `yaml:"url"`
	Codec     string `yaml:"codec"` // h264 when empty
	Transport string `yaml:"transport,omitempty"`
	TLSCAFile string `yaml:"tls_ca_file,omitempty"`
	MaxWidth  int    `yaml:"max_width,omitempty"`
	MaxHeight int    `yaml:"max_height,omitempty"`
	FPS       int    `yaml:"fps,omitempty"`      // over defaults.fps
	Delivery  string `yaml:"delivery,omitempty"` // redis (default) or shm; shm.dir from the environment (shmEnv)
	Format    string `yaml:"format,omitempty"`
	Width     int    `yaml:"width,omitempty"`
	Height    int    `yaml:"height,omitempty"`
}

// simCams is cameras cam1..camN of one camsim, with codec h264.
func simCams(sim *camsim, n int) []camCfg {
	cams := make([]camCfg, n)
	for i := range cams {
		cams[i] = camCfg{ID: fmt.Sprintf("cam%d", i+1), URL: sim.URL(i + 1)}
	}
	return cams
}

// camIDs returns the ids of cams.
func camIDs(cams []camCfg) []string {
	ids := make([]string, len(cams))
	for i, c := range cams {
		ids[i] = c.ID
	}
	return ids
}

// YAML renders the file.
func (c svcConfig) YAML(t testing.TB) string {
	t.Helper()
	type section = map[string]any
	doc := section{}
	put := func(name, key string, v any) {
		switch v {
		case "", 0, 0.0, false, reconnect{}:
			return
		}
		if doc[name] == nil {
			doc[name] = section{}
		}
		doc[name].(section)[key] = v
	}
	put("redis", "url", c.Redis)
	put("redis", "maxlen", c.MaxLen)
	put("redis", "retention", c.Retention)
	put("redis", "timeout", c.RedisTimeout)
	put("redis", "mode", c.RedisMode)
	put("fleet", "enabled", c.Fleet)
	put("fleet", "replica_id", c.ReplicaID)
	put("fleet", "lease", c.Lease)
	put("fleet", "max_cameras", c.FleetMaxCams)
	put("log", "format", "json")
	put("log", "level", c.LogLevel)
	if c.AnyReady {
		doc["health"] = section{"min_ready": 0}
	}
	put("health", "max_frozen", c.MaxFrozen)
	put("shutdown", "timeout", c.Shutdown)
	put("memory", "budget", c.Memory)
	put("tracing", "sample_ratio", c.SampleRatio)
	if c.MetricsAuth != "" {
		doc["http"] = section{"auth": section{"metrics": c.MetricsAuth}}
	}
	put("defaults", "fps", c.FPS)
	put("defaults", "stall_timeout", c.StallTimeout)
	put("defaults", "reconnect", c.Reconnect)
	put("defaults", "ring_size", c.RingSize)
	cams := make([]camCfg, len(c.Cameras))
	for i, cam := range c.Cameras {
		if cam.Codec == "" {
			cam.Codec = "h264"
		}
		cams[i] = cam
	}
	doc["cameras"] = cams
	b, err := yaml.Marshal(doc)
	require.NoError(t, err, "render the configuration")
	return string(b)
}
