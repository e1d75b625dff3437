package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"gstcapture/internal/testenv"
)

// promServer is a real Prometheus run by a test, on a free port.
type promServer struct {
	*proc
	URL    string // http://127.0.0.1:<port>
	client *http.Client
}

// startPrometheus runs Prometheus from monitoring/prometheus.yml with only
// what a test must change rewritten: 1s scrape and evaluation intervals, the
// rule file's absolute path, and the targets (job name -> host:port; the
// job "prometheus" gets Prometheus' own address). It waits until /-/ready.
func startPrometheus(t testing.TB, targets map[string]string) *promServer {
	t.Helper()
	bin := lookTool(t, "prometheus")
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, promConfigPath))
	require.NoError(t, err)

	const attempts = 3 // another process may take the free port first
	for attempt := 1; ; attempt++ {
		port := testenv.FreePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		var cfg map[string]any
		require.NoError(t, yaml.Unmarshal(b, &cfg), "parse %s", promConfigPath)
		cfg["global"] = map[string]any{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
		cfg["rule_files"] = []string{filepath.Join(root, alertsPath)}
		jobs, _ := cfg["scrape_configs"].([]any)
		seen := map[string]bool{}
		for _, j := range jobs {
			job, _ := j.(map[string]any)
			name, _ := job["job_name"].(string)
			target, ok := targets[name]
			if name == "prometheus" {
				target, ok = addr, true
			}
			require.True(t, ok, "%s: job %q has no target in this test", promConfigPath, name)
			// The test's targets replace the compose stack's (DNS names
			// that do not resolve here).
			delete(job, "dns_sd_configs")
			job["static_configs"] = []any{map[string]any{"targets": []string{target}}}
			seen[name] = true
		}
		for name := range targets {
			require.True(t, seen[name], "%s has no scrape job %q", promConfigPath, name)
		}
		out, err := yaml.Marshal(cfg)
		require.NoError(t, err)
		dir := t.TempDir()
		file := writeFile(t, dir, "prometheus.yml", string(out))

		p := &promServer{URL: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second}}
		p.proc = start(t, nil, bin,
			"--config.file="+file,
			"--storage.tsdb.path="+filepath.Join(dir, "data"),
			"--web.listen-address="+addr,
			"--web.enable-lifecycle")
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if resp, err := p.client.Get(p.URL + "/-/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return p
				}
			}
			select {
			case <-p.done:
				deadline = time.Time{} // exited: stop waiting
			case <-time.After(100 * time.Millisecond):
			}
		}
		if attempt < attempts && strings.Contains(p.Output(), "address already in use") {
			continue
		}
		t.Fatalf("prometheus did not become ready on %s:\n%s", addr, tail(p.Output(), 4000))
	}
}

// promSample is one series of an instant query's result.
type promSample struct {
	Metric map[string]string
	Value  float64
}

// query runs an instant query. A PromQL error comes back as the error, with
// Prometheus' errorType and message.
func (p *promServer) query(expr string) ([]promSample, error) {
	resp, err := p.client.Get(p.URL + "/api/v1/query?" + url.Values{"query": {expr}}.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("HTTP %d, body %q: %w", resp.StatusCode, tail(string(body), 300), err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	parse := func(v [2]any) (float64, error) {
		s, _ := v[1].(string)
		return strconv.ParseFloat(s, 64)
	}
	switch r.Data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &vec); err != nil {
			return nil, err
		}
		out := make([]promSample, 0, len(vec))
		for _, s := range vec {
			f, err := parse(s.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, promSample{Metric: s.Metric, Value: f})
		}
		return out, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return nil, err
		}
		f, err := parse(v)
		return []promSample{{Value: f}}, err
	default:
		return nil, fmt.Errorf("unexpected result type %q", r.Data.ResultType)
	}
}

// byCamera runs expr and returns its value per camera_id (nil on error).
func (p *promServer) byCamera(expr string) map[string]float64 {
	res, err := p.query(expr)
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for _, s := range res {
		out[s.Metric["camera_id"]] = s.Value
	}
	return out
}

// getData fetches an API path and decodes its data field into v.
func (p *promServer) getData(path string, v any) error {
	resp, err := p.client.Get(p.URL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s: HTTP %d, body %q: %w", path, resp.StatusCode, tail(string(body), 300), err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s", path, r.Error)
	}
	return json.Unmarshal(r.Data, v)
}

// promAlert is an alert as /api/v1/alerts reports it.
type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"` // pending | firing
}

