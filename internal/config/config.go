package config

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"gstcapture/internal/frame"
	"gstcapture/internal/validate"
)

// Config is the validated configuration. Only Load builds one.
//
// The structs are the schema: a field's koanf tag is its key, its Go type
// says how its value is decoded (decodeHook; validate.Action parses
// itself), and the tags beside it are its rules: range:"[lo,hi]" (a "(" or
// ")" excludes the bound, an empty hi is no upper bound), oneof:"a,b" and
// check:"<name>" (see checks), applied by one validation pass, and
// size:"..." for a byte count written with a unit (see sizesToBytes). The
// defaults are a Go value (defaults). A key is declared nowhere else.
type Config struct {
	HTTP     HTTP     `koanf:"http"`
	Redis    Redis    `koanf:"redis"`
	Health   Health   `koanf:"health"`
	Shutdown Shutdown `koanf:"shutdown"`
	Tracing  Tracing  `koanf:"tracing"`
	Log      Log      `koanf:"log"`
	Memory   Memory   `koanf:"memory"`
	Fleet    Fleet    `koanf:"fleet"`
	Shm      Shm      `koanf:"shm"`
	Defaults Settings `koanf:"defaults"`
	// Cameras are decoded one at a time over Defaults (see fileConfig).
	Cameras []Camera

	// File is the path Load read ("" for none). env and baseDir are where
	// it resolved ${VAR}, password_env and relative paths, so that
	// ParseCamera resolves an API camera's the same way.
	File    string
	env     map[string]string
	baseDir string
}

// HTTP is the health/metrics/API listener.
type HTTP struct {
	Listen string `koanf:"listen" check:"listen"`
	Auth   Auth   `koanf:"auth"`
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
	Mode       string  `koanf:"mode" oneof:"token,none"`   // AuthToken or AuthNone
	TokensFile string  `koanf:"tokens_file"`               // as written in the file (relative to the config's directory)
	Metrics    string  `koanf:"metrics" oneof:"open,read"` // MetricsOpen or ScopeRead: who may scrape /metrics
	Tokens     []Token // read from TokensFile; secrets
}

// Token is one API token and its scope. Value is a secret.
type Token struct {
	Scope string
	Value string
}

// Redis is where frames are published.
type Redis struct {
	URL string `koanf:"url" check:"redis_url"` // redis://, rediss:// or unix://; may hold a password, see Config.Secrets
	// Mode says what URL names: RedisSingle, one server (or a proxy), or
	// RedisCluster, the seed nodes of a Redis Cluster (more with
	// ?addr=host:port).
	Mode   string `koanf:"mode" oneof:"single,cluster"`
	Stream string `koanf:"stream" check:"stream"` // key template, "{camera_id}" is replaced, see publish.StreamKey
	// CamerasKey is the Redis hash of the cameras created through the
	// camera API (field: camera id, value: the entry as JSON).
	CamerasKey string `koanf:"cameras_key" check:"required"`
	// Retention is the history each camera's stream keeps; gstcapture
	// shortens it when it does not fit MemoryBudget.
	Retention time.Duration `koanf:"retention" range:"[100ms,1h]"`
	// MaxLen caps the entries of a stream besides Retention; 0 = no cap.
	MaxLen int64 `koanf:"maxlen" range:"[0,)"`
	// MemoryBudget bounds the memory of every stream together, in bytes;
	// 0 (auto) = a share of Redis's own maxmemory, read with INFO.
	MemoryBudget int64         `koanf:"memory_budget" size:"min=1MiB"`
	Batch        int           `koanf:"batch" range:"[1,1000]"`   // entries per pipelined round trip
	Timeout      time.Duration `koanf:"timeout" range:"[1ms,1m]"` // per round trip
}

// Redis.Mode's values.
const (
	RedisSingle  = "single"
	RedisCluster = "cluster"
)

// Fleet makes this process one replica of several that share the camera
// set through Redis, each camera captured by one of them (internal/fleet,
// docs/operations.md "Running a fleet").
type Fleet struct {
	Enabled bool `koanf:"enabled"`
	// ReplicaID names this replica in leases, entries and /api/v1/fleet;
	// "" = the host name (the pod name in Kubernetes).
	ReplicaID string `koanf:"replica_id" check:"replica_id"`
	// Lease is how long a camera's lease lasts unless renewed (every
	// Lease/3): about how long a crashed replica's cameras wait.
	Lease time.Duration `koanf:"lease" range:"[1s,5m]"`
	// MaxCameras caps the cameras this replica takes; 0 = no cap.
	MaxCameras int `koanf:"max_cameras" range:"[0,100000]"`
	// Key starts the names of the fleet's keys in Redis.
	Key string `koanf:"key" check:"required"`
}

