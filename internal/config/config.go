package config

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"gstcapture/internal/frame"
)

// Config is the validated configuration. Only Load builds one.
type Config struct {
	HTTP     HTTP
	Redis    Redis
	Health   Health
	Shutdown Shutdown
	Tracing  Tracing
	Log      Log
	Memory   Memory
	Defaults Settings
	Cameras  []Camera
}

// HTTP is the health/metrics/API listener.
type HTTP struct {
	Listen string
	Auth   Auth
}

// Auth modes and scopes of http.auth.
const (
	AuthToken = "token" // bearer tokens from tokens_file (default)
	AuthNone  = "none"  // no authentication at all

	ScopeRead  = "read"  // view: /health, /api, snapshots
	ScopeAdmin = "admin" // change; implies read

	MetricsOpen = "open" // http.auth.metrics: /metrics needs no token
)

// Auth says who may use the HTTP API.
type Auth struct {
	Mode       string  // AuthToken or AuthNone
	TokensFile string  // as written in the file (relative to the config's directory)
	Metrics    string  // MetricsOpen (default) or ScopeRead: who may scrape /metrics
	Tokens     []Token // read from TokensFile; secrets
}

// Token is one API token and its scope. Value is a secret.
type Token struct {
	Scope string
	Value string
}

// Redis is where frames are published.
type Redis struct {
	URL    string // redis://, rediss:// or unix://; may hold a password, see Config.Secrets
	Stream string // key template, "{camera_id}" is replaced, see Camera.StreamKey
	// Retention is the history each camera's stream keeps; gstcapture
	// shortens it when it does not fit MemoryBudget.
	Retention time.Duration
	// MaxLen caps the entries of a stream besides Retention; 0 = no cap.
	MaxLen int64
	// MemoryBudget bounds the memory of every stream together, in bytes;
	// 0 (auto) = a share of Redis's own maxmemory, read with INFO.
	MemoryBudget int64
	Batch        int           // entries per pipelined round trip
	Timeout      time.Duration // per round trip
}

// Memory bounds the frames the process holds (docs/operations.md, "Sizing
// the process").
type Memory struct {
	// Budget is the bytes of frame memory and Go heap together: BudgetAuto
	// (a share of the container's memory limit, or no bound without one),
	// BudgetNone (no bound: each ring holds ring_size frames), or a size.
	Budget int64
}

// Memory.Budget's two named values; a size is > 0.
const (
	BudgetAuto int64 = 0
	BudgetNone int64 = -1
)

// Health sets the readiness and liveness rules.
type Health struct {
	MinReady  int // cameras streaming before /readyz is OK
	MaxFrozen int // abandoned pipelines before /livez fails
}

// Tracing configures per-frame traces. Where they are exported is set by the
// standard OTEL_EXPORTER_OTLP_* / OTEL_SERVICE_NAME environment variables.
type Tracing struct {
	SampleRatio float64
	QueueSize   int
}

// Shutdown bounds the flush on SIGTERM.
type Shutdown struct{ Timeout time.Duration }

// Log configures the structured logger.
type Log struct{ Level, Format string }

// Settings are the per-camera capture settings. Config.Defaults holds the
// file's defaults section; Camera.Settings is the effective result after
// that camera's overrides.
type Settings struct {
	FPS            int
	Format         frame.Format
	Width, Height  int // 0, 0 = the camera's own size
	Transport      string
	Latency        time.Duration
	Reconnect      Reconnect
	StallTimeout   time.Duration
	Decoder        string
	Converter      string
	RingSize       int
	ConvertThreads int
	DecoderThreads int
	// MaxWidth and MaxHeight bound the frames a camera may deliver: one
	// above them puts the camera in state error instead of filling memory
	// (an 8192x4320 BGR frame is 106 MB).
	MaxWidth, MaxHeight int
	// TLSCAFile is a PEM file of the certificate authorities an rtsps
	// camera's certificate is checked against instead of the system's
	// (a camera or NVR with a private CA); its path relative to the config
	// file's directory is resolved. "" = the system's trust store.
	TLSCAFile  string
	Validation Validation
}

// Reconnect is the backoff between pipeline rebuilds.
type Reconnect struct{ Initial, Max time.Duration }

