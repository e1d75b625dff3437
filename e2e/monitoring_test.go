package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// The monitoring/ files: Prometheus configuration, alert rules and their
// promtool unit tests, the Grafana dashboard and its provisioning.
const (
	promConfigPath = "monitoring/prometheus.yml"
	alertsPath     = "monitoring/alerts.yml"
	alertsTestPath = "monitoring/alerts_test.yml"
	dashboardPath  = "monitoring/dashboards/rtsp-capture.json"
	grafanaDSPath  = "monitoring/grafana/provisioning/datasources/prometheus.yml"
	grafanaDBPath  = "monitoring/grafana/provisioning/dashboards/gstcapture.yml"

	cameraAlertGroup = "gstcapture-cameras" // alerts per camera_id; the others are per process
	fleetAlertGroup  = "gstcapture-fleet"   // alerts over every replica together: no instance to name
)

// lookTool finds a binary of the Debian prometheus package, failing (not
// skipping) with the way to install it.
func lookTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH: `make test` installs it (scripts/deps.sh; Debian package prometheus)", name)
	}
	return p
}

// TestAlertRulesPromtool checks the Prometheus configuration and the alert
// rules, and runs the rules' unit tests, with promtool.
func TestAlertRulesPromtool(t *testing.T) {
	promtool := lookTool(t, "promtool")
	root := repoRoot(t)
	for _, args := range [][]string{
		{"check", "config", promConfigPath},
		{"check", "rules", alertsPath},
		{"test", "rules", alertsTestPath},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
		t.Logf("promtool %s: ok", strings.Join(args, " "))
	}
}

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// ruleTestFile is the part of a promtool unit-test file the tests read.
type ruleTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readYAML(t testing.TB, rel string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, v), "parse %s", rel)
}

// TestAlertRulesEveryAlertTested holds every alert to the conventions: a
// severity label, summary and description, camera alerts naming the camera,
// and promtool cases where it fires and where it does not. It catches an
// alert added without tests, which promtool itself accepts.
func TestAlertRulesEveryAlertTested(t *testing.T) {
	var rules ruleFile
	readYAML(t, alertsPath, &rules)
	var tests ruleTestFile
	readYAML(t, alertsTestPath, &tests)
	assert.Equal(t, []string{filepath.Base(alertsPath)}, tests.RuleFiles, "%s must test %s", alertsTestPath, alertsPath)

	firing, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname]++
			} else {
				quiet[a.Alertname]++
			}
		}
	}

	defined := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			name := r.Alert
			assert.False(t, defined[name], "%s: alert %s defined twice", alertsPath, name)
			defined[name] = true
			assert.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], "%s: alert %s: labels.severity", alertsPath, name)
			// Camera alerts say which camera; process alerts which instance.
			who := "$labels.instance"
			switch g.Name {
			case cameraAlertGroup:
				who = "$labels.camera_id"
			case fleetAlertGroup:
				who = ""
			}
			for _, k := range []string{"summary", "description"} {
				assert.NotEmpty(t, r.Annotations[k], "%s: alert %s: annotations.%s", alertsPath, name, k)
				if who != "" {
					assert.Contains(t, r.Annotations[k], who, "%s: alert %s: annotations.%s must name %s", alertsPath, name, k, who)
				}
			}
			assert.Positive(t, firing[name], "%s: no case where alert %s fires (exp_alerts not empty)", alertsTestPath, name)
			assert.Positive(t, quiet[name], "%s: no case where alert %s must not fire (exp_alerts: [])", alertsTestPath, name)
		}
	}
	require.NotEmpty(t, defined, "%s defines no alert", alertsPath)
	for name := range firing {
		assert.True(t, defined[name], "%s tests alert %s, which %s does not define", alertsTestPath, name, alertsPath)
	}
	for name := range quiet {
		assert.True(t, defined[name], "%s tests alert %s, which %s does not define", alertsTestPath, name, alertsPath)
	}
	names := make([]string, 0, len(defined))
	for n := range defined {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("%d alerts, each tested firing and not firing: %s", len(names), strings.Join(names, ", "))
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *datasourceRef  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *datasourceRef           `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Instant    bool           `json:"instant"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

// dashExpr is one PromQL expression of the dashboard and where it is.
type dashExpr struct {
	Panel, RefID, Expr string
}

func (e dashExpr) String() string {
	return "panel " + strconv.Quote(e.Panel) + " target " + e.RefID + ": " + e.Expr
}

func loadDashboard(t testing.TB) dashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), dashboardPath))
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d), "parse %s", dashboardPath)
	return d
}