// Shm is where cameras with delivery shm put their pixels
// (internal/shm, docs/redis-schema.md "Shared memory").
type Shm struct {
	// Dir holds the segment files: a tmpfs the consumers share
	// (compose ipc / a Kubernetes emptyDir of medium Memory).
	Dir string `koanf:"dir" check:"required"`
	// Group, when set, owns the segment files (a name or a number); they
	// are 0640, so its members may read them. "" = the process's group.
	Group string `koanf:"group"`
}

// Delivery's values: pixels in the Redis entry, or in shared memory.
const (
	DeliveryRedis = "redis"
	DeliveryShm   = "shm"
)

// Memory bounds the frames the process holds (docs/operations.md, "Sizing
// the process").
type Memory struct {
	// Budget is the bytes of frame memory and Go heap together: BudgetAuto
	// (a share of the container's memory limit, or no bound without one),
	// BudgetNone (no bound: each ring holds ring_size frames), or a size.
	Budget int64 `koanf:"budget" size:"none,min=64MiB"`
}

// Memory.Budget's two named values; a size is > 0.
const (
	BudgetAuto int64 = 0
	BudgetNone int64 = -1
)

// Health sets the readiness and liveness rules.
type Health struct {
	MinReady  int `koanf:"min_ready" range:"[0,)"`  // cameras streaming before /readyz is OK
	MaxFrozen int `koanf:"max_frozen" range:"[1,)"` // abandoned pipelines before /livez fails
}

// Tracing configures per-frame traces. Where they are exported is set by the
// standard OTEL_EXPORTER_OTLP_* / OTEL_SERVICE_NAME environment variables.
type Tracing struct {
	SampleRatio float64 `koanf:"sample_ratio" range:"[0,1]"`
	QueueSize   int     `koanf:"queue_size" range:"[1,1048576]"`
}

// Shutdown bounds the flush on SIGTERM.
type Shutdown struct {
	Timeout time.Duration `koanf:"timeout" range:"[1ms,10m]"`
}

// Log configures the structured logger.
type Log struct {
	Level  string `koanf:"level" oneof:"debug,info,warn,error"`
	Format string `koanf:"format" oneof:"json,text"`
}

// Settings are the per-camera capture settings. Config.Defaults holds the
// file's defaults section; Camera.Settings is the effective result after
// that camera's overrides.
type Settings struct {
	FPS    int          `koanf:"fps" range:"[1,120]"`
	Format frame.Format `koanf:"format"`
	// JPEGQuality is the JPEG encoder's quality with format JPEG; a camera
	// entry that sets it with another format is a configuration problem.
	JPEGQuality  int           `koanf:"jpeg_quality" range:"[1,100]"`
	Width        int           `koanf:"width" range:"[0,8192]"` // 0, 0 = the camera's own size
	Height       int           `koanf:"height" range:"[0,8192]"`
	Transport    string        `koanf:"transport" oneof:"tcp,udp,auto"`
	Latency      time.Duration `koanf:"latency" range:"[0s,10s]"`
	Reconnect    Reconnect     `koanf:"reconnect"`
	StallTimeout time.Duration `koanf:"stall_timeout" range:"[1s,10m]"`
	Decoder      string        `koanf:"decoder" oneof:"auto,gpu,cpu"`
	Converter    string        `koanf:"converter" oneof:"auto,videoconvert"`
	RingSize     int           `koanf:"ring_size" range:"[1,100000]"`
	// Delivery is where the pixels go: into the Redis entry's data field,
	// or into a segment under shm.dir that the entry names.
	Delivery string `koanf:"delivery" oneof:"redis,shm"`
	// ShmSlots is the frames a camera's shm segment holds: a reader has
	// until the writer laps it (ShmSlots frames later) to use a frame.
	ShmSlots int `koanf:"shm_slots" range:"[2,1024]"`
	// ConvertThreads and DecoderThreads: 0 lets GStreamer pick.
	ConvertThreads int `koanf:"convert_threads" range:"[0,256]"`
	DecoderThreads int `koanf:"decoder_threads" range:"[0,256]"`
	// MaxWidth and MaxHeight bound the frames a camera may deliver: one
	// above them puts the camera in state error instead of filling memory
	// (an 8192x4320 BGR frame is 106 MB).
	MaxWidth  int `koanf:"max_width" range:"[16,16384]"`
	MaxHeight int `koanf:"max_height" range:"[16,16384]"`
	// TLSCAFile is a PEM file of the certificate authorities an rtsps
	// camera's certificate is checked against instead of the system's
	// (a camera or NVR with a private CA); its path relative to the config
	// file's directory is resolved. "" = the system's trust store.
	TLSCAFile  string     `koanf:"tls_ca_file" check:"ca_file"`
	Validation Validation `koanf:"validation"`
}

