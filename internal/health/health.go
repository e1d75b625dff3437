package health

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"gstcapture/internal/stats"
)

// Source is what the probes need from the running service.
type Source interface {
	Snapshots(now time.Time) []stats.Snapshot
	RedisHealthy() bool
	RedisFull() bool
	Frozen() int64
	Memory() stats.Memory
}

// Options set the probe thresholds.
type Options struct {
	MinReady  int // cameras that must be streaming for readiness
	MaxFrozen int // abandoned pipelines tolerated before liveness fails
	// Config reports the configuration's state for /health; nil leaves it out.
	Config func() ConfigStatus
	// Fleet is set on a replica of a fleet (*fleet.Fleet): readiness
	// waits for its first heartbeat, and min_ready counts at most the
	// cameras placed here (a replica holding none is ready, so a rollout
	// of more replicas than cameras goes on).
	Fleet interface{ Joined() bool }
}

// ConfigStatus is the "config" object of /health: which configuration
// runs, and how the last reload went.
type ConfigStatus struct {
	File string `json:"file,omitempty"`
	// Generation is 1 after start and grows each time a reload or a camera
	// API call changed what runs; LoadedAt is when the current one took effect.
	Generation   uint64     `json:"generation"`
	LoadedAt     time.Time  `json:"loaded_at"`
	LastReloadAt *time.Time `json:"last_reload_at,omitempty"`
	LastResult   string     `json:"last_result"`
	// LastError and Problems are set while the latest reload of the file
	// was rejected: the previous configuration runs.
	LastError string    `json:"last_error"`
	Problems  []Problem `json:"problems,omitempty"`
	// RestartNeeded are settings changed in the file that only a restart
	// applies; their running values are kept.
	RestartNeeded []string   `json:"restart_needed,omitempty"`
	APICameras    APICameras `json:"api_cameras"`
}

// Problem is one thing wrong with a configuration or a camera entry, at a
// path such as "cameras[1].fps" (the file) or "fps" (the camera API).
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// APICameras says whether the cameras created through the API have been
// read from Redis.
type APICameras struct {
	Loaded bool   `json:"loaded"`
	Count  int    `json:"count"`
	Error  string `json:"error,omitempty"`
}

// Overall status values of /health.
const (
	Healthy   = "healthy"
	Degraded  = "degraded"
	Unhealthy = "unhealthy"
)

// Report is the body of /health.
type Report struct {
	Status  string           `json:"status"`
	Redis   string           `json:"redis"`
	Frozen  int64            `json:"frozen_pipelines"`
	Memory  stats.Memory     `json:"memory"`
	Config  *ConfigStatus    `json:"config,omitempty"`
	Reasons []string         `json:"reasons,omitempty"`
	Cameras []stats.Snapshot `json:"cameras"`
}

// Checker evaluates liveness, readiness and the overall status.
type Checker struct {
	src       Source
	config    func() ConfigStatus
	fleet     interface{ Joined() bool }
	minReady  atomic.Int64
	maxFrozen atomic.Int64
	now       func() time.Time
}

// NewChecker returns a checker over src.
func NewChecker(src Source, opts Options) *Checker {
	c := &Checker{src: src, config: opts.Config, fleet: opts.Fleet, now: time.Now}
	c.SetThresholds(opts.MinReady, opts.MaxFrozen)
	return c
}

// SetThresholds changes health.min_ready and health.max_frozen (a reload).
func (c *Checker) SetThresholds(minReady, maxFrozen int) {
	c.minReady.Store(int64(minReady))
	c.maxFrozen.Store(int64(maxFrozen))
}

// Live reports whether the process can still make progress; reasons say
// why not. Only a wedged process fails: a camera being down is not a
// reason to restart us.
func (c *Checker) Live() (bool, []string) {
	if n, limit := c.src.Frozen(), c.maxFrozen.Load(); limit > 0 && n > limit {
		return false, []string{fmt.Sprintf("%d frozen pipelines exceed health.max_frozen=%d", n, limit)}
	}
	return true, nil
}

// Ready reports whether the service is doing its job.
func (c *Checker) Ready() (bool, []string) {
	var reasons []string
	switch {
	case !c.src.RedisHealthy():
		reasons = append(reasons, "redis unreachable")
	case c.src.RedisFull():
		reasons = append(reasons, "redis full: XADD refused for want of memory (maxmemory); see redis.memory_budget")
	}
	streaming := 0
	snaps := c.src.Snapshots(c.now())
	for _, s := range snaps {
		if s.State == stats.StateStreaming {
			streaming++
		}
	}
	minReady := c.minReady.Load()
	if c.fleet != nil {
		minReady = min(minReady, int64(len(snaps)))
		if !c.fleet.Joined() {
			reasons = append(reasons, "fleet: not joined yet (no heartbeat has reached Redis)")
		}
	}
	if int64(streaming) < minReady {
		reasons = append(reasons, fmt.Sprintf("%d cameras streaming, health.min_ready=%d", streaming, minReady))
	}
	if live, why := c.Live(); !live {
		reasons = append(reasons, why...)
	}
	return len(reasons) == 0, reasons
}

// Report builds the /health body.
func (c *Checker) Report() Report {
	snaps := c.src.Snapshots(c.now())
	r := Report{Redis: "up", Frozen: c.src.Frozen(), Memory: c.src.Memory(), Cameras: snaps}
	switch {
	case !c.src.RedisHealthy():
		r.Redis = "down"
	case c.src.RedisFull():
		r.Redis = "full"
	}
	var notes []string // what makes a live and ready service degraded
	if c.config != nil {
		cs := c.config()
		r.Config = &cs
		if cs.LastError != "" {
			notes = append(notes, "the last reload of the configuration file was rejected, the previous configuration runs: "+cs.LastError)
		}
		for _, key := range cs.RestartNeeded {
			notes = append(notes, "restart needed for "+key+": the configuration file changed it, the running value is kept")
		}
	}
	live, why := c.Live()
	ready, rwhy := c.Ready()
	down := 0
	for _, s := range snaps {
		if s.State != stats.StateStreaming && s.State != stats.StateDisabled {
			down++
		}
	}
	if down > 0 {
		notes = append([]string{fmt.Sprintf("%d of %d cameras not streaming", down, len(snaps))}, notes...)
	}
	switch {
	case !live:
		r.Status, r.Reasons = Unhealthy, why
	case !ready:
		r.Status, r.Reasons = Unhealthy, rwhy
	case len(notes) > 0:
		r.Status, r.Reasons = Degraded, notes
	default:
		r.Status = Healthy
	}
	return r
}

// Register adds the probe routes through handle (e.g. ServeMux.HandleFunc).
func (c *Checker) Register(handle func(pattern string, h func(http.ResponseWriter, *http.Request))) {
	handle("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := c.Live()
		writeProbe(w, ok, why)
	})
	handle("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := c.Ready()
		writeProbe(w, ok, why)
	})
	handle("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		r := c.Report()
		code := http.StatusOK
		if r.Status == Unhealthy {
			code = http.StatusServiceUnavailable
		}
		WriteJSON(w, code, r)
	})
}

func writeProbe(w http.ResponseWriter, ok bool, reasons []string) {
	if ok {
		WriteJSON(w, http.StatusOK, map[string]any{"status": "ok"})
		return
	}
	WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "fail", "reasons": reasons})
}

// WriteJSON writes v as an indented JSON response.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
