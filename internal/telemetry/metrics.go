package telemetry

import (
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"gstcapture/internal/frame"
	"gstcapture/internal/stats"
)

// Source is what the metrics read from the running service at scrape time.
type Source interface {
	Registry() *stats.Registry
	RingLen(cameraID string) int
	RedisHealthy() bool
	RedisMemoryBudget() int64
	MemoryBudget() int64
}

// Metrics is the service's Prometheus registry and hot-path observers.
type Metrics struct {
	reg        *prometheus.Registry
	mu         sync.RWMutex // cams: read per published frame, written by forget
	cams       map[string]*CameraObservers
	publish    prometheus.Observer
	processing *prometheus.HistogramVec
	latency    *prometheus.HistogramVec
	sinkLat    *prometheus.HistogramVec
	reloads    *prometheus.CounterVec
	reloadOK   prometheus.Gauge // 1 unless the latest reload was rejected
	reloadAt   prometheus.Gauge // unix time of the latest reload that was not rejected (or the start)
	spans      *spanCounters
}

// Results of a configuration reload, the label of rtsp_config_reloads_total.
const (
	ReloadApplied   = "applied"   // valid, and what runs changed
	ReloadUnchanged = "unchanged" // valid, and nothing to change (SIGHUP without an edit)
	ReloadInvalid   = "invalid"   // rejected: the running configuration is kept
)

// CameraObservers are one camera's histogram observers, resolved once.
type CameraObservers struct {
	Validate, Enqueue, Publish prometheus.Observer
	Latency, SinkLatency       prometheus.Observer
}

// BuildInfo labels gstcapture_build_info.
type BuildInfo struct{ Version, GStreamer string }

// NewMetrics registers every collector for the cameras in cameraIDs. A
// camera removed from src's registry (stats.Registry.Remove) loses its
// series: the collected ones at once, the histograms through OnRemove.
func NewMetrics(src Source, cameraIDs []string, info BuildInfo) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), cams: map[string]*CameraObservers{}, spans: &spanCounters{}}
	m.processing = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rtsp_frame_processing_duration_seconds",
		Help:    "Time a frame spends in each stage of gstcapture (validate, enqueue, publish).",
		Buckets: prometheus.ExponentialBuckets(5e-6, 3, 12), // 5 µs .. ~0.9 s
	}, []string{"camera_id", "stage"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rtsp_frame_latency_seconds",
		Help:    "Capture (camera RTCP/NTP time when present, else appsink arrival) to published in Redis.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms .. ~8 s
	}, []string{"camera_id"})
	m.sinkLat = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rtsp_frame_publish_latency_seconds",
		Help:    "Appsink to acknowledged by Redis: the part of the latency gstcapture adds.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1 ms .. ~3 s
	}, []string{"camera_id"})
	pub := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rtsp_redis_publish_duration_seconds",
		Help:    "Duration of one pipelined XADD round trip to Redis.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	m.publish = pub
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gstcapture_build_info",
		Help: "Build information; value 1.",
	}, []string{"version", "goversion", "gstreamer"})
	build.WithLabelValues(info.Version, runtime.Version(), info.GStreamer).Set(1)

	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rtsp_config_reloads_total",
		Help: "Reloads of the configuration file (file change or SIGHUP), by result: applied, unchanged, invalid (rejected, the running configuration is kept).",
	}, []string{"result"})
	for _, r := range []string{ReloadApplied, ReloadUnchanged, ReloadInvalid} {
		m.reloads.WithLabelValues(r)
	}
	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rtsp_config_last_reload_successful",
		Help: "1 unless the latest reload of the configuration file was rejected (the previous configuration runs), then 0 until a valid one.",
	})
	m.reloadOK.Set(1)
	m.reloadAt = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rtsp_config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the latest configuration load that was not rejected (the start, or a reload).",
	})
	m.reloadAt.SetToCurrentTime()

	m.reg.MustRegister(m.processing, m.latency, m.sinkLat, pub, build, m.reloads, m.reloadOK, m.reloadAt,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&statsCollector{src: src},
		m.spans)
	if src != nil {
		src.Registry().OnRemove(m.forget)
	}
	for _, id := range cameraIDs {
		m.AddCamera(id)
	}
	return m
}

// AddCamera creates camera id's observers (a camera added at run time)
// and returns them; for a known id, the ones it has.
func (m *Metrics) AddCamera(id string) *CameraObservers {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.cams[id]; ok {
		return o
	}
	o := &CameraObservers{
		Validate:    m.processing.WithLabelValues(id, "validate"),
		Enqueue:     m.processing.WithLabelValues(id, "enqueue"),
		Publish:     m.processing.WithLabelValues(id, "publish"),
		Latency:     m.latency.WithLabelValues(id),
		SinkLatency: m.sinkLat.WithLabelValues(id),
	}
	m.cams[id] = o
	return o
}