// Reconnect is the backoff between pipeline rebuilds.
type Reconnect struct {
	Initial time.Duration `koanf:"initial" range:"(0s,5s]"`
	Max     time.Duration `koanf:"max" range:"[1ms,1h]"`
}

// Validation holds one rule per frame check; internal/validate owns what
// an action means and how it is spelled.
type Validation struct {
	Black   BlackCheck   `koanf:"black"`
	Uniform UniformCheck `koanf:"uniform"`
	Frozen  FrozenCheck  `koanf:"frozen"`
	Size    Check        `koanf:"size"`
	Corrupt Check        `koanf:"corrupt"`
}

// Check is a rule with only an action.
type Check struct {
	Action validate.Action `koanf:"action"`
}

// BlackCheck flags frames whose mean luma is at most MaxLuma (0-255).
type BlackCheck struct {
	Action  validate.Action `koanf:"action"`
	MaxLuma int             `koanf:"max_luma" range:"[0,255]"`
}

// UniformCheck flags frames whose luma standard deviation is at most MaxStddev.
type UniformCheck struct {
	Action    validate.Action `koanf:"action"`
	MaxStddev float64         `koanf:"max_stddev" range:"[0,128]"`
}

// FrozenCheck flags frames once the picture has not changed for After.
type FrozenCheck struct {
	Action validate.Action `koanf:"action"`
	After  time.Duration   `koanf:"after" range:"[1s,24h]"`
}

// CodecAuto makes the camera's codec come from its SDP, read on every
// connect, instead of from the configuration.
const CodecAuto = "auto"

// Camera is one configured camera with its effective settings.
type Camera struct {
	ID    string `koanf:"id" check:"camera_id"`
	Codec string `koanf:"codec" oneof:"h264,h265,auto" check:"required"`
	// Enabled false keeps the camera configured (listed in /health and the
	// API) without capturing it.
	Enabled  bool     `koanf:"enabled"`
	Settings Settings `koanf:",squash"` // defaults merged with this camera's overrides
	Source   string   // SourceFile or SourceAPI: where the camera is configured
	Location string   // URL without user-info: safe to log
	// User and Password come from the URL user-info, password_env or
	// password_file. Never log them; pass Password to Redact.
	User, Password string
	// urlVars are the ${VAR}s of the URL outside the host; their values are
	// secrets (Config.Secrets) and LocationWithVars writes them back.
	urlVars []urlVar
}

// Where a camera is configured (Camera.Source).
const (
	SourceFile = "file" // the configuration file's cameras list
	SourceAPI  = "api"  // PUT /api/v1/cameras/{id}, kept in Redis (redis.cameras_key)
)

// fileConfig is the shape of the configuration file: Config's sections,
// and the cameras as written, each decoded on its own over the defaults.
type fileConfig struct {
	Config  `koanf:",squash"`
	Cameras any `koanf:"cameras"`
}

// cameraEntry is one entry of the file's cameras list: a Camera and the
// keys its location and credentials are resolved from.
type cameraEntry struct {
	Camera       `koanf:",squash"`
	URL          string `koanf:"url" check:"required"`
	PasswordEnv  string `koanf:"password_env"`
	PasswordFile string `koanf:"password_file"`
}

