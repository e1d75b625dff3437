package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/client"
	"gstcapture/internal/testenv"
)

// jaegerBuildTimeout bounds building Jaeger the first time on a machine
// (about 10 minutes on 2 cores); the test's own -timeout bounds it further.
const jaegerBuildTimeout = 25 * time.Minute

// jaegerBinary returns the Jaeger v2 all-in-one binary, running
// scripts/jaeger.sh, which builds and caches it when missing. A missing
// backend fails the test: skipping would let a tracing regression pass.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	budget := jaegerBuildTimeout
	if dl, ok := t.Deadline(); ok {
		// Leave time for the test itself once the binary exists.
		budget = min(budget, time.Until(dl)-3*time.Minute)
	}
	hint := "build it once with `scripts/jaeger.sh` (about 10 minutes on 2 cores; it caches the binary under " +
		"~/.cache/gstcapture), then rerun; or give `go test` a -timeout of 30m or more (`make e2e` does)"
	if budget <= 0 {
		t.Fatalf("no time left to get Jaeger (the trace backend of this test): %s", hint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	script := filepath.Join(repoRoot(t), "scripts", "jaeger.sh")
	cmd := exec.CommandContext(ctx, script)
	// The script's `go build` must die with it on timeout, or it would keep
	// the build lock and the CPU.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	// Building prints progress; show it as it happens (a first build is long).
	cmd.Stderr = io.MultiWriter(&stderr, os.Stderr)
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("Jaeger (the trace backend of this test) is not built and %s could not build it within %s:\n%s\n%s",
			script, budget.Round(time.Second), tail(stderr.String(), 2000), hint)
	}
	if err != nil {
		t.Fatalf("Jaeger (the trace backend of this test): %s failed: %v\n%s\n%s", script, err, tail(stderr.String(), 2000), hint)
	}
	bin := strings.TrimSpace(stdout.String())
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("Jaeger: %s printed %q, which is not an executable (%v); %s", script, bin, err, hint)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Logf("built Jaeger in %s: %s", d.Round(time.Second), bin)
	}
	return bin
}

