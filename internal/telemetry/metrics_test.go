package telemetry

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/stats"
)

// fakeSource is the running service as the metrics see it.
type fakeSource struct {
	reg  *stats.Registry
	ring map[string]int
}

func (s fakeSource) Registry() *stats.Registry { return s.reg }
func (s fakeSource) RingLen(id string) int     { return s.ring[id] }
func (s fakeSource) RedisHealthy() bool        { return true }
func (s fakeSource) RedisMemoryBudget() int64  { return 0 }
func (s fakeSource) MemoryBudget() int64       { return 0 }

func newRegistry(ids ...string) *stats.Registry {
	r := stats.NewRegistry()
	for _, id := range ids {
		r.Add(id)
	}
	return r
}

// gatherValue returns the value of the series name{labels...} (labels may
// be a subset) from m's registry, failing when there is no such series.
func gatherValue(t *testing.T, m *Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range s.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			switch {
			case s.Counter != nil:
				return s.Counter.GetValue()
			case s.Gauge != nil:
				return s.Gauge.GetValue()
			case s.Histogram != nil:
				return float64(s.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// exposition gathers reg and renders the families named, in the order
// named, in the Prometheus text format: what /metrics shows. (The same check
// as prometheus/testutil.GatherAndCompare, which needs a module this
// go.mod does not list.)
func exposition(t *testing.T, reg prometheus.Gatherer, names ...string) string {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var b bytes.Buffer
	for _, name := range names {
		i := slices.IndexFunc(mfs, func(mf *dto.MetricFamily) bool { return mf.GetName() == name })
		require.GreaterOrEqual(t, i, 0, "no metric family %s", name)
		_, err := expfmt.MetricFamilyToText(&b, mfs[i])
		require.NoError(t, err)
	}
	return b.String()
}

func TestNewMetricsRegisters(t *testing.T) {
	src := fakeSource{reg: newRegistry("cam-1", "cam-2")}
	var m *Metrics
	require.NotPanics(t, func() {
		m = NewMetrics(src, []string{"cam-1", "cam-2"}, BuildInfo{Version: "v-test", GStreamer: "1.22.0"})
	})
	// A second service in the same process has its own registry.
	require.NotPanics(t, func() { NewMetrics(src, []string{"cam-1"}, BuildInfo{}) })

	mfs, err := m.Registry().Gather()
	require.NoError(t, err, "Describe and Collect agree")
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{
		"rtsp_frames_captured_total", "rtsp_frames_published_total", "rtsp_frames_dropped_total",
		"rtsp_connection_status", "rtsp_camera_state", "rtsp_reconnects_total", "rtsp_errors_total",
		"rtsp_ring_occupancy", "rtsp_last_frame_timestamp_seconds", "rtsp_frozen_pipelines_total",
		"rtsp_trace_spans_exported_total", "rtsp_trace_spans_dropped_total",
		"gstcapture_build_info", "go_goroutines",
	} {
		assert.True(t, names[n], "%s is exported", n)
	}
	assert.Equal(t, 1.0, gatherValue(t, m, "gstcapture_build_info", map[string]string{"version": "v-test", "gstreamer": "1.22.0"}))

	require.NotNil(t, m.Camera("cam-1"))
	assert.Nil(t, m.Camera("unknown"))
	assert.Nil(t, (*Metrics)(nil).Camera("cam-1"))
}

func TestStatsCollectorIsConsistent(t *testing.T) {
	// The pedantic registry checks every collected metric against Describe.
	reg := prometheus.NewPedanticRegistry()
	src := fakeSource{reg: newRegistry("cam-1")}
	cam, _ := src.reg.Get("cam-1")
	cam.Reconnect("weird_new_reason") // outside ReconnectReasons, still emitted
	cam.SetDecoder("h264", "avdec_h264")
	require.NoError(t, reg.Register(&statsCollector{src: src}))
	require.NoError(t, reg.Register(&spanCounters{}))
	_, err := reg.Gather()
	require.NoError(t, err)
}

func TestCapturedFromStats(t *testing.T) {
	src := fakeSource{reg: newRegistry("cam-1", "cam-2"), ring: map[string]int{"cam-1": 3}}
	m := NewMetrics(src, []string{"cam-1", "cam-2"}, BuildInfo{})
	cam, _ := src.reg.Get("cam-1")
	now := time.Now()
	for range 5 {
		cam.FrameCaptured(now)
	}
	cam.Stored(4)
	cam.Drop(stats.DropBlack, 1)
	cam.SetState(stats.StateStreaming, "")

	assert.Equal(t, `# HELP rtsp_frames_captured_total Frames out of the appsink.
# TYPE rtsp_frames_captured_total counter
rtsp_frames_captured_total{camera_id="cam-1"} 5
rtsp_frames_captured_total{camera_id="cam-2"} 0
# HELP rtsp_frames_published_total Frames acknowledged by Redis.
# TYPE rtsp_frames_published_total counter
rtsp_frames_published_total{camera_id="cam-1"} 4
rtsp_frames_published_total{camera_id="cam-2"} 0
# HELP rtsp_ring_occupancy Frames waiting in the camera's ring for Redis.
# TYPE rtsp_ring_occupancy gauge
rtsp_ring_occupancy{camera_id="cam-1"} 3
rtsp_ring_occupancy{camera_id="cam-2"} 0
# HELP rtsp_connection_status 1 while the camera is streaming, else 0.
# TYPE rtsp_connection_status gauge
rtsp_connection_status{camera_id="cam-1"} 1
rtsp_connection_status{camera_id="cam-2"} 0
`, exposition(t, m.Registry(), "rtsp_frames_captured_total", "rtsp_frames_published_total", "rtsp_ring_occupancy", "rtsp_connection_status"))

	assert.Equal(t, 1.0, gatherValue(t, m, "rtsp_frames_dropped_total", map[string]string{"camera_id": "cam-1", "reason": "black"}))
	assert.Equal(t, 0.0, gatherValue(t, m, "rtsp_frames_dropped_total", map[string]string{"camera_id": "cam-1", "reason": "ring_overflow"}),
		"every reason has a series from the start")
	assert.Equal(t, 0.0, gatherValue(t, m, "rtsp_reconnects_total", map[string]string{"camera_id": "cam-2", "reason": "stall"}))
	assert.Equal(t, 1.0, gatherValue(t, m, "rtsp_camera_state", map[string]string{"camera_id": "cam-1", "state": "streaming"}))
	assert.Equal(t, 0.0, gatherValue(t, m, "rtsp_camera_state", map[string]string{"camera_id": "cam-1", "state": "starting"}))
	assert.InDelta(t, float64(now.UnixNano())/1e9, gatherValue(t, m, "rtsp_last_frame_timestamp_seconds", map[string]string{"camera_id": "cam-1"}), 1e-3)
	assert.Equal(t, 0.0, gatherValue(t, m, "rtsp_last_frame_timestamp_seconds", map[string]string{"camera_id": "cam-2"}))
}

// Frames a pass rule flagged are counted per rule, each validation rule
// with a series from the start and no other reason among them.
func TestFlaggedFromStats(t *testing.T) {
	src := fakeSource{reg: newRegistry("cam-1")}
	m := NewMetrics(src, []string{"cam-1"}, BuildInfo{})
	cam, _ := src.reg.Get("cam-1")
	cam.Flag(stats.ReasonSet(0).Add(stats.DropBlack))
	cam.Flag(stats.ReasonSet(0).Add(stats.DropBlack).Add(stats.DropCorrupt))

	assert.Equal(t, `# HELP rtsp_frames_flagged_total Frames kept but flagged by a validation rule whose action is pass, by rule.
# TYPE rtsp_frames_flagged_total counter
rtsp_frames_flagged_total{camera_id="cam-1",reason="black"} 2
rtsp_frames_flagged_total{camera_id="cam-1",reason="corrupt"} 1
rtsp_frames_flagged_total{camera_id="cam-1",reason="frozen"} 0
rtsp_frames_flagged_total{camera_id="cam-1",reason="size"} 0
rtsp_frames_flagged_total{camera_id="cam-1",reason="uniform"} 0
`, exposition(t, m.Registry(), "rtsp_frames_flagged_total"))
	assert.Equal(t, 0.0, gatherValue(t, m, "rtsp_frames_dropped_total", map[string]string{"camera_id": "cam-1", "reason": "black"}),
		"flagged frames are not dropped")
}

func TestPublishedObservesHistograms(t *testing.T) {
	m := NewMetrics(fakeSource{reg: newRegistry("cam-1")}, []string{"cam-1"}, BuildInfo{})
	f := testFrame("cam-1", 1)
	now := time.Now()
	m.Published("cam-1", f, now.Add(-time.Millisecond), now)
	m.Published("unknown", f, now, now) // ignored, no new series
	m.PublishDuration("cam-1", 2*time.Millisecond, 4)

	assert.Equal(t, 1.0, gatherValue(t, m, "rtsp_frame_processing_duration_seconds", map[string]string{"camera_id": "cam-1", "stage": "publish"}))
	assert.Equal(t, 1.0, gatherValue(t, m, "rtsp_frame_latency_seconds", map[string]string{"camera_id": "cam-1"}))
	assert.Equal(t, 1.0, gatherValue(t, m, "rtsp_frame_publish_latency_seconds", map[string]string{"camera_id": "cam-1"}))
	assert.Equal(t, 1.0, gatherValue(t, m, "rtsp_redis_publish_duration_seconds", nil))
	assert.Equal(t, 1, strings.Count(exposition(t, m.Registry(), "rtsp_frame_latency_seconds"), "rtsp_frame_latency_seconds_count"),
		"unknown cameras add no series")
}

// TestMetricsDocumented keeps docs/rtsp-capture-api.md in step with the
// metrics and spans the service exports.
func TestMetricsDocumented(t *testing.T) {
	raw, err := os.ReadFile("../../docs/rtsp-capture-api.md")
	require.NoError(t, err)
	doc := string(raw)
	documented := func(what, name string) {
		t.Helper()
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/rtsp-capture-api.md does not describe %s `%s`", what, name)
		}
	}
	src := fakeSource{reg: newRegistry("cam-1")}
	cam, _ := src.reg.Get("cam-1")
	cam.SetDecoder("h264", "avdec_h264")
	m := NewMetrics(src, []string{"cam-1"}, BuildInfo{})
	m.Fleet()
	m.PublishDuration("cam-1", time.Millisecond, 1) // histograms appear once observed
	m.Published("cam-1", testFrame("cam-1", 1), time.Now(), time.Now())
	mfs, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue // the standard collectors, documented as a group
		}
		documented("metric", name)
	}
	for _, r := range stats.Reasons() {
		documented("drop reason", r.String())
	}
	for _, st := range stats.States {
		documented("camera state", string(st))
	}
	for _, r := range stats.ReconnectReasons() {
		documented("reconnect reason", string(r))
	}
	for _, e := range stats.ErrorTypes() {
		documented("error type", string(e))
	}
	for _, n := range []string{SpanCapture, SpanValidate, SpanEnqueue, SpanPublish} {
		documented("span", n)
	}
}