// defaults is the built-in layer; the file and the environment are decoded
// over it, so a key they do not set keeps its value here.
func defaults() Config {
	return Config{
		HTTP: HTTP{Listen: ":8000", Auth: Auth{Mode: AuthToken, Metrics: MetricsOpen}},
		Redis: Redis{
			URL:        "redis://127.0.0.1:6379/0",
			Mode:       RedisSingle,
			Stream:     "frames:{camera_id}",
			CamerasKey: "gstcapture:cameras",
			Retention:  10 * time.Second,
			Batch:      16,
			Timeout:    2 * time.Second,
		},
		Health:   Health{MinReady: 1, MaxFrozen: 3},
		Shutdown: Shutdown{Timeout: 5 * time.Second},
		Tracing:  Tracing{SampleRatio: 1, QueueSize: 2048},
		Log:      Log{Level: "info", Format: "json"},
		Memory:   Memory{Budget: BudgetAuto},
		Fleet:    Fleet{Lease: 5 * time.Second, Key: "gstcapture:fleet"},
		Shm:      Shm{Dir: "/dev/shm"},
		Defaults: Settings{
			FPS:            10,
			Format:         frame.BGR,
			JPEGQuality:    85,
			Transport:      "tcp",
			Latency:        200 * time.Millisecond,
			Reconnect:      Reconnect{Initial: time.Second, Max: 30 * time.Second},
			StallTimeout:   5 * time.Second,
			Decoder:        "auto",
			Converter:      "auto",
			RingSize:       32,
			Delivery:       DeliveryRedis,
			ShmSlots:       8,
			ConvertThreads: 1,
			DecoderThreads: 1,
			MaxWidth:       4096,
			MaxHeight:      4096,
			Validation:     validationDefaults(validate.DefaultRules()),
		},
	}
}

// validationDefaults states validate's own defaults as settings: the
// thresholds are validate's facts, config only names them.
func validationDefaults(r validate.Rules) Validation {
	return Validation{
		Black:   BlackCheck{Action: r.Black.Action, MaxLuma: r.Black.MaxLuma},
		Uniform: UniformCheck{Action: r.Uniform.Action, MaxStddev: r.Uniform.MaxStddev},
		Frozen:  FrozenCheck{Action: r.Frozen.Action, After: r.Frozen.After},
		Size:    Check{Action: r.Size.Action},
		Corrupt: Check{Action: r.Corrupt.Action},
	}
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

// Secrets returns every secret the configuration holds (camera passwords,
// the values of ${VAR} in camera URLs outside the host, the Redis
// password), for Redact.
func (c *Config) Secrets() []string {
	out := CameraSecrets(c.Cameras)
	if pw := redisPassword(c.Redis.URL); pw != "" {
		out = append(out, pw)
	}
	for _, tok := range c.HTTP.Auth.Tokens {
		out = append(out, tok.Value)
	}
	return dedupe(out)
}

// CameraSecrets returns the secrets of cams (passwords, their Basic
// credentials, ${VAR} values outside the host), for Redact.
func CameraSecrets(cams []Camera) []string {
	var out []string
	for _, cam := range cams {
		if cam.Password != "" {
			// GST_DEBUG dumps of RTSP requests carry the Basic credentials
			// base64-encoded, so that form is a secret too.
			out = append(out, cam.Password, base64.StdEncoding.EncodeToString([]byte(cam.User+":"+cam.Password)))
		}
		values, _ := cam.urlVarSecrets()
		out = append(out, values...)
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
	r := &reader{fromEnv: map[string]string{}, failed: map[string]bool{}, baseDir: "."}
	if path != "" {
		if err := k.Load(file.Provider(path), yamlParser{}); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		r.baseDir = filepath.Dir(path)
	}
	if err := k.Load(confmap.Provider(r.envOverrides(env), "."), nil); err != nil {
		return nil, fmt.Errorf("config environment: %w", err)
	}
	r.lookup = func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}

	cfg := r.load(k)
	cfg.File, cfg.env, cfg.baseDir = path, env, r.baseDir
	if len(r.probs) > 0 {
		probs := r.probs
		probs.sort()
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
	known := Keys()
	sections := map[string]bool{}
	for _, k := range keysOf(reflect.TypeFor[fileConfig]()) {
		sections[k] = true
	}
	names := make([]string, 0)
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
		case !slices.Contains(known, key):
			msg := fmt.Sprintf("unknown setting %q", key)
			if s := suggest(key, known); s != "" {
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
	var out []string
	eachKey(reflect.ValueOf(Config{}), "", func(path string, f reflect.StructField, _ reflect.Value) bool {
		if !isSection(f.Type) {
			out = append(out, path)
		}
		return true
	})
	sort.Strings(out)
	return out
}

// CameraKeys are the keys only a camera entry has; any Settings key
// (defaults.*) may also appear there as an override.
var CameraKeys = func() []string {
	var out []string
	settings := keysOf(reflect.TypeFor[Settings]())
	for _, k := range keysOf(reflect.TypeFor[cameraEntry]()) {
		if !slices.Contains(settings, k) {
			out = append(out, k)
		}
	}
	return out
}()

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
