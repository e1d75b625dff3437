package health

import (
	"encoding/json"
	"fmt"
	"net/http"
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
	Reasons []string         `json:"reasons,omitempty"`
	Cameras []stats.Snapshot `json:"cameras"`
}

// Checker evaluates liveness, readiness and the overall status.
type Checker struct {
	src  Source
	opts Options
	now  func() time.Time
}

// NewChecker returns a checker over src.
func NewChecker(src Source, opts Options) *Checker {
	return &Checker{src: src, opts: opts, now: time.Now}
}

// Live reports whether the process can still make progress; reasons say
// why not. Only a wedged process fails: a camera being down is not a
// reason to restart us.
func (c *Checker) Live() (bool, []string) {
	if n := c.src.Frozen(); c.opts.MaxFrozen > 0 && n > int64(c.opts.MaxFrozen) {
		return false, []string{fmt.Sprintf("%d frozen pipelines exceed health.max_frozen=%d", n, c.opts.MaxFrozen)}
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
	for _, s := range c.src.Snapshots(c.now()) {
		if s.State == stats.StateStreaming {
			streaming++
		}
	}
	if streaming < c.opts.MinReady {
		reasons = append(reasons, fmt.Sprintf("%d cameras streaming, health.min_ready=%d", streaming, c.opts.MinReady))
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
	live, why := c.Live()
	ready, rwhy := c.Ready()
	down := 0
	for _, s := range snaps {
		if s.State != stats.StateStreaming {
			down++
		}
	}
	switch {
	case !live:
		r.Status, r.Reasons = Unhealthy, why
	case !ready:
		r.Status, r.Reasons = Unhealthy, rwhy
	case down > 0:
		r.Status = Degraded
		r.Reasons = []string{fmt.Sprintf("%d of %d cameras not streaming", down, len(snaps))}
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
