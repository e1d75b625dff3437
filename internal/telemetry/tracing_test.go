package telemetry

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"gstcapture/internal/frame"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// w3cTraceparent is version 00 of the W3C traceparent header: lowercase hex,
// a trace id and a parent id that are not all zeros, two flag digits.
var w3cTraceparent = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$`)

// recordingExporter keeps every span it is given, also after Shutdown
// (tracetest.InMemoryExporter forgets them on Shutdown).
type recordingExporter struct {
	mu    sync.Mutex
	spans []sdktrace.ReadOnlySpan
	err   error // returned by every ExportSpans when set
}

func (e *recordingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return e.err
	}
	e.spans = append(e.spans, spans...) // the processor reuses its slice
	return nil
}

func (e *recordingExporter) Shutdown(context.Context) error { return nil }

func (e *recordingExporter) Spans() []sdktrace.ReadOnlySpan {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]sdktrace.ReadOnlySpan(nil), e.spans...)
}

// stuckExporter never returns from ExportSpans until the test ends, like a
// collector that accepted the connection and then hung.
type stuckExporter struct {
	calls   chan struct{} // one value per ExportSpans call that started
	release chan struct{}
}

func newStuckExporter(t *testing.T) *stuckExporter {
	e := &stuckExporter{calls: make(chan struct{}, 1024), release: make(chan struct{})}
	t.Cleanup(func() { close(e.release) }) // let the export goroutine end
	return e
}

func (e *stuckExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	select {
	case e.calls <- struct{}{}:
	default:
	}
	<-e.release // deliberately ignores the context
	return nil
}

func (e *stuckExporter) Shutdown(context.Context) error { return nil }

// noOTLPEnv makes sure the environment does not add an OTLP exporter or
// rename the service behind the test's back.
func noOTLPEnv(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME"} {
		t.Setenv(k, "")
	}
}

func newTestTracer(t *testing.T, m *Metrics, opts TracingOptions) *Tracer {
	t.Helper()
	tr, err := NewTracer(context.Background(), m, opts, quiet)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = tr.Shutdown(ctx)
	})
	return tr
}

func testFrame(cam string, seq uint64) *frame.Frame {
	return &frame.Frame{
		CameraID: cam, Seq: seq, SinkTime: time.Now(), CaptureTime: time.Now(),
		CaptureSource: frame.SourceArrival, Width: 4, Height: 2, Format: frame.BGR,
		Data: make([]byte, 24),
	}
}

// captureFrame runs the span calls capture.onFrame and the publisher make
// for one frame that is validated, enqueued and published.
func captureFrame(tr *Tracer, f *frame.Frame) {
	span := tr.StartCapture(f)
	t0 := time.Now()
	t1 := t0.Add(10 * time.Microsecond)
	span.Child(tr, SpanValidate, t0, t1)
	t2 := t1.Add(time.Microsecond)
	span.Child(tr, SpanEnqueue, t1, t2)
	span.End("")
	tr.Published(f, t2, t2.Add(time.Millisecond))
}

func flush(t *testing.T, tr *Tracer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, tr.tp.ForceFlush(ctx))
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

func TestTraceparentFormat(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	tests := []struct {
		name  string
		flags trace.TraceFlags
		want  string
	}{
		{"sampled", trace.FlagsSampled, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"not sampled", 0, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
		{"random trace id", trace.FlagsRandom | trace.FlagsSampled, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: tt.flags})
			got := traceparent(sc)
			assert.Equal(t, tt.want, got)

			// Same bytes as OpenTelemetry's own propagator writes...
			carrier := propagation.MapCarrier{}
			propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier)
			assert.Equal(t, carrier.Get("traceparent"), got)

			// ...and it reads back to the same span context.
			back := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
				propagation.MapCarrier{"traceparent": got}))
			require.True(t, back.IsValid(), "propagator rejected %q", got)
			assert.True(t, back.IsRemote())
			assert.Equal(t, sc.TraceID(), back.TraceID())
			assert.Equal(t, sc.SpanID(), back.SpanID())
			assert.Equal(t, sc.TraceFlags(), back.TraceFlags())
		})
	}
	t.Run("invalid context", func(t *testing.T) {
		assert.Empty(t, traceparent(trace.SpanContext{}))
	})
}

func TestStartCaptureTraceparentRoundTrip(t *testing.T) {
	noOTLPEnv(t)
	exp := &recordingExporter{}
	tr := newTestTracer(t, nil, TracingOptions{SampleRatio: 1, Exporter: exp})
	require.True(t, tr.Exporting())

	f := testFrame("cam-1", 42)
	span := tr.StartCapture(f)
	span.End("")

	m := w3cTraceparent.FindStringSubmatch(f.TraceParent)
	require.NotNil(t, m, "traceparent %q is not W3C version 00", f.TraceParent)
	assert.NotEqual(t, "00000000000000000000000000000000", m[1], "all-zero trace id is invalid")
	assert.NotEqual(t, "0000000000000000", m[2], "all-zero parent id is invalid")
	assert.Equal(t, "01", m[3], "sample_ratio 1 sets the sampled flag")
	assert.Equal(t, hex.EncodeToString(f.Span.TraceID[:]), m[1], "frame.Span and traceparent agree")
	assert.Equal(t, hex.EncodeToString(f.Span.SpanID[:]), m[2])
	assert.True(t, f.Span.Valid)
	assert.Empty(t, f.TraceState, "the capture span is a root: no trace state")

	// A consumer extracting the entry's fields continues this very span.
	ctx := propagation.TraceContext{}.Extract(context.Background(),
		propagation.MapCarrier{"traceparent": f.TraceParent, "tracestate": f.TraceState})
	sc := trace.SpanContextFromContext(ctx)
	require.True(t, sc.IsValid())
	assert.Equal(t, trace.TraceID(f.Span.TraceID), sc.TraceID())
	assert.Equal(t, trace.SpanID(f.Span.SpanID), sc.SpanID())
	assert.True(t, sc.IsSampled())

	// Re-injecting gives the same header back.
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	assert.Equal(t, f.TraceParent, carrier.Get("traceparent"))

	flush(t, tr)
	spans := exp.Spans()
	require.Len(t, spans, 1)
	assert.Equal(t, sc.SpanID(), spans[0].SpanContext().SpanID(), "traceparent names the exported capture span")
}

func TestSpansReachExporter(t *testing.T) {
	noOTLPEnv(t)
	t.Setenv("OTEL_SERVICE_NAME", "capture-under-test")
	exp := &recordingExporter{}
	m := NewMetrics(fakeSource{reg: newRegistry()}, []string{"cam-1"}, BuildInfo{})
	tr := newTestTracer(t, m, TracingOptions{SampleRatio: 1, Exporter: exp})

	f := testFrame("cam-1", 7)
	captureFrame(tr, f)
	flush(t, tr)

	spans := exp.Spans()
	require.Len(t, spans, 4, "capture, validate, enqueue, publish")
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		require.NotContains(t, byName, s.Name(), "one span per stage")
		byName[s.Name()] = s
	}
	for _, n := range []string{SpanCapture, SpanValidate, SpanEnqueue, SpanPublish} {
		require.Contains(t, byName, n)
	}
	capture := byName[SpanCapture]
	assert.False(t, capture.Parent().IsValid(), "capture is the root span")
	assert.Equal(t, trace.SpanKindProducer, capture.SpanKind())
	assert.Equal(t, f.SinkTime, capture.StartTime(), "capture starts at the appsink time")
	assert.Equal(t, trace.SpanID(f.Span.SpanID), capture.SpanContext().SpanID())
	assert.Equal(t, trace.SpanKindClient, byName[SpanPublish].SpanKind())
	assert.Equal(t, "redis", attrs(byName[SpanPublish])["db.system"].AsString())

	for name, s := range byName {
		assert.Equal(t, capture.SpanContext().TraceID(), s.SpanContext().TraceID(), "%s is in the frame's trace", name)
		if name != SpanCapture {
			assert.Equal(t, capture.SpanContext().SpanID(), s.Parent().SpanID(), "%s is a child of %s", name, SpanCapture)
		}
		a := attrs(s)
		assert.Equal(t, "cam-1", a["camera_id"].AsString(), "%s camera_id", name)
		assert.Equal(t, int64(7), a["seq"].AsInt64(), "%s seq", name)
		assert.Equal(t, int64(24), a["size"].AsInt64(), "%s size", name)
		svc, ok := s.Resource().Set().Value("service.name")
		assert.True(t, ok)
		assert.Equal(t, "capture-under-test", svc.AsString(), "OTEL_SERVICE_NAME names the service")
	}
	assert.EqualValues(t, 4, gatherValue(t, m, "rtsp_trace_spans_exported_total", nil))
}

func TestDefaultServiceName(t *testing.T) {
	noOTLPEnv(t)
	exp := &recordingExporter{}
	tr := newTestTracer(t, nil, TracingOptions{SampleRatio: 1, Exporter: exp})
	tr.StartCapture(testFrame("cam-1", 1)).End("")
	flush(t, tr)
	spans := exp.Spans()
	require.Len(t, spans, 1)
	svc, _ := spans[0].Resource().Set().Value("service.name")
	assert.Equal(t, DefaultServiceName, svc.AsString())
}

func TestDroppedFrameSpan(t *testing.T) {
	noOTLPEnv(t)
	exp := &recordingExporter{}
	tr := newTestTracer(t, nil, TracingOptions{SampleRatio: 1, Exporter: exp})

	f := testFrame("cam-1", 3)
	span := tr.StartCapture(f)
	now := time.Now()
	span.Child(tr, SpanValidate, now, now.Add(time.Microsecond))
	span.End("black")
	flush(t, tr)

	spans := exp.Spans()
	require.Len(t, spans, 2, "capture and validate only: the frame never reached the ring")
	for _, s := range spans {
		if s.Name() == SpanCapture {
			assert.Equal(t, "black", attrs(s)["drop_reason"].AsString())
		}
	}
}

func TestSampleRatioZero(t *testing.T) {
	noOTLPEnv(t)
	exp := &recordingExporter{}
	m := NewMetrics(fakeSource{reg: newRegistry()}, []string{"cam-1"}, BuildInfo{})
	tr := newTestTracer(t, m, TracingOptions{SampleRatio: 0, Exporter: exp})

	f := testFrame("cam-1", 1)
	captureFrame(tr, f)
	flush(t, tr)

	mm := w3cTraceparent.FindStringSubmatch(f.TraceParent)
	require.NotNil(t, mm, "an unsampled frame still carries a W3C traceparent, got %q", f.TraceParent)
	assert.Equal(t, "00", mm[3], "not sampled")
	assert.True(t, f.Span.Valid)
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
		propagation.MapCarrier{"traceparent": f.TraceParent}))
	assert.True(t, sc.IsValid())
	assert.False(t, sc.IsSampled(), "a consumer's parent-based sampler will not sample either")

	assert.Empty(t, exp.Spans(), "nothing is exported at sample_ratio 0")
	assert.Zero(t, gatherValue(t, m, "rtsp_trace_spans_exported_total", nil))
	assert.Zero(t, gatherValue(t, m, "rtsp_trace_spans_dropped_total", map[string]string{"reason": "queue_full"}))
}

func TestNoExporterStillGivesContext(t *testing.T) {
	noOTLPEnv(t)
	tr := newTestTracer(t, nil, TracingOptions{SampleRatio: 1})
	assert.False(t, tr.Exporting(), "no exporter given and no OTLP endpoint in the environment")
	f := testFrame("cam-1", 1)
	captureFrame(tr, f)
	assert.Regexp(t, w3cTraceparent, f.TraceParent)
}

func TestNilTracerIsSafe(t *testing.T) {
	var tr *Tracer
	f := testFrame("cam-1", 1)
	assert.NotPanics(t, func() {
		captureFrame(tr, f)
		assert.NoError(t, tr.Shutdown(context.Background()))
	})
	assert.False(t, tr.Exporting())
	assert.Empty(t, f.TraceParent)
}

// TestProcessorNeverBlocks: with the exporter hung, ending spans (which
// happens on GStreamer streaming threads) must still return at once; what
// does not fit the queue is dropped and counted.
func TestProcessorNeverBlocks(t *testing.T) {
	noOTLPEnv(t)
	const queue, batch, frames = 64, 8, 5000
	exp := newStuckExporter(t)
	m := NewMetrics(fakeSource{reg: newRegistry()}, []string{"cam-1"}, BuildInfo{})
	tr, err := NewTracer(context.Background(), m, TracingOptions{SampleRatio: 1, QueueSize: queue, BatchSize: batch, Exporter: exp}, quiet)
	require.NoError(t, err)

	// Fill one batch so the export goroutine enters the stuck exporter.
	for i := range batch {
		tr.StartCapture(testFrame("cam-1", uint64(i))).End("")
	}
	select {
	case <-exp.calls:
	case <-time.After(10 * time.Second):
		t.Fatal("the processor never called the exporter")
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range frames {
			captureFrame(tr, testFrame("cam-1", uint64(batch+i))) // 4 spans per frame
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second): // a deadlock detector, not a speed bound
		t.Fatal("ending spans blocked behind a stuck exporter")
	}

	ended := uint64(4 * frames)
	dropped := m.spans.dropped.Load()
	assert.GreaterOrEqual(t, dropped, ended-queue, "everything beyond the queue is dropped")
	assert.LessOrEqual(t, dropped, ended)
	assert.Zero(t, m.spans.exported.Load(), "the stuck export never completed")
	assert.EqualValues(t, dropped, gatherValue(t, m, "rtsp_trace_spans_dropped_total", map[string]string{"reason": "queue_full"}))

	// Shutdown is bounded by its context even though the exporter is stuck.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = tr.Shutdown(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestExportFailuresCounted(t *testing.T) {
	noOTLPEnv(t)
	exp := &recordingExporter{err: errors.New("collector says no")}
	m := NewMetrics(fakeSource{reg: newRegistry()}, []string{"cam-1"}, BuildInfo{})
	tr := newTestTracer(t, m, TracingOptions{SampleRatio: 1, Exporter: exp})
	captureFrame(tr, testFrame("cam-1", 1))
	flush(t, tr)
	assert.EqualValues(t, 4, gatherValue(t, m, "rtsp_trace_spans_dropped_total", map[string]string{"reason": "export_failed"}))
	assert.Zero(t, gatherValue(t, m, "rtsp_trace_spans_exported_total", nil))
}

func TestShutdownFlushesQueue(t *testing.T) {
	noOTLPEnv(t)
	exp := &recordingExporter{}
	// A batch larger than what is queued: only Shutdown's drain exports it.
	tr, err := NewTracer(context.Background(), nil, TracingOptions{SampleRatio: 1, BatchSize: 1000, Exporter: exp}, quiet)
	require.NoError(t, err)
	for i := range 10 {
		captureFrame(tr, testFrame("cam-1", uint64(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, tr.Shutdown(ctx))
	assert.Len(t, exp.Spans(), 40)
}

// A frame a pass rule flagged carries the rules on its capture span.
func TestFlaggedFrameSpan(t *testing.T) {
	noOTLPEnv(t)
	exp := &recordingExporter{}
	tr := newTestTracer(t, nil, TracingOptions{SampleRatio: 1, Exporter: exp})

	span := tr.StartCapture(testFrame("cam-1", 4))
	span.Flag("black")
	span.End("")
	flush(t, tr)

	spans := exp.Spans()
	require.Len(t, spans, 1)
	assert.Equal(t, "black", attrs(spans[0])["flags"].AsString())
}

// heldExporter blocks every export until released, then records spans.
type heldExporter struct {
	recordingExporter
	released chan struct{}
}

func (e *heldExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	<-e.released
	return e.recordingExporter.ExportSpans(ctx, spans)
}

// Every span ended is exported or counted dropped, across an export that
// hung for a while: the SDK's batch processor behind the gate drops none
// uncounted, and the gate admits spans again once the export returns.
func TestSpanAccountingBalances(t *testing.T) {
	noOTLPEnv(t)
	const queue, batch, frames = 32, 4, 500
	exp := &heldExporter{released: make(chan struct{})}
	m := NewMetrics(fakeSource{reg: newRegistry()}, []string{"cam-1"}, BuildInfo{})
	tr, err := NewTracer(context.Background(), m, TracingOptions{SampleRatio: 1, QueueSize: queue, BatchSize: batch, Exporter: exp}, quiet)
	require.NoError(t, err)

	for i := range frames {
		captureFrame(tr, testFrame("cam-1", uint64(i))) // 4 spans per frame
		if i == frames/2 {
			close(exp.released)
			flush(t, tr) // the gate is empty again
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, tr.Shutdown(ctx))

	exported, dropped := m.spans.exported.Load(), m.spans.dropped.Load()
	assert.NotZero(t, dropped, "the held export made the queue overflow")
	assert.Greater(t, exported, uint64(queue), "spans ended after the release were admitted and exported")
	assert.Equal(t, uint64(4*frames), exported+dropped, "exported %d + dropped %d", exported, dropped)
	assert.Len(t, exp.Spans(), int(exported))
}