// Reloaded counts one configuration reload with its result (ReloadApplied,
// ReloadUnchanged, ReloadInvalid).
func (m *Metrics) Reloaded(result string) {
	m.reloads.WithLabelValues(result).Inc()
	if result == ReloadInvalid {
		m.reloadOK.Set(0)
		return
	}
	m.reloadOK.Set(1)
	m.reloadAt.SetToCurrentTime()
}

// forget deletes camera id's histogram series and observers.
func (m *Metrics) forget(id string) {
	m.mu.Lock()
	delete(m.cams, id)
	m.mu.Unlock()
	for _, v := range []*prometheus.HistogramVec{m.processing, m.latency, m.sinkLat} {
		v.DeletePartialMatch(prometheus.Labels{"camera_id": id})
	}
}

// LatencyBuckets implements stats.LatencySource with camera id's
// rtsp_frame_latency_seconds histogram, for the in-process history.
func (m *Metrics) LatencyBuckets(id string) (bounds []float64, cumulative []uint64, total uint64, ok bool) {
	o := m.Camera(id)
	if o == nil {
		return nil, nil, 0, false
	}
	metric, isMetric := o.Latency.(prometheus.Metric)
	var d dto.Metric
	if !isMetric || metric.Write(&d) != nil || d.Histogram == nil {
		return nil, nil, 0, false
	}
	for _, b := range d.Histogram.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
		cumulative = append(cumulative, b.GetCumulativeCount())
	}
	return bounds, cumulative, d.Histogram.GetSampleCount(), true
}