// Removing a camera from the registry takes every series of it in the
// same call: the counters collected from stats and the histograms.
func TestRemoveCameraDeletesSeries(t *testing.T) {
	src := fakeSource{reg: newRegistry("cam-1", "cam-2")}
	m := NewMetrics(src, []string{"cam-1", "cam-2"}, BuildInfo{})
	for _, id := range []string{"cam-1", "cam-2"} {
		cam, _ := src.reg.Get(id)
		cam.FrameCaptured(time.Now())
		cam.Reconnect(stats.ReconnectEOS)
		m.Published(id, testFrame(id, 1), time.Now(), time.Now())
		m.Camera(id).Validate.Observe(1e-5)
	}
	series := func(id string) int {
		mfs, err := m.Registry().Gather()
		require.NoError(t, err)
		n := 0
		for _, mf := range mfs {
			for _, s := range mf.GetMetric() {
				for _, lp := range s.GetLabel() {
					if lp.GetName() == "camera_id" && lp.GetValue() == id {
						n++
					}
				}
			}
		}
		return n
	}
	require.Positive(t, series("cam-1"))
	before2 := series("cam-2")

	require.True(t, src.reg.Remove("cam-1"))
	assert.Zero(t, series("cam-1"), "no series of the removed camera")
	assert.Nil(t, m.Camera("cam-1"))
	assert.Equal(t, before2, series("cam-2"), "the other camera keeps its series")
	m.Published("cam-1", testFrame("cam-1", 2), time.Now(), time.Now()) // a late result adds nothing
	assert.Zero(t, series("cam-1"))
	assert.False(t, src.reg.Remove("cam-1"), "removed once")
}