// Validation holds one rule per frame check.
type Validation struct {
	Black   BlackCheck
	Uniform UniformCheck
	Frozen  FrozenCheck
	Size    Check
	Corrupt Check
}

// Check is a rule with only an action.
type Check struct{ Action string }

// BlackCheck flags frames whose mean luma is at most MaxLuma (0-255).
type BlackCheck struct {
	Action  string
	MaxLuma int
}

// UniformCheck flags frames whose luma standard deviation is at most MaxStddev.
type UniformCheck struct {
	Action    string
	MaxStddev float64
}

// FrozenCheck flags frames once the picture has not changed for After.
type FrozenCheck struct {
	Action string
	After  time.Duration
}

// CodecAuto makes the camera's codec come from its SDP, read on every
// connect, instead of from the configuration.
const CodecAuto = "auto"

// Validation actions.
const (
	ActionDrop = "drop" // count and do not publish
	ActionPass = "pass" // publish anyway; the failure is still counted in logs/metrics
	ActionOff  = "off"  // do not run the check
)

// Enumerations accepted by the schema, in the order messages list them.
var (
	Transports = []string{"tcp", "udp", "auto"}
	Decoders   = []string{"auto", "gpu", "cpu"}
	Converters = []string{"auto", "videoconvert"}
	Codecs     = []string{"h264", "h265", CodecAuto}
	Actions    = []string{ActionDrop, ActionPass, ActionOff}
	LogLevels  = []string{"debug", "info", "warn", "error"}
	LogFormats = []string{"json", "text"}
)

// Camera is one configured camera with its effective settings.
type Camera struct {
	ID       string
	Codec    string
	Settings Settings // defaults merged with this camera's overrides
	Location string   // URL without user-info: safe to log
	// User and Password come from the URL user-info, password_env or
	// password_file. Never log them; pass Password to Redact.
	User, Password string
	// urlVars are the ${VAR}s of the URL outside the host; their values are
	// secrets (Config.Secrets) and LocationWithVars writes them back.
	urlVars []urlVar
}

// LocationWithVars is Location with each ${VAR} value in its path, query
// or fragment written back as ${VAR}: safe to print, and a shell where the
// variables are set expands it to the same location.
func (c Camera) LocationWithVars() string {
	values, names := c.urlVarSecrets()
	if len(values) == 0 {
		return c.Location
	}
	type form struct{ text, name string }
	var forms []form
	for i, v := range values {
		for _, f := range encodedForms(v) {
			forms = append(forms, form{f, names[i]})
		}
	}
	sort.SliceStable(forms, func(a, b int) bool { return len(forms[a].text) > len(forms[b].text) })

	// One pass, so that a value found inside an inserted "${NAME}" is not
	// replaced again; the host is left as it is.
	head, tail := splitLocation(c.Location)
	var b strings.Builder
	b.WriteString(head)
next:
	for len(tail) > 0 {
		for _, f := range forms {
			if strings.HasPrefix(tail, f.text) {
				b.WriteString("${" + f.name + "}")
				tail = tail[len(f.text):]
				continue next
			}
		}
		b.WriteByte(tail[0])
		tail = tail[1:]
	}
	return b.String()
}

// urlVarSecrets returns the non-empty values of the URL's ${VAR}s with the
// name of each. A value is also listed percent-decoded: url.URL.String
// writes a path from its decoded form when other characters in it force
// re-encoding.
func (c Camera) urlVarSecrets() (values, names []string) {
	for _, v := range c.urlVars {
		if v.value == "" {
			continue
		}
		values, names = append(values, v.value), append(names, v.name)
		if d, err := url.PathUnescape(v.value); err == nil && d != v.value && d != "" {
			values, names = append(values, d), append(names, v.name)
		}
	}
	return values, names
}

// splitLocation cuts a URL without user-info before its path, query or
// fragment.
func splitLocation(loc string) (head, tail string) {
	_, rest, ok := strings.Cut(loc, "://")
	if !ok {
		return loc, ""
	}
	i := strings.IndexAny(rest, "/?#")
	if i < 0 {
		return loc, ""
	}
	n := len(loc) - len(rest) + i
	return loc[:n], loc[n:]
}

// StreamKey expands a stream template such as "frames:{camera_id}".
func (c Camera) StreamKey(template string) string {
	return strings.ReplaceAll(template, "{camera_id}", c.ID)
}