// alerts returns the pending and firing alerts (nil on error: the callers
// poll).
func (p *promServer) alerts() []promAlert {
	var d struct {
		Alerts []promAlert `json:"alerts"`
	}
	if p.getData("/api/v1/alerts", &d) != nil {
		return nil
	}
	return d.Alerts
}

// promRule is a rule as /api/v1/rules reports it.
type promRule struct {
	Name      string `json:"name"`
	Health    string `json:"health"` // unknown until first evaluated, then ok | err
	LastError string `json:"lastError"`
}

func (p *promServer) rules() ([]promRule, error) {
	var d struct {
		Groups []struct {
			Rules []promRule `json:"rules"`
		} `json:"groups"`
	}
	if err := p.getData("/api/v1/rules", &d); err != nil {
		return nil, err
	}
	var out []promRule
	for _, g := range d.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

// alertCameras returns the cameras for which alert name is active.
func alertCameras(alerts []promAlert, name string) map[string]string {
	out := map[string]string{}
	for _, a := range alerts {
		if a.Labels["alertname"] == name {
			out[a.Labels["camera_id"]] = a.State
		}
	}
	return out
}

// TestPrometheusScrapesGstcapture runs the monitoring stack for real:
// Prometheus, configured from monitoring/prometheus.yml and loading
// monitoring/alerts.yml, scrapes gstcapture capturing two simulated cameras
// into Redis. It checks the counters rise per camera, every dashboard query
// parses and returns data, every rule evaluates without error and none
// fires, and that stopping the simulator takes both cameras to
// rtsp_connection_status 0 (RTSPCameraDown pending) and restarting it on the
// same address brings them back to 1.
func TestPrometheusScrapesGstcapture(t *testing.T) {
	t0 := time.Now()
	since := func() string { return time.Since(t0).Round(100 * time.Millisecond).String() }
	cams := []string{"cam1", "cam2"}

	rd := testenv.StartRedis(t)
	sim := startCamsim(t, camsimOpts{Cameras: 2, Codec: "h264", Size: "640x360", FPS: 25})
	svc := startService(t, svcConfig{
		Redis: rd.URL, MaxLen: 1000, Retention: "1h",
		FPS: 10, StallTimeout: "2s", Reconnect: reconnect{"500ms", "2s"},
		Cameras: simCams(sim, 2),
	})
	prom := startPrometheus(t, map[string]string{"gstcapture": strings.TrimPrefix(svc.HTTP, "http://")})
	scrapeStart := time.Now()
	t.Logf("%s: prometheus %s scraping gstcapture %s", since(), prom.URL, svc.HTTP)

	// Captured frames rise for each camera, as seen through Prometheus.
	require.Eventually(t, func() bool {
		return len(prom.byCamera(`rtsp_frames_captured_total{job="gstcapture"} > 0`)) == len(cams)
	}, 45*time.Second, 250*time.Millisecond, "rtsp_frames_captured_total > 0 for %v", cams)
	first := prom.byCamera(`rtsp_frames_captured_total{job="gstcapture"}`)
	require.Eventually(t, func() bool {
		now := prom.byCamera(`rtsp_frames_captured_total{job="gstcapture"}`)
		for _, id := range cams {
			if now[id] <= first[id] {
				return false
			}
		}
		return true
	}, 20*time.Second, 250*time.Millisecond, "rtsp_frames_captured_total not rising from %v", first)
	t.Logf("%s: frames captured rising for %v", since(), cams)
	up, err := prom.query(`up{job="gstcapture"}`)
	require.NoError(t, err)
	require.Len(t, up, 1)
	require.Equal(t, 1.0, up[0].Value, "up{job=gstcapture}")

	// ~20 s of samples, so rate windows and histograms have data.
	time.Sleep(time.Until(scrapeStart.Add(20 * time.Second)))

	t.Run("dashboard queries", func(t *testing.T) {
		checkDashboardQueries(t, prom)
	})

	t.Run("alert rules evaluate", func(t *testing.T) {
		var rules ruleFile
		readYAML(t, alertsPath, &rules)
		want := 0
		for _, g := range rules.Groups {
			want += len(g.Rules)
		}
		assert.Eventually(t, func() bool {
			got, err := prom.rules()
			if err != nil || len(got) != want {
				return false
			}
			for _, r := range got {
				if r.Health == "unknown" {
					return false // not evaluated yet
				}
			}
			return true
		}, 15*time.Second, 250*time.Millisecond, "prometheus did not load and evaluate the %d rules of %s", want, alertsPath)
		got, err := prom.rules()
		require.NoError(t, err)
		require.Len(t, got, want, "rules loaded from %s", alertsPath)
		for _, r := range got {
			assert.Equal(t, "ok", r.Health, "rule %s: %s", r.Name, r.LastError)
		}
		// Healthy cameras: nothing fires (a pending alert could be the
		// start-up, logged for the record).
		for _, a := range prom.alerts() {
			assert.NotEqual(t, "firing", a.State, "alert firing while everything is healthy: %v", a.Labels)
			t.Logf("active alert at steady state: %s %v", a.State, a.Labels)
		}
	})

	// Camera simulator gone: both cameras go from 1 to 0 and RTSPCameraDown
	// is pending (it fires after 2m, longer than this test).
	st := prom.byCamera(`rtsp_connection_status{job="gstcapture"}`)
	require.Equal(t, map[string]float64{"cam1": 1, "cam2": 1}, st, "rtsp_connection_status while streaming")
	sim.Stop(5 * time.Second)
	t.Logf("%s: camsim stopped", since())
	require.Eventually(t, func() bool {
		st := prom.byCamera(`rtsp_connection_status{job="gstcapture"}`)
		return len(st) == len(cams) && st["cam1"] == 0 && st["cam2"] == 0
	}, 20*time.Second, 250*time.Millisecond, "rtsp_connection_status did not go to 0 after camsim stopped")
	t.Logf("%s: rtsp_connection_status 0 for %v", since(), cams)
	require.Eventually(t, func() bool {
		down := alertCameras(prom.alerts(), "RTSPCameraDown")
		return down["cam1"] == "pending" && down["cam2"] == "pending"
	}, 10*time.Second, 250*time.Millisecond, "RTSPCameraDown not pending for %v", cams)

	// Back on the same address: gstcapture reconnects (backoff max 2s).
	sim.Start()
	t.Logf("%s: camsim restarted on %s", since(), sim.Addr)
	require.Eventually(t, func() bool {
		st := prom.byCamera(`rtsp_connection_status{job="gstcapture"}`)
		return len(st) == len(cams) && st["cam1"] == 1 && st["cam2"] == 1
	}, 45*time.Second, 250*time.Millisecond, "rtsp_connection_status did not return to 1 after camsim restarted")
	t.Logf("%s: rtsp_connection_status back to 1 for %v", since(), cams)
	require.Eventually(t, func() bool {
		return len(alertCameras(prom.alerts(), "RTSPCameraDown")) == 0
	}, 10*time.Second, 250*time.Millisecond, "RTSPCameraDown still active after the cameras came back")
	recon := prom.byCamera(`sum by (camera_id) (rtsp_reconnects_total{job="gstcapture"})`)
	for _, id := range cams {
		assert.Positive(t, recon[id], "rtsp_reconnects_total for %s after the outage", id)
	}
	t.Logf("%s: reconnects per camera: %v", since(), recon)
}

// checkDashboardQueries runs every query of the dashboard, variables
// substituted as Grafana would for all cameras, and the camera_id
// variable's label_values query. A parse error fails at once; an empty
// result is retried for a while (the box is shared and slow), then fails.
func checkDashboardQueries(t *testing.T, prom *promServer) {
	d := loadDashboard(t)
	exprs := d.exprs()
	require.NotEmpty(t, exprs, "%s has no queries", dashboardPath)

	pending := map[int]dashExpr{}
	for i, e := range exprs {
		pending[i] = e
	}
	lastEmpty := map[int]string{}
	deadline := time.Now().Add(15 * time.Second)
	for len(pending) > 0 {
		keys := make([]int, 0, len(pending))
		for i := range pending {
			keys = append(keys, i)
		}
		sort.Ints(keys)
		for _, i := range keys {
			e := pending[i]
			q := substituteVars(e.Expr)
			res, err := prom.query(q)
			switch {
			case err != nil:
				t.Errorf("%s\n  sent: %s\n  error: %v", e, q, err)
				delete(pending, i)
			case len(res) > 0:
				delete(pending, i)
			default:
				lastEmpty[i] = q
			}
		}
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for i, e := range pending {
		t.Errorf("%s\n  sent: %s\n  result still empty after retrying for 15s", e, lastEmpty[i])
	}
	t.Logf("%d dashboard queries returned data", len(exprs)-len(pending))

	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := variableQuery(v.Query)
		m := labelValuesQuery.FindStringSubmatch(q)
		if !assert.NotNil(t, m, "variable %s: query %q is not label_values(metric, label)", v.Name, q) {
			continue
		}
		var values []string
		require.NoError(t, prom.getData("/api/v1/label/"+m[2]+"/values?"+url.Values{"match[]": {m[1]}}.Encode(), &values))
		assert.Subset(t, values, []string{"cam1", "cam2"}, "variable %s: %s", v.Name, q)
	}
}