// Registry is what /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Camera returns the observers of camera id (nil when unknown).
func (m *Metrics) Camera(id string) *CameraObservers {
	if m == nil {
		return nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.cams[id]
}

// PublishDuration implements publish.Recorder.
func (m *Metrics) PublishDuration(_ string, d time.Duration, _ int) {
	m.publish.Observe(d.Seconds())
}

// Published implements publish.Recorder.
func (m *Metrics) Published(cameraID string, f *frame.Frame, start, now time.Time) {
	o := m.Camera(cameraID)
	if o == nil {
		return
	}
	o.Publish.Observe(now.Sub(start).Seconds())
	o.Latency.Observe(now.Sub(f.CaptureTime).Seconds())
	o.SinkLatency.Observe(now.Sub(f.SinkTime).Seconds())
}

// PublishRecorder is the publish.Recorder of the service: each result is
// observed in the metrics and, with a tracer, as the frame's publish span.
type PublishRecorder struct {
	m *Metrics
	t *Tracer // nil: no spans
}

// PublishRecorder returns the recorder that observes publish results in m
// and t (t may be nil).
func (m *Metrics) PublishRecorder(t *Tracer) PublishRecorder { return PublishRecorder{m, t} }

// PublishDuration implements publish.Recorder.
func (r PublishRecorder) PublishDuration(id string, d time.Duration, n int) {
	r.m.PublishDuration(id, d, n)
}

// Published implements publish.Recorder.
func (r PublishRecorder) Published(id string, f *frame.Frame, start, now time.Time) {
	r.m.Published(id, f, start, now)
	if r.t != nil {
		r.t.Published(f, start, now)
	}
}

// statsCollector turns internal/stats counters into metrics at scrape time.
type statsCollector struct{ src Source }

var (
	descCaptured   = prometheus.NewDesc("rtsp_frames_captured_total", "Frames out of the appsink.", []string{"camera_id"}, nil)
	descPublished  = prometheus.NewDesc("rtsp_frames_published_total", "Frames acknowledged by Redis.", []string{"camera_id"}, nil)
	descDropped    = prometheus.NewDesc("rtsp_frames_dropped_total", "Captured frames not published, by reason.", []string{"camera_id", "reason"}, nil)
	descFlagged    = prometheus.NewDesc("rtsp_frames_flagged_total", "Frames kept but flagged by a validation rule whose action is pass, by rule.", []string{"camera_id", "reason"}, nil)
	descConnected  = prometheus.NewDesc("rtsp_connection_status", "1 while the camera is streaming, else 0.", []string{"camera_id"}, nil)
	descState      = prometheus.NewDesc("rtsp_camera_state", "1 for the camera's current state, 0 for the others.", []string{"camera_id", "state"}, nil)
	descReconnects = prometheus.NewDesc("rtsp_reconnects_total", "Pipeline rebuilds, by reason.", []string{"camera_id", "reason"}, nil)
	descErrors     = prometheus.NewDesc("rtsp_errors_total", "Pipeline errors, by type.", []string{"camera_id", "type"}, nil)
	descRing       = prometheus.NewDesc("rtsp_ring_occupancy", "Frames waiting in the camera's ring for Redis.", []string{"camera_id"}, nil)
	descDecoder    = prometheus.NewDesc("rtsp_decoder_info", "The camera's codec and decoder element; value 1.", []string{"camera_id", "codec", "decoder"}, nil)
	descLastFrame  = prometheus.NewDesc("rtsp_last_frame_timestamp_seconds", "Unix time of the camera's newest frame (0 before the first).", []string{"camera_id"}, nil)
	descFrozen     = prometheus.NewDesc("rtsp_frozen_pipelines_total", "Pipelines abandoned because teardown missed its deadline.", []string{"camera_id"}, nil)
	descSkipped    = prometheus.NewDesc("rtsp_frames_skipped_undecodable_total", "Encoded frames skipped between a packet loss and the next keyframe (not those before a connection's first keyframe); they never reach the decoder.", []string{"camera_id"}, nil)
	descDecoder2   = prometheus.NewDesc("rtsp_decoder_frames_total", "Frames into (in) and out of (out) the decoder; in - out is what the decoder discarded (plus at most one in flight).", []string{"camera_id", "direction"}, nil)
	descRedisUp    = prometheus.NewDesc("rtsp_redis_up", "1 while the publisher considers Redis reachable, else 0.", nil, nil)
	descRetention  = prometheus.NewDesc("rtsp_redis_retention_seconds", "History the camera's stream keeps: its MAXLEN over its fps, shortened when redis.retention does not fit redis.memory_budget.", []string{"camera_id"}, nil)
	descBudget     = prometheus.NewDesc("rtsp_redis_memory_budget_bytes", "Bytes all frame streams may hold in Redis together (redis.memory_budget; auto: 75% of Redis's maxmemory); 0 = unbounded.", nil, nil)
	descMemBudget  = prometheus.NewDesc("rtsp_memory_budget_bytes", "Bytes the process's frames and Go heap may hold together (memory.budget; auto: 75% of the container's memory limit); 0 = unbounded.", nil, nil)
	descRingCap    = prometheus.NewDesc("rtsp_ring_capacity_frames", "Frames of the current size the camera's ring holds within memory.budget (at most ring_size).", []string{"camera_id"}, nil)
)

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCaptured, descPublished, descDropped, descFlagged, descConnected, descState, descReconnects, descErrors, descRing, descDecoder, descLastFrame, descFrozen, descSkipped, descDecoder2, descRedisUp, descRetention, descBudget, descMemBudget, descRingCap} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	up := 0.0
	if c.src.RedisHealthy() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descRedisUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descBudget, prometheus.GaugeValue, float64(c.src.RedisMemoryBudget()))
	ch <- prometheus.MustNewConstMetric(descMemBudget, prometheus.GaugeValue, float64(c.src.MemoryBudget()))
	for _, cam := range c.src.Registry().All() {
		s := cam.Snapshot(now)
		id := s.ID
		ch <- prometheus.MustNewConstMetric(descCaptured, prometheus.CounterValue, float64(s.Captured), id)
		ch <- prometheus.MustNewConstMetric(descPublished, prometheus.CounterValue, float64(s.Published), id)
		for _, r := range stats.Reasons() {
			ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(cam.Dropped(r)), id, r.String())
		}
		for _, r := range stats.ValidationReasons() {
			ch <- prometheus.MustNewConstMetric(descFlagged, prometheus.CounterValue, float64(cam.Flagged(r)), id, r.String())
		}
		up := 0.0
		if s.State == stats.StateStreaming {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, up, id)
		for _, st := range stats.States {
			v := 0.0
			if st == s.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, id, string(st))
		}
		emitLabelled(ch, descReconnects, id, stats.ReconnectReasons(), cam.ReconnectsByReason())
		emitLabelled(ch, descErrors, id, stats.ErrorTypes(), cam.ErrorsByType())
		ch <- prometheus.MustNewConstMetric(descRing, prometheus.GaugeValue, float64(c.src.RingLen(id)), id)
		ch <- prometheus.MustNewConstMetric(descRingCap, prometheus.GaugeValue, float64(s.RingFrames), id)
		if s.Decoder != "" {
			ch <- prometheus.MustNewConstMetric(descDecoder, prometheus.GaugeValue, 1, id, s.Codec, s.Decoder)
		}
		last := 0.0
		if t := cam.LastFrame(); !t.IsZero() {
			last = float64(t.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(descLastFrame, prometheus.GaugeValue, last, id)
		ch <- prometheus.MustNewConstMetric(descFrozen, prometheus.CounterValue, float64(s.Frozen), id)
		ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(s.SkippedUndecodable), id)
		ch <- prometheus.MustNewConstMetric(descRetention, prometheus.GaugeValue, s.RedisRetention, id)
		in, out := cam.DecoderFrames()
		ch <- prometheus.MustNewConstMetric(descDecoder2, prometheus.CounterValue, float64(in), id, "in")
		ch <- prometheus.MustNewConstMetric(descDecoder2, prometheus.CounterValue, float64(out), id, "out")
	}
}

// emitLabelled writes one counter per known label value (zero when unseen)
// plus any value seen that is not in known.
func emitLabelled[L ~string](ch chan<- prometheus.Metric, d *prometheus.Desc, id string, known []L, seen map[L]uint64) {
	for _, k := range known {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(seen[k]), id, string(k))
	}
	for k, v := range seen {
		if !slices.Contains(known, k) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), id, string(k))
		}
	}
}