// jaegerConfig runs Jaeger v2 (an OpenTelemetry Collector distribution)
// with in-memory storage, an OTLP/HTTP receiver and the query API, each on
// the given loopback ports. With no --config it would take the fixed ports
// 4317, 4318 and 16686, which parallel runs and developers' own Jaegers
// collide on; its own metrics (8888) and self-tracing are turned off for the
// same reason.
const jaegerConfig = `
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:%d
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// jaegerProc is a running Jaeger.
type jaegerProc struct {
	*proc
	OTLP  string // OTLP/HTTP base URL, for OTEL_EXPORTER_OTLP_ENDPOINT
	Query string // base URL of the query API (and UI)
}

// distinctFreePorts returns n different free loopback ports.
func distinctFreePorts(t *testing.T, n int) []int {
	seen := map[int]bool{}
	var out []int
	for len(out) < n {
		if p := testenv.FreePort(t); !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// startJaeger runs Jaeger on free ports and waits until it accepts OTLP and
// answers queries. A port taken between FreePort and Jaeger binding it makes
// Jaeger exit; then it retries on new ports.
func startJaeger(t *testing.T) *jaegerProc {
	t.Helper()
	bin := jaegerBinary(t)
	dir := t.TempDir()
	var failures []string
	for attempt := range 3 {
		ports := distinctFreePorts(t, 3)
		query, grpc, otlp := ports[0], ports[1], ports[2]
		cfg := writeFile(t, dir, fmt.Sprintf("jaeger-%d.yaml", attempt), fmt.Sprintf(jaegerConfig, query, grpc, otlp))
		j := &jaegerProc{
			proc:  start(t, nil, bin, "--config", cfg),
			OTLP:  fmt.Sprintf("http://127.0.0.1:%d", otlp),
			Query: fmt.Sprintf("http://127.0.0.1:%d", query),
		}
		err := j.waitReady(otlp, 60*time.Second)
		if err == nil {
			return j
		}
		failures = append(failures, fmt.Sprintf("attempt %d: %v\n%s", attempt+1, err, tail(j.Output(), 3000)))
		j.Stop(5 * time.Second)
	}
	t.Fatalf("Jaeger did not start with config %s:\n%s", dir, strings.Join(failures, "\n"))
	return nil
}

func (j *jaegerProc) waitReady(otlpPort int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-j.done:
			return fmt.Errorf("jaeger exited: %v", j.err)
		default:
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", otlpPort), time.Second); err == nil {
			c.Close()
			if resp, err := http.Get(j.Query + "/api/services"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s", timeout)
}

// getJSON GETs a query API path; it returns the status code and decodes a
// 200 body into v (numbers as json.Number, so int64 tags stay exact).
func (j *jaegerProc) getJSON(path string, v any) (int, error) {
	resp, err := http.Get(j.Query + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: %s: %s", path, resp.Status, tail(string(body), 500))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	return resp.StatusCode, dec.Decode(v)
}

// The parts of Jaeger's query API (the JSON the UI reads) the test checks.
type jaegerTraces struct {
	Data []jaegerTrace `json:"data"`
}

type jaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []jaegerSpan             `json:"spans"`
	Processes map[string]jaegerProcess `json:"processes"`
}

type jaegerProcess struct {
	ServiceName string `json:"serviceName"`
}

type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

// tag returns the span's tag key as text ("" when absent).
func (s jaegerSpan) tag(key string) string {
	for _, kv := range s.Tags {
		if kv.Key == key {
			return fmt.Sprint(kv.Value)
		}
	}
	return ""
}

// parent returns the span id of the CHILD_OF reference ("" for a root).
func (s jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// normID makes ids comparable: Jaeger prints a trace id whose upper 64 bits
// are zero with 16 digits only.
func normID(id string, digits int) string {
	id = strings.ToLower(id)
	if len(id) < digits {
		id = strings.Repeat("0", digits-len(id)) + id
	}
	return id
}

var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$`)