// allPanels flattens rows, collapsed or not.
func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func (d dashboard) exprs() []dashExpr {
	var out []dashExpr
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			out = append(out, dashExpr{Panel: p.Title, RefID: tg.RefID, Expr: tg.Expr})
		}
	}
	return out
}

// labelValuesQuery is the camera_id variable's query, e.g.
// label_values(rtsp_connection_status, camera_id).
var labelValuesQuery = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

// variableQuery returns the query text of a templating variable, which
// Grafana stores either as a string or as {"query": "..."}.
func variableQuery(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(raw, &o)
	return o.Query
}

// substituteVars replaces the dashboard's variables with what Grafana would
// send for "All cameras" over a short range.
func substituteVars(expr string) string {
	return strings.NewReplacer(
		"${camera_id}", ".*", "$camera_id", ".*",
		"${__rate_interval}", "30s", "$__rate_interval", "30s",
		"${__interval}", "5s", "$__interval", "5s",
		"${__range}", "60s", "$__range", "60s",
	).Replace(expr)
}

// perCameraSelector matches an rtsp_ metric name and its label matchers.
var perCameraSelector = regexp.MustCompile(`\b(rtsp_[a-z_]+)(\{[^}]*\})?`)

// TestDashboardDefinition checks the dashboard's structure without a
// Grafana: variables, datasources, layout, the metrics it must show, and
// that every per-camera selector honours $camera_id. TestPrometheusScrapes
// runs its queries against a real Prometheus.
func TestDashboardDefinition(t *testing.T) {
	d := loadDashboard(t)
	assert.NotEmpty(t, d.UID, "uid: provisioning and links need a stable one")
	assert.GreaterOrEqual(t, d.SchemaVersion, 39, "schemaVersion")

	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		switch v.Name {
		case "DS_PROMETHEUS":
			assert.Equal(t, "datasource", v.Type, "variable DS_PROMETHEUS type")
			assert.Equal(t, "prometheus", variableQuery(v.Query), "variable DS_PROMETHEUS lists Prometheus datasources")
		case "camera_id":
			q := variableQuery(v.Query)
			m := labelValuesQuery.FindStringSubmatch(q)
			if assert.NotNil(t, m, "variable camera_id: query %q is not label_values(metric, label)", q) {
				assert.Equal(t, "camera_id", m[2], "variable camera_id: label")
			}
			if assert.NotNil(t, v.Datasource, "variable camera_id: datasource") {
				assert.Equal(t, "${DS_PROMETHEUS}", v.Datasource.UID, "variable camera_id: datasource uid")
			}
		}
	}
	assert.True(t, vars["DS_PROMETHEUS"], "templating: a datasource variable DS_PROMETHEUS")
	assert.True(t, vars["camera_id"], "templating: a camera_id variable")

	ids := map[int]string{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range d.allPanels() {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panel %q: id %d already used by %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		assert.NotEmpty(t, p.Title, "panel id %d has no title", p.ID)
		g := p.GridPos
		assert.True(t, g.W > 0 && g.H > 0 && g.X >= 0 && g.X+g.W <= 24, "panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panel %q overlaps panel %q at x=%d y=%d", p.Title, other, x, y)
					x, y = g.X+g.W, g.Y+g.H // one report per pair is enough
					continue
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if assert.NotNil(t, p.Datasource, "panel %q: datasource", p.Title) {
			assert.Equal(t, "${DS_PROMETHEUS}", p.Datasource.UID, "panel %q: datasource uid", p.Title)
		}
		assert.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			assert.NotEmpty(t, tg.Expr, "panel %q target %s: empty expr", p.Title, tg.RefID)
			assert.False(t, refs[tg.RefID], "panel %q: refId %q twice", p.Title, tg.RefID)
			refs[tg.RefID] = true
			if tg.Datasource != nil {
				assert.Equal(t, "${DS_PROMETHEUS}", tg.Datasource.UID, "panel %q target %s: datasource uid", p.Title, tg.RefID)
			}
		}
	}

	exprs := d.exprs()
	all := make([]string, len(exprs))
	for i, e := range exprs {
		all[i] = e.Expr
		left := substituteVars(e.Expr)
		assert.NotContains(t, left, "$", "%s: a variable the dashboard does not define", e)
		for _, m := range perCameraSelector.FindAllStringSubmatch(e.Expr, -1) {
			name := m[1]
			if strings.HasPrefix(name, "rtsp_redis_publish_duration_seconds") || strings.HasPrefix(name, "rtsp_trace_spans_") {
				continue // not per camera
			}
			assert.Contains(t, m[2], `camera_id=~"$camera_id"`, "%s: %s ignores the camera selection", e, name)
		}
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{
		"rate(rtsp_frames_captured_total", "rate(rtsp_frames_published_total",
		"rtsp_frame_latency_seconds_bucket", "rtsp_frame_publish_latency_seconds_bucket",
		"rtsp_frames_dropped_total", "rtsp_reconnects_total", "rtsp_camera_state", "rtsp_ring_occupancy",
		"histogram_quantile(0.99, sum by (le) (rate(rtsp_redis_publish_duration_seconds_bucket",
		"rate(process_cpu_seconds_total", "process_resident_memory_bytes",
	} {
		assert.Contains(t, joined, want, "%s: no panel queries %s", dashboardPath, want)
	}
	t.Logf("%d panels, %d queries", len(ids), len(exprs))
}

