package stats

import (
	"context"
	"math"
	"sync"
	"time"
)

// LatencySource reads a camera's capture-to-published latency histogram
// (telemetry.Metrics): the buckets' upper bounds, ascending and finite, and
// their cumulative counts, plus the count of every observation (the +Inf
// bucket); ok is false for a camera it does not know.
type LatencySource interface {
	LatencyBuckets(id string) (bounds []float64, cumulative []uint64, total uint64, ok bool)
}

// HistoryPoint is one interval of a camera's history.
type HistoryPoint struct {
	T   time.Time `json:"t"`
	FPS float64   `json:"fps"`
	// LatencyP99 is the 99th percentile of the interval's frames, estimated
	// from the histogram's buckets as Prometheus' histogram_quantile does;
	// nil when no frame was published in it.
	LatencyP99 *float64 `json:"latency_p99_seconds"`
	Dropped    uint64   `json:"dropped"` // frames dropped within the interval
}

// History samples every camera's fps, latency p99 and drops at a fixed
// interval and keeps a window of them in memory, so that the console
// draws the last minutes without a Prometheus. It holds at most
// window/interval points a camera, and nothing of a removed camera.
type History struct {
	reg      *Registry
	lat      LatencySource
	interval time.Duration
	keep     int

	mu   sync.Mutex
	cams map[string]*series
}

// series is one camera's points, a ring, and the counters of the previous
// sample the next one is taken against.
type series struct {
	cam     *Camera // the counters sampled: a camera added again under its id is a new series
	points  []HistoryPoint
	next    int
	dropped uint64
	counts  []uint64
	total   uint64
}

// Default history: 10 minutes in 5-second points.
const (
	HistoryInterval = 5 * time.Second
	HistoryWindow   = 10 * time.Minute
)

// NewHistory returns a history of reg's cameras (lat may be nil: no
// latency), sampled every interval over window (0: the defaults).
func NewHistory(reg *Registry, lat LatencySource, interval, window time.Duration) *History {
	if interval <= 0 {
		interval = HistoryInterval
	}
	if window <= 0 {
		window = HistoryWindow
	}
	h := &History{reg: reg, lat: lat, interval: interval, keep: max(int(window/interval), 1), cams: map[string]*series{}}
	reg.OnRemove(h.forget)
	return h
}

// Interval returns the time between two points.
func (h *History) Interval() time.Duration { return h.interval }

// Window returns the span the history keeps.
func (h *History) Window() time.Duration { return time.Duration(h.keep) * h.interval }

// Run samples until ctx is done.
func (h *History) Run(ctx context.Context) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.Sample(now)
		}
	}
}

// Sample takes one point of every camera. A camera's first sample only
// records its counters: a point says what happened within an interval.
func (h *History) Sample(now time.Time) {
	cams := h.reg.All()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range cams {
		s := h.cams[c.ID]
		dropped := c.DroppedTotal()
		var bounds []float64
		var counts []uint64
		var total uint64
		var ok bool
		if h.lat != nil {
			bounds, counts, total, ok = h.lat.LatencyBuckets(c.ID)
		}
		if s == nil || s.cam != c {
			h.cams[c.ID] = &series{cam: c, dropped: dropped, counts: counts, total: total}
			continue
		}
		p := HistoryPoint{T: now, FPS: c.Snapshot(now).FPS, Dropped: dropped - s.dropped}
		if ok && len(counts) == len(s.counts) && total >= s.total {
			p.LatencyP99 = quantile(0.99, bounds, counts, s.counts, total-s.total)
		}
		s.dropped, s.counts, s.total = dropped, counts, total
		if len(s.points) < h.keep {
			s.points = append(s.points, p)
		} else {
			s.points[s.next] = p
		}
		s.next = (s.next + 1) % h.keep
	}
}

// Points returns camera id's points, oldest first; ok is false for a
// camera the history does not hold.
func (h *History) Points(id string) (points []HistoryPoint, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.cams[id]
	if s == nil {
		return nil, false
	}
	if len(s.points) < h.keep {
		return append([]HistoryPoint{}, s.points...), true
	}
	return append(append([]HistoryPoint{}, s.points[s.next:]...), s.points[:s.next]...), true
}

func (h *History) forget(id string) {
	h.mu.Lock()
	delete(h.cams, id)
	h.mu.Unlock()
}

// quantile estimates the q-quantile of the observations between two reads
// of a histogram (cur and prev cumulative counts over bounds, n
// observations in between), interpolating linearly within the bucket the
// rank falls in; one past the last bound is reported as the last bound.
// nil when n is 0.
func quantile(q float64, bounds []float64, cur, prev []uint64, n uint64) *float64 {
	if n == 0 || len(bounds) == 0 || len(cur) != len(bounds) || len(prev) != len(bounds) {
		return nil
	}
	rank := q * float64(n)
	var below uint64 // observations under the bucket's lower bound
	for i, ub := range bounds {
		if cur[i] < prev[i] {
			return nil // the histogram started again
		}
		in := cur[i] - prev[i]
		if float64(in) >= rank {
			lo := 0.0
			if i > 0 {
				lo = bounds[i-1]
			}
			bucket := in - below
			v := ub
			if bucket > 0 {
				v = lo + (ub-lo)*(rank-float64(below))/float64(bucket)
			}
			v = math.Max(lo, math.Min(ub, v))
			return &v
		}
		below = in
	}
	v := bounds[len(bounds)-1]
	return &v
}

// CameraHistory is a camera's history and its newest state changes, for
// the console's camera page (GET /api/v1/cameras/{id}/history).
type CameraHistory struct {
	ID              string         `json:"id"`
	IntervalSeconds float64        `json:"interval_seconds"`
	WindowSeconds   float64        `json:"window_seconds"`
	Points          []HistoryPoint `json:"points"` // oldest first
	States          []Transition   `json:"states"` // oldest first
}

// Pipeline is one launch string a camera runs, with its secrets redacted;
// Codec says which codec it serves under codec auto ("probe": the SDP
// probe), "" for a camera of one codec.
type Pipeline struct {
	Codec  string `json:"codec"`
	Launch string `json:"launch"`
}