// TestTracingReachesJaeger follows one frame from its Redis entry to its
// trace in a real Jaeger, the way an operator would: the entry's
// traceparent names the trace, and Jaeger's query API shows the frame's
// capture, validate, enqueue and publish spans with its camera and seq.
func TestTracingReachesJaeger(t *testing.T) {
	// Only the variables set below may steer the exporter (a developer's
	// shell may point OTEL_EXPORTER_OTLP_TRACES_ENDPOINT elsewhere, and it
	// would win over OTEL_EXPORTER_OTLP_ENDPOINT).
	for _, k := range []string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
		"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_SDK_DISABLED",
	} {
		t.Setenv(k, "") // restores the old value at cleanup
		require.NoError(t, os.Unsetenv(k))
	}
	const (
		camID   = "tracecam"
		service = "rtsp-capture-e2e"
	)
	j := startJaeger(t)
	rd := testenv.StartRedis(t)
	cam := startCamsim(t, camsimOpts{Cameras: 1, Codec: "h264", Size: "640x360", FPS: 25})
	svc := startService(t, svcConfig{
		Redis: rd.URL, MaxLen: 1000, Retention: "1h", SampleRatio: 1.0,
		FPS: 10, StallTimeout: "5s", Reconnect: reconnect{"500ms", "5s"},
		Cameras: []camCfg{{ID: camID, URL: cam.URL(1)}},
	}, "OTEL_EXPORTER_OTLP_ENDPOINT="+j.OTLP, "OTEL_SERVICE_NAME="+service)

	rc := openFrames(t, rd)
	ctx := ctxT(t, 3*time.Minute)

	// A frame published a little after start, so its spans are not the
	// first the exporter sends.
	var entry *client.Frame
	require.Eventually(t, func() bool {
		msgs, err := rc.XRevRangeN(ctx, "frames:"+camID, "+", "-", 1).Result()
		if err != nil || len(msgs) == 0 {
			return false
		}
		entry, err = client.Parse("frames:"+camID, msgs[0].ID, msgs[0].Values)
		return err == nil && entry.Seq >= 5
	}, 60*time.Second, 200*time.Millisecond, "no frames published; health: %+v", svc.health(t))

	tp := entry.TraceParent
	m := traceparentRE.FindStringSubmatch(tp)
	require.NotNil(t, m, "entry traceparent %q is not W3C 00-<trace id>-<span id>-<flags>", tp)
	traceID, captureSpanID, flags := m[1], m[2], m[3]
	assert.Equal(t, "01", flags, "sample_ratio 1.0: the sampled flag is set")
	seq := strconv.FormatUint(entry.Seq, 10)
	t.Logf("frame %s seq %s: traceparent %s", entry.FrameID, seq, tp)

	// Poll as a user would until the whole trace is there: capture,
	// validate and enqueue are exported together, publish a batch later.
	want := []string{"frame.capture", "frame.validate", "frame.enqueue", "frame.publish"}
	var tr jaegerTrace
	var lastErr error
	found := func() bool {
		var res jaegerTraces
		code, err := j.getJSON("/api/traces/"+traceID, &res)
		if code == http.StatusNotFound {
			lastErr = err
			return false // not stored yet
		}
		if err != nil {
			lastErr = err
			return false
		}
		if len(res.Data) != 1 {
			lastErr = fmt.Errorf("%d traces for id %s", len(res.Data), traceID)
			return false
		}
		tr = res.Data[0]
		names := map[string]bool{}
		for _, s := range tr.Spans {
			names[s.OperationName] = true
		}
		for _, n := range want {
			if !names[n] {
				lastErr = fmt.Errorf("trace has %d spans, %s missing so far", len(tr.Spans), n)
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(30 * time.Second)
	for !found() {
		if time.Now().After(deadline) {
			t.Fatalf("trace %s never complete in Jaeger's query API: %v\ngstcapture /metrics trace counters:\n%s",
				traceID, lastErr, strings.Join(lines(svc.metrics(t).Text, "rtsp_trace_spans"), "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}

	assert.Equal(t, traceID, normID(tr.TraceID, 32))
	assert.Len(t, tr.Spans, len(want), "one span per stage of one frame")
	byName := map[string]jaegerSpan{}
	for _, s := range tr.Spans {
		assert.NotContains(t, byName, s.OperationName, "duplicate span %s", s.OperationName)
		byName[s.OperationName] = s
		assert.Equal(t, camID, s.tag("camera_id"), "%s camera_id tag", s.OperationName)
		assert.Equal(t, seq, s.tag("seq"), "%s seq tag equals the entry's seq", s.OperationName)
		p, ok := tr.Processes[s.ProcessID]
		assert.True(t, ok, "%s has a process", s.OperationName)
		assert.Equal(t, service, p.ServiceName, "%s service name (OTEL_SERVICE_NAME)", s.OperationName)
	}
	capture := byName["frame.capture"]
	assert.Equal(t, captureSpanID, normID(capture.SpanID, 16), "the entry's traceparent names the capture span")
	assert.Empty(t, capture.parent(), "the capture span is the trace's root")
	for _, n := range want[1:] {
		s := byName[n]
		assert.Equal(t, normID(capture.SpanID, 16), normID(s.parent(), 16), "%s is a child of frame.capture", n)
	}

	// The service is listed, with the four operations, as the UI's search
	// form shows them.
	var services struct {
		Data []string `json:"data"`
	}
	_, err := j.getJSON("/api/services", &services)
	require.NoError(t, err)
	assert.Contains(t, services.Data, service)
	var ops struct {
		Data []string `json:"data"`
	}
	_, err = j.getJSON("/api/services/"+service+"/operations", &ops)
	require.NoError(t, err)
	assert.Subset(t, ops.Data, want)

	// gstcapture counted its exports, and none failed.
	metrics := svc.metrics(t)
	assert.Greater(t, metrics.mustValue(t, "rtsp_trace_spans_exported_total"), 0.0)
	assert.Zero(t, metrics.mustValue(t, "rtsp_trace_spans_dropped_total", "reason", "export_failed"))
}
