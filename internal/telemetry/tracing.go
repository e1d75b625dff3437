package telemetry

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"gstcapture/internal/frame"
)

// DefaultServiceName is used when OTEL_SERVICE_NAME is unset.
const DefaultServiceName = "rtsp-capture"

// Span names: bounded, never containing frame ids.
const (
	SpanCapture  = "frame.capture"
	SpanValidate = "frame.validate"
	SpanEnqueue  = "frame.enqueue"
	SpanPublish  = "frame.publish"
)

// TracingOptions configure the tracer.
type TracingOptions struct {
	SampleRatio float64 // parent-based trace-id ratio, 0..1
	QueueSize   int     // spans buffered for export; more are dropped and counted
	BatchSize   int
	// Exporter overrides the OTLP exporter chosen from the environment (tests).
	Exporter sdktrace.SpanExporter
	Version  string // service.version
}

// Tracer makes one trace per frame. It always produces valid trace context
// (so every Redis entry carries a traceparent a consumer can continue), and
// exports only when an OTLP endpoint is configured.
type Tracer struct {
	tp        *sdktrace.TracerProvider
	tr        trace.Tracer
	exporting bool
}

// OTLPConfigured reports whether the standard OTLP environment variables
// name an endpoint.
func OTLPConfigured() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// NewTracer builds the tracer. With no exporter (none given and no
// OTEL_EXPORTER_OTLP_* endpoint) spans are created for their context only.
// The OTLP exporter speaks HTTP/protobuf (OTEL_EXPORTER_OTLP_PROTOCOL=grpc is
// not supported and is reported).
func NewTracer(ctx context.Context, m *Metrics, opts TracingOptions, log *slog.Logger) (*Tracer, error) {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 2048
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 256
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (WithFromEnv) win over
	// the defaults; the host name tells replicas apart.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName), attribute.String("service.version", opts.Version)),
		resource.WithFromEnv(), resource.WithHost(), resource.WithTelemetrySDK())
	if err != nil && res == nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(opts.SampleRatio))),
	}
	exp := opts.Exporter
	if exp == nil && OTLPConfigured() {
		for _, v := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
			if p := os.Getenv(v); p != "" && p != "http/protobuf" {
				log.Warn(v+" not supported, using http/protobuf", "protocol", p)
			}
		}
		exp, err = otlptracehttp.New(ctx)
		if err != nil {
			return nil, err
		}
	}
	t := &Tracer{}
	if exp != nil {
		counters := &spanCounters{}
		if m != nil {
			counters = m.spans
		}
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(newSpanProcessor(exp, opts.QueueSize, opts.BatchSize, counters, log)))
		t.exporting = true
	}
	t.tp = sdktrace.NewTracerProvider(tpOpts...)
	t.tr = t.tp.Tracer("gstcapture")
	return t, nil
}

// Exporting reports whether spans leave the process.
func (t *Tracer) Exporting() bool { return t != nil && t.exporting }

// Shutdown flushes queued spans within ctx.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// FrameSpan is the capture span of one frame while the appsink's Sink
// goroutine handles it. It keeps the frame's identity so that child spans ended after
// the frame was handed on (enqueue) need not read the frame again.
type FrameSpan struct {
	ctx      context.Context
	span     trace.Span
	cameraID string
	seq      uint64
	size     int
}

// StartCapture opens the frame's root span at its appsink time and stores
// its identity and W3C traceparent in f.
func (t *Tracer) StartCapture(f *frame.Frame) FrameSpan {
	if t == nil {
		return FrameSpan{}
	}
	ctx, span := t.tr.Start(context.Background(), SpanCapture,
		trace.WithTimestamp(f.SinkTime),
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("camera_id", f.CameraID),
			attribute.Int64("seq", int64(f.Seq)),
			attribute.Int("size", len(f.Data)),
			attribute.Int("width", f.Width),
			attribute.Int("height", f.Height),
			attribute.String("capture_source", string(f.CaptureSource)),
		))
	sc := span.SpanContext()
	f.Span = frame.SpanRef{TraceID: sc.TraceID(), SpanID: sc.SpanID(), Flags: byte(sc.TraceFlags()), Valid: sc.IsValid()}
	f.TraceParent = traceparent(sc)
	f.TraceState = sc.TraceState().String()
	return FrameSpan{ctx: ctx, span: span, cameraID: f.CameraID, seq: f.Seq, size: len(f.Data)}
}

// Child records a finished child span (validate, enqueue) of the capture.
// It reads nothing of the frame, which may be gone by then.
func (s FrameSpan) Child(t *Tracer, name string, start, end time.Time) {
	if t == nil || s.span == nil || !s.span.IsRecording() {
		return
	}
	_, c := t.tr.Start(s.ctx, name, trace.WithTimestamp(start), trace.WithAttributes(
		attribute.String("camera_id", s.cameraID), attribute.Int64("seq", int64(s.seq)), attribute.Int("size", s.size)))
	c.End(trace.WithTimestamp(end))
}

// Flag records on the capture span the validation rules (action pass) the
// frame failed, as its Redis flags field names them.
func (s FrameSpan) Flag(flags string) {
	if s.span == nil || !s.span.IsRecording() {
		return
	}
	s.span.SetAttributes(attribute.String("flags", flags))
}