// A rejected reload sets rtsp_config_last_reload_successful to 0 until a
// reload that is not rejected; each is counted by result.
func TestReloadedMetrics(t *testing.T) {
	m := NewMetrics(fakeSource{reg: newRegistry()}, nil, BuildInfo{})
	ok := func() float64 { return gatherValue(t, m, "rtsp_config_last_reload_successful", nil) }
	count := func(r string) float64 {
		return gatherValue(t, m, "rtsp_config_reloads_total", map[string]string{"result": r})
	}
	assert.Equal(t, 1.0, ok(), "the configuration loaded at start")
	start := gatherValue(t, m, "rtsp_config_last_reload_success_timestamp_seconds", nil)
	assert.Positive(t, start)
	m.Reloaded(ReloadInvalid)
	assert.Equal(t, 0.0, ok())
	m.Reloaded(ReloadInvalid)
	assert.Equal(t, 2.0, count(ReloadInvalid))
	m.Reloaded(ReloadUnchanged)
	assert.Equal(t, 1.0, ok(), "a valid file, even unchanged, ends the rejection")
	assert.Equal(t, 1.0, count(ReloadUnchanged))
	assert.Equal(t, 0.0, count(ReloadApplied))
	assert.GreaterOrEqual(t, gatherValue(t, m, "rtsp_config_last_reload_success_timestamp_seconds", nil), start)
}

func TestLatencyBuckets(t *testing.T) {
	src := fakeSource{reg: newRegistry("cam-1")}
	m := NewMetrics(src, []string{"cam-1"}, BuildInfo{})
	_, _, _, ok := m.LatencyBuckets("nope")
	assert.False(t, ok, "an unknown camera")
	o := m.Camera("cam-1")
	for _, v := range []float64{0.0005, 0.003, 0.003, 100} {
		o.Latency.Observe(v)
	}
	bounds, cum, total, ok := m.LatencyBuckets("cam-1")
	require.True(t, ok)
	require.Len(t, cum, len(bounds))
	assert.Equal(t, uint64(4), total, "the +Inf bucket counts the 100 s one")
	assert.Equal(t, 0.001, bounds[0])
	assert.Equal(t, uint64(1), cum[0], "0.5 ms is under 1 ms")
	assert.Equal(t, uint64(3), cum[2], "3 ms is under 4 ms")
	assert.Equal(t, uint64(3), cum[len(cum)-1], "100 s is past the last bound")
}