// TestMonitoringProvisioning checks the Grafana provisioning files the
// compose stack mounts point at Prometheus and at the dashboards folder.
func TestMonitoringProvisioning(t *testing.T) {
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, Type, UID, URL, Access string
			IsDefault                    bool `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	readYAML(t, grafanaDSPath, &ds)
	assert.Equal(t, 1, ds.APIVersion, "%s: apiVersion", grafanaDSPath)
	require.Len(t, ds.Datasources, 1, "%s: datasources", grafanaDSPath)
	d := ds.Datasources[0]
	assert.Equal(t, "prometheus", d.Type)
	assert.Equal(t, "http://prometheus:9090", d.URL)
	assert.True(t, d.IsDefault, "%s: the DS_PROMETHEUS variable picks the default datasource", grafanaDSPath)

	var db struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Type string
			Options    struct{ Path string } `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, grafanaDBPath, &db)
	assert.Equal(t, 1, db.APIVersion, "%s: apiVersion", grafanaDBPath)
	require.Len(t, db.Providers, 1, "%s: providers", grafanaDBPath)
	assert.Equal(t, "file", db.Providers[0].Type)
	assert.NotEmpty(t, db.Providers[0].Options.Path, "%s: options.path", grafanaDBPath)

	var pc struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			DNSConfigs []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, promConfigPath, &pc)
	assert.Equal(t, []string{filepath.Base(alertsPath)}, pc.RuleFiles, "%s: rule_files", promConfigPath)
	// Every replica of the compose service gstcapture (--scale), through
	// Docker's DNS: one A record per container, port 8000 (http.listen).
	var targets []string
	for _, sc := range pc.ScrapeConfigs {
		if sc.JobName == "gstcapture" {
			for _, s := range sc.StaticConfigs {
				targets = append(targets, s.Targets...)
			}
			for _, d := range sc.DNSConfigs {
				assert.Equal(t, "A", d.Type, "%s: job gstcapture: dns_sd_configs type", promConfigPath)
				for _, n := range d.Names {
					targets = append(targets, fmt.Sprintf("%s:%d", n, d.Port))
				}
			}
		}
	}
	assert.Equal(t, []string{"gstcapture:8000"}, targets, "%s: job gstcapture targets", promConfigPath)
	_, err := os.Stat(filepath.Join(repoRoot(t), dashboardPath))
	assert.False(t, errors.Is(err, os.ErrNotExist), "%s missing", dashboardPath)
}