// End closes the capture span, with the drop reason when the frame was not
// enqueued.
func (s FrameSpan) End(dropReason string) {
	if s.span == nil {
		return
	}
	if dropReason != "" {
		s.span.SetAttributes(attribute.String("drop_reason", dropReason))
	}
	s.span.End()
}

// Published records the publish span of f, a child of its capture span.
func (t *Tracer) Published(f *frame.Frame, start, end time.Time) {
	if t == nil || !f.Span.Valid || f.Span.Flags&byte(trace.FlagsSampled) == 0 {
		return
	}
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: f.Span.TraceID, SpanID: f.Span.SpanID, TraceFlags: trace.TraceFlags(f.Span.Flags),
	})
	ctx := trace.ContextWithSpanContext(context.Background(), parent)
	_, s := t.tr.Start(ctx, SpanPublish, trace.WithTimestamp(start), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("camera_id", f.CameraID), attribute.Int64("seq", int64(f.Seq)),
			attribute.Int("size", len(f.Data)), attribute.String("db.system", "redis")))
	s.End(trace.WithTimestamp(end))
}

func traceparent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	var b [55]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	copy(b[:3], "00-")
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	// Version 00 defines only the sampled and random bits; parsers reject others.
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))})
	return string(b[:])
}

// spanCounters counts what happened to finished spans.
type spanCounters struct {
	exported, dropped, failed atomic.Uint64
}

var (
	descSpansExported = prometheus.NewDesc("rtsp_trace_spans_exported_total", "Spans handed to the OTLP exporter successfully.", nil, nil)
	descSpansDropped  = prometheus.NewDesc("rtsp_trace_spans_dropped_total", "Spans dropped because the export queue was full or the export failed.", []string{"reason"}, nil)
)

func (c *spanCounters) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSpansExported
	ch <- descSpansDropped
}
func (c *spanCounters) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descSpansExported, prometheus.CounterValue, float64(c.exported.Load()))
	ch <- prometheus.MustNewConstMetric(descSpansDropped, prometheus.CounterValue, float64(c.dropped.Load()), "queue_full")
	ch <- prometheus.MustNewConstMetric(descSpansDropped, prometheus.CounterValue, float64(c.failed.Load()), "export_failed")
}

// Spans leave through the SDK's own BatchSpanProcessor (batching, export
// timeout, flush and the drain at Shutdown are its), wrapped so that we
// bound and count. The SDK counts the spans its full queue drops only in an
// unexported field, or, behind the experimental OTEL_GO_X_OBSERVABILITY
// flag, as an OTel metric on the global MeterProvider, which would take the
// OTel metric SDK and a Prometheus bridge to reach /metrics. So spanGate
// admits at most QueueSize spans not yet exported and counts the rest as
// queue_full; countingExporter counts exported and export_failed and lets
// the gate admit more once an export returns.

// spanGate is the span processor: it never blocks the span's caller (the
// frame path on the Sink goroutine), and the batch processor behind it never
// finds its own queue full.
type spanGate struct {
	sdktrace.SpanProcessor // the batch processor: OnStart, ForceFlush, Shutdown
	limit                  int64
	pending                *atomic.Int64 // admitted, export not yet returned
	counters               *spanCounters
}

func (g *spanGate) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return // the batch processor ignores these too
	}
	if g.pending.Add(1) > g.limit {
		g.pending.Add(-1)
		g.counters.dropped.Add(1)
		return
	}
	g.SpanProcessor.OnEnd(s)
}

// countingExporter counts each batch's outcome and logs when export starts
// and stops failing.
type countingExporter struct {
	sdktrace.SpanExporter
	pending  *atomic.Int64
	counters *spanCounters
	log      *slog.Logger
	failing  atomic.Bool
}

func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	n := uint64(len(spans))
	e.pending.Add(-int64(n))
	if err != nil {
		e.counters.failed.Add(n)
		if !e.failing.Swap(true) && e.log != nil {
			e.log.Warn("trace export failing; spans are dropped and counted", "error", err)
		}
		// Counted and logged here. Returned, the batch processor would hand
		// every failed batch to the global OTel error handler, which prints
		// each one to stderr, and ForceFlush would fail.
		return nil
	}
	e.counters.exported.Add(n)
	if e.failing.Swap(false) && e.log != nil {
		e.log.Info("trace export recovered")
	}
	return nil
}

const (
	exportInterval = time.Second
	exportTimeout  = 10 * time.Second
)

// newSpanProcessor returns the bounded, counting processor in front of exp.
func newSpanProcessor(exp sdktrace.SpanExporter, queue, batch int, counters *spanCounters, log *slog.Logger) sdktrace.SpanProcessor {
	pending := &atomic.Int64{}
	bsp := sdktrace.NewBatchSpanProcessor(
		&countingExporter{SpanExporter: exp, pending: pending, counters: counters, log: log},
		// Twice the gate's bound: spans fill at most half, the rest is room
		// for ForceFlush's markers, which go through the same queue.
		sdktrace.WithMaxQueueSize(2*queue),
		sdktrace.WithMaxExportBatchSize(batch),
		sdktrace.WithBatchTimeout(exportInterval),
		sdktrace.WithExportTimeout(exportTimeout),
	)
	return &spanGate{SpanProcessor: bsp, limit: int64(queue), pending: pending, counters: counters}
}