// Secrets returns every secret the configuration holds (camera passwords,
// the values of ${VAR} in camera URLs outside the host, the Redis
// password), for Redact.
func (c *Config) Secrets() []string {
	var out []string
	for _, cam := range c.Cameras {
		if cam.Password != "" {
			// GST_DEBUG dumps of RTSP requests carry the Basic credentials
			// base64-encoded, so that form is a secret too.
			out = append(out, cam.Password, base64.StdEncoding.EncodeToString([]byte(cam.User+":"+cam.Password)))
		}
		values, _ := cam.urlVarSecrets()
		out = append(out, values...)
	}
	if pw := redisPassword(c.Redis.URL); pw != "" {
		out = append(out, pw)
	}
	for _, tok := range c.HTTP.Auth.Tokens {
		out = append(out, tok.Value)
	}
	return dedupe(out)
}

// EnvPrefix starts every environment override; "__" separates levels:
// GSTCAPTURE_DEFAULTS__STALL_TIMEOUT=3s sets defaults.stall_timeout.
const EnvPrefix = "GSTCAPTURE_"

// envIgnored are GSTCAPTURE_ variables that are not settings.
var envIgnored = map[string]bool{
	"GSTCAPTURE_CONFIG": true, // path of the file, read by the command
}

// aboutSettings reports whether a GSTCAPTURE_ variable is meant as a
// setting: its first word names a configuration section. Other variables
// with the prefix (GSTCAPTURE_SOAK, test hooks) belong to other tools and
// are left alone; GSTCAPTURE_REDIS_URL (one underscore) still counts, so
// the typo is reported.
func aboutSettings(name string, sections map[string]bool) bool {
	rest := strings.ToLower(strings.TrimPrefix(name, EnvPrefix))
	first, _, _ := strings.Cut(rest, "__")
	if sections[first] {
		return true
	}
	sec, _, found := strings.Cut(first, "_")
	return found && sections[sec]
}

// defaultMap is the built-in layer, in the file's own shape so that it goes
// through the same decoding and checks as the file.
func defaultMap() map[string]any {
	return map[string]any{
		"http": map[string]any{
			"listen": ":8000",
			"auth":   map[string]any{"mode": AuthToken, "tokens_file": "", "metrics": MetricsOpen},
		},
		"redis": map[string]any{
			"url":           "redis://127.0.0.1:6379/0",
			"stream":        "frames:{camera_id}",
			"retention":     "10s",
			"maxlen":        0,
			"memory_budget": "auto",
			"batch":         16,
			"timeout":       "2s",
		},
		"health":   map[string]any{"min_ready": 1, "max_frozen": 3},
		"shutdown": map[string]any{"timeout": "5s"},
		"tracing":  map[string]any{"sample_ratio": 1.0, "queue_size": 2048},
		"log":      map[string]any{"level": "info", "format": "json"},
		"memory":   map[string]any{"budget": "auto"},
		"defaults": map[string]any{
			"fps":             10,
			"format":          "BGR",
			"width":           0,
			"height":          0,
			"transport":       "tcp",
			"latency":         "200ms",
			"reconnect":       map[string]any{"initial": "1s", "max": "30s"},
			"stall_timeout":   "5s",
			"decoder":         "auto",
			"converter":       "auto",
			"ring_size":       32,
			"max_width":       4096,
			"max_height":      4096,
			"tls_ca_file":     "",
			"convert_threads": 1,
			"decoder_threads": 1,
			"validation": map[string]any{
				"black":   map[string]any{"action": ActionDrop, "max_luma": 16},
				"uniform": map[string]any{"action": ActionDrop, "max_stddev": 2.0},
				"frozen":  map[string]any{"action": ActionDrop, "after": "10s"},
				"size":    map[string]any{"action": ActionDrop},
				"corrupt": map[string]any{"action": ActionDrop},
			},
		},
	}
}

// Load reads the configuration: built-in defaults, then the YAML file at
// path (skipped when path is ""), then GSTCAPTURE_* overrides from environ
// (os.Environ() form; later entries win). environ is also where ${VAR},
// password_env and relative password_file paths are resolved
// (password_file relative to the file's directory).
//
// A missing file or a YAML syntax error is a plain error naming the file
// (and line). Anything else wrong is returned together as *Problems.
func Load(path string, environ []string) (*Config, error) {
	env := parseEnviron(environ)
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(defaultMap(), ""), nil); err != nil {
		return nil, fmt.Errorf("config defaults: %w", err)
	}
	baseDir := "."
	if path != "" {
		if err := k.Load(file.Provider(path), yamlParser{}); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		baseDir = filepath.Dir(path)
	}

	r := &reader{fromEnv: map[string]string{}}
	overrides := r.envOverrides(env)
	if err := k.Load(confmap.Provider(overrides, "."), nil); err != nil {
		return nil, fmt.Errorf("config environment: %w", err)
	}

	cfg := r.config(k.Raw(), func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}, baseDir)
	if len(r.probs) > 0 {
		probs := r.probs
		return nil, &probs
	}
	return cfg, nil
}

// parseEnviron turns KEY=VALUE entries into a map; later entries win, as
// with os/exec.
func parseEnviron(environ []string) map[string]string {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k != "" {
			env[k] = v
		}
	}
	return env
}

// envOverrides selects the GSTCAPTURE_ variables, checks each names a known
// setting, and returns them as a flat "section.key" map for koanf.
// An empty value counts as unset, so compose files can pass ${X:-} through.
func (r *reader) envOverrides(env map[string]string) map[string]any {
	known := map[string]bool{}
	flatten("", defaultMap(), known)

	names := make([]string, 0)
	sections := map[string]bool{}
	for k := range defaultMap() {
		sections[k] = true
	}
	sections["cameras"] = true
	for name := range env {
		if strings.HasPrefix(name, EnvPrefix) && !envIgnored[name] && aboutSettings(name, sections) {
			names = append(names, name)
		}
	}
	sort.Strings(names)

	out := map[string]any{}
	for _, name := range names {
		val := env[name]
		if val == "" {
			continue
		}
		key := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, EnvPrefix), "__", "."))
		switch {
		case key == "cameras" || strings.HasPrefix(key, "cameras."):
			r.probs = append(r.probs, Problem{name, "cameras can only be set in the file; per-camera overrides go there too"})
		case !known[key]:
			msg := fmt.Sprintf("unknown setting %q", key)
			if s := suggest(key, keysOf(known)); s != "" {
				msg += " (did you mean " + EnvName(s) + "?)"
			}
			r.probs = append(r.probs, Problem{name, msg})
		default:
			out[key] = val
			r.fromEnv[key] = name
		}
	}
	return out
}

// EnvName returns the environment variable that overrides a config path,
// e.g. "defaults.stall_timeout" -> "GSTCAPTURE_DEFAULTS__STALL_TIMEOUT".
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "__"))
}

// Keys returns every settable config path with a default (sorted), the set
// the environment may override. Camera-only keys are not in it.
func Keys() []string {
	known := map[string]bool{}
	flatten("", defaultMap(), known)
	return keysOf(known)
}

// CameraKeys are the keys only a camera entry has; any Settings key
// (defaults.*) may also appear there as an override.
var CameraKeys = []string{"id", "url", "codec", "password_env", "password_file"}

func flatten(prefix string, m map[string]any, out map[string]bool) {
	for k, v := range m {
		p := join(prefix, k)
		if sub, ok := v.(map[string]any); ok {
			flatten(p, sub, out)
			continue
		}
		out[p] = true
	}
}

func keysOf(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// yamlParser is koanf's YAML parser with null values removed, so that an
// empty section ("http:") keeps the defaults instead of erasing them.
type yamlParser struct{}

func (yamlParser) Unmarshal(b []byte) (map[string]any, error) {
	m, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		return nil, err
	}
	dropNulls(m)
	return m, nil
}

func (yamlParser) Marshal(m map[string]any) ([]byte, error) { return yaml.Parser().Marshal(m) }

func dropNulls(m map[string]any) {
	for k, v := range m {
		switch t := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			dropNulls(t)
		case []any:
			for _, item := range t {
				if sub, ok := item.(map[string]any); ok {
					dropNulls(sub)
				}
			}
		}
	}
}

// readPasswordFile reads a secret file, dropping trailing newlines.
func readPasswordFile(baseDir, name string) (string, error) {
	if !filepath.IsAbs(name) {
		name = filepath.Join(baseDir, name)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
