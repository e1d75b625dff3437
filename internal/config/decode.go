package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gstcapture/internal/frame"
)

// reader turns the merged koanf map into a Config, collecting every problem
// instead of stopping at the first. The checks live next to the decoding of
// each key so that a problem always carries the path the user wrote.
type reader struct {
	probs   Problems
	fromEnv map[string]string // config path -> environment variable that set it
	baseDir string            // the config file's directory: relative paths start there
}

func (r *reader) add(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if name, ok := r.fromEnv[path]; ok {
		msg += " (set by " + name + ")"
	}
	r.probs = append(r.probs, Problem{Path: path, Msg: msg})
}

func join(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

var (
	topKeys        = []string{"http", "redis", "health", "shutdown", "tracing", "log", "memory", "defaults", "cameras"}
	settingsKeys   = []string{"fps", "format", "width", "height", "transport", "latency", "reconnect", "stall_timeout", "decoder", "converter", "ring_size", "convert_threads", "decoder_threads", "max_width", "max_height", "tls_ca_file", "validation"}
	validationKeys = []string{"black", "uniform", "frozen", "size", "corrupt"}
	cameraIDRe     = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	envNameRe      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (r *reader) config(m map[string]any, lookup func(string) (string, bool), baseDir string) *Config {
	r.baseDir = baseDir
	cfg := &Config{}
	r.keys("", m, topKeys...)

	if sec, ok := r.section(m, "", "http"); ok {
		r.keys("http", sec, "listen", "auth")
		if s, ok := r.strField(sec, "http", "listen"); ok {
			if err := checkListen(s); err != "" {
				r.add("http.listen", "%s", err)
			}
			cfg.HTTP.Listen = s
		}
		if auth, ok := r.section(sec, "http", "auth"); ok {
			r.keys("http.auth", auth, "mode", "tokens_file", "metrics")
			r.enumField(auth, "http.auth", "mode", &cfg.HTTP.Auth.Mode, []string{AuthToken, AuthNone})
			r.enumField(auth, "http.auth", "metrics", &cfg.HTTP.Auth.Metrics, []string{MetricsOpen, ScopeRead})
			if name, ok := r.strField(auth, "http.auth", "tokens_file"); ok && name != "" {
				cfg.HTTP.Auth.TokensFile = name
				toks, probs := readTokens(baseDir, name)
				for _, pr := range probs {
					r.add("http.auth.tokens_file", "%s", pr)
				}
				cfg.HTTP.Auth.Tokens = toks
			}
		}
	}

	if sec, ok := r.section(m, "", "redis"); ok {
		r.keys("redis", sec, "url", "stream", "retention", "maxlen", "memory_budget", "batch", "timeout")
		if s, ok := r.strField(sec, "redis", "url"); ok {
			if err := checkRedisURL(s); err != "" {
				r.add("redis.url", "%s", err)
			}
			cfg.Redis.URL = s
		}
		if s, ok := r.strField(sec, "redis", "stream"); ok {
			if strings.TrimSpace(s) == "" {
				r.add("redis.stream", "must not be empty (e.g. \"frames:{camera_id}\")")
			}
			cfg.Redis.Stream = s
		}
		var maxLen int
		r.intField(sec, "redis", "maxlen", &maxLen, between(0, noMax))
		cfg.Redis.MaxLen = int64(maxLen)
		r.durField(sec, "redis", "retention", &cfg.Redis.Retention, durBetween(100*time.Millisecond, time.Hour))
		if v, ok := sec["memory_budget"]; ok {
			n, err := parseBudget(v)
			if err != "" {
				r.add("redis.memory_budget", "%s", err)
			} else {
				cfg.Redis.MemoryBudget = n
			}
		}
		r.intField(sec, "redis", "batch", &cfg.Redis.Batch, between(1, 1000))
		r.durField(sec, "redis", "timeout", &cfg.Redis.Timeout, durBetween(time.Millisecond, time.Minute))
	}

	if sec, ok := r.section(m, "", "health"); ok {
		r.keys("health", sec, "min_ready", "max_frozen")
		r.intField(sec, "health", "min_ready", &cfg.Health.MinReady, between(0, noMax))
		r.intField(sec, "health", "max_frozen", &cfg.Health.MaxFrozen, between(1, noMax))
	}

	if sec, ok := r.section(m, "", "shutdown"); ok {
		r.keys("shutdown", sec, "timeout")
		r.durField(sec, "shutdown", "timeout", &cfg.Shutdown.Timeout, durBetween(time.Millisecond, 10*time.Minute))
	}

	if sec, ok := r.section(m, "", "tracing"); ok {
		r.keys("tracing", sec, "sample_ratio", "queue_size")
		r.floatField(sec, "tracing", "sample_ratio", &cfg.Tracing.SampleRatio, 0, 1)
		r.intField(sec, "tracing", "queue_size", &cfg.Tracing.QueueSize, between(1, 1<<20))
	}

	if sec, ok := r.section(m, "", "memory"); ok {
		r.keys("memory", sec, "budget")
		if v, ok := sec["budget"]; ok {
			n, err := parseProcessBudget(v)
			if err != "" {
				r.add("memory.budget", "%s", err)
			} else {
				cfg.Memory.Budget = n
			}
		}
	}

	if sec, ok := r.section(m, "", "log"); ok {
		r.keys("log", sec, "level", "format")
		r.enumField(sec, "log", "level", &cfg.Log.Level, LogLevels)
		r.enumField(sec, "log", "format", &cfg.Log.Format, LogFormats)
	}

	if sec, ok := r.section(m, "", "defaults"); ok {
		r.keys("defaults", sec, settingsKeys...)
		r.settings("defaults", sec, &cfg.Defaults)
		r.crossCheck("defaults", cfg.Defaults)
	}

	cfg.Cameras = r.cameras(m["cameras"], cfg.Defaults, lookup, baseDir)
	if n := len(cfg.Cameras); n > 0 && cfg.Health.MinReady > n {
		r.add("health.min_ready", "is %d but only %d cameras are configured", cfg.Health.MinReady, n)
	}
	return cfg
}

// settings decodes the settings keys present in m onto s, which already
// holds the values they override.
func (r *reader) settings(base string, m map[string]any, s *Settings) {
	r.intField(m, base, "fps", &s.FPS, between(1, 120))
	if str, ok := r.strField(m, base, "format"); ok {
		if f, err := frame.ParseFormat(str); err != nil {
			r.add(join(base, "format"), "%v", err)
		} else {
			s.Format = f
		}
	}
	r.intField(m, base, "width", &s.Width, between(0, 8192))
	r.intField(m, base, "height", &s.Height, between(0, 8192))
	r.enumField(m, base, "transport", &s.Transport, Transports)
	r.durField(m, base, "latency", &s.Latency, durBetween(0, 10*time.Second))
	if sec, ok := r.section(m, base, "reconnect"); ok {
		p := join(base, "reconnect")
		r.keys(p, sec, "initial", "max")
		r.durField(sec, p, "initial", &s.Reconnect.Initial, durPositiveMax(5*time.Second))
		r.durField(sec, p, "max", &s.Reconnect.Max, durBetween(time.Millisecond, time.Hour))
	}
	r.durField(m, base, "stall_timeout", &s.StallTimeout, durBetween(time.Second, 10*time.Minute))
	r.enumField(m, base, "decoder", &s.Decoder, Decoders)
	r.enumField(m, base, "converter", &s.Converter, Converters)
	r.intField(m, base, "ring_size", &s.RingSize, between(1, 100000))
	r.intField(m, base, "convert_threads", &s.ConvertThreads, between(0, 256))
	r.intField(m, base, "decoder_threads", &s.DecoderThreads, between(0, 256))
	r.intField(m, base, "max_width", &s.MaxWidth, between(16, 16384))
	r.intField(m, base, "max_height", &s.MaxHeight, between(16, 16384))
	if name, ok := r.strField(m, base, "tls_ca_file"); ok {
		s.TLSCAFile = ""
		if name != "" {
			path, err := readCAFile(r.baseDir, name)
			if err != "" {
				r.add(join(base, "tls_ca_file"), "%s", err)
			}
			s.TLSCAFile = path
		}
	}

	sec, ok := r.section(m, base, "validation")
	if !ok {
		return
	}
	vb := join(base, "validation")
	r.keys(vb, sec, validationKeys...)
	v := &s.Validation
	if c, ok := r.section(sec, vb, "black"); ok {
		p := join(vb, "black")
		r.keys(p, c, "action", "max_luma")
		r.enumField(c, p, "action", &v.Black.Action, Actions)
		r.intField(c, p, "max_luma", &v.Black.MaxLuma, between(0, 255))
	}
	if c, ok := r.section(sec, vb, "uniform"); ok {
		p := join(vb, "uniform")
		r.keys(p, c, "action", "max_stddev")
		r.enumField(c, p, "action", &v.Uniform.Action, Actions)
		r.floatField(c, p, "max_stddev", &v.Uniform.MaxStddev, 0, 128)
	}
	if c, ok := r.section(sec, vb, "frozen"); ok {
		p := join(vb, "frozen")
		r.keys(p, c, "action", "after")
		r.enumField(c, p, "action", &v.Frozen.Action, Actions)
		r.durField(c, p, "after", &v.Frozen.After, durBetween(time.Second, 24*time.Hour))
	}
	if c, ok := r.section(sec, vb, "size"); ok {
		p := join(vb, "size")
		r.keys(p, c, "action")
		r.enumField(c, p, "action", &v.Size.Action, Actions)
	}
	if c, ok := r.section(sec, vb, "corrupt"); ok {
		p := join(vb, "corrupt")
		r.keys(p, c, "action")
		r.enumField(c, p, "action", &v.Corrupt.Action, Actions)
	}
}

// crossCheck applies the rules that involve more than one key.
func (r *reader) crossCheck(base string, s Settings) {
	if (s.Width == 0) != (s.Height == 0) {
		r.add(join(base, "width"), "width %d and height %d: set both or neither (0 keeps the camera's size)", s.Width, s.Height)
	}
	if s.Reconnect.Max < s.Reconnect.Initial {
		r.add(join(base, "reconnect.max"), "must be >= reconnect.initial (%s), got %s", s.Reconnect.Initial, s.Reconnect.Max)
	}
}

func (r *reader) cameras(v any, defaults Settings, lookup func(string) (string, bool), baseDir string) []Camera {
	if v == nil {
		r.add("cameras", "no cameras configured; add at least one")
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		r.add("cameras", "must be a list of cameras, got %s", describe(v))
		return nil
	}
	if len(list) == 0 {
		r.add("cameras", "no cameras configured; add at least one")
		return nil
	}
	allowed := append(append([]string{}, CameraKeys...), settingsKeys...)
	firstByID := map[string]int{}
	out := make([]Camera, 0, len(list))
	for i, item := range list {
		base := fmt.Sprintf("cameras[%d]", i)
		m, ok := item.(map[string]any)
		if !ok {
			r.add(base, "must be a mapping with id, url and codec, got %s", describe(item))
			continue
		}
		r.keys(base, m, allowed...)
		cam := Camera{Settings: defaults}

		if id, ok := r.requiredStr(m, base, "id"); ok {
			switch prev, dup := firstByID[id]; {
			case !cameraIDRe.MatchString(id):
				r.add(join(base, "id"), "%q must be 1-64 characters of a-z A-Z 0-9 _ -", id)
			case dup:
				r.add(join(base, "id"), "duplicate id %q (also cameras[%d])", id, prev)
			default:
				firstByID[id] = i
			}
			cam.ID = id
		}
		if _, ok := m["codec"]; !ok {
			r.add(join(base, "codec"), "required: one of %s", strings.Join(Codecs, ", "))
		} else {
			r.enumField(m, base, "codec", &cam.Codec, Codecs)
		}
		r.credentials(base, m, &cam, lookup, baseDir)

		before := len(r.probs)
		r.settings(base, m, &cam.Settings)
		if len(r.probs) == before && hasAny(m, "width", "height", "reconnect") {
			r.crossCheck(base, cam.Settings)
		}
		out = append(out, cam)
	}
	return out
}

// credentials resolves the camera URL and password sources into Location,
// User and Password. No message here may quote the URL or a password.
func (r *reader) credentials(base string, m map[string]any, cam *Camera, lookup func(string) (string, bool), baseDir string) {
	pw, pwConfigured := r.passwordSource(base, m, lookup, baseDir)
	raw, ok := r.requiredStr(m, base, "url")
	if !ok {
		return
	}
	urlPath := join(base, "url")
	cu, missing, err := parseCameraURL(raw, lookup)
	for _, name := range missing {
		r.add(urlPath, "environment variable %s is not set (used as ${%s})", name, name)
	}
	if err != nil {
		r.add(urlPath, "%s", err)
	}
	if err != nil || len(missing) > 0 {
		return
	}
	cam.Location = cu.loc.String()
	cam.User, cam.Password, cam.urlVars = cu.user, cu.password, cu.vars
	switch {
	case !pwConfigured:
	case cu.hasPassword:
		r.add(urlPath, "has a password and password_env/password_file is also set; keep one")
	case cu.user == "":
		r.add(urlPath, "needs a user name to go with password_env/password_file (rtsp://USER@host/...)")
	default:
		cam.Password = pw
	}
}

// passwordSource reads password_env or password_file. configured reports
// whether either key is present, even when reading it failed.
func (r *reader) passwordSource(base string, m map[string]any, lookup func(string) (string, bool), baseDir string) (pw string, configured bool) {
	_, hasEnv := m["password_env"]
	_, hasFile := m["password_file"]
	switch {
	case hasEnv && hasFile:
		r.add(join(base, "password_env"), "set password_env or password_file, not both")
		return "", true
	case hasEnv:
		p := join(base, "password_env")
		name, ok := r.strField(m, base, "password_env")
		if !ok {
			return "", true
		}
		switch v, set := lookup(name); {
		case !envNameRe.MatchString(name):
			r.add(p, "%q is not an environment variable name", name)
		case !set:
			r.add(p, "environment variable %s is not set", name)
		case v == "":
			r.add(p, "environment variable %s is empty", name)
		default:
			return v, true
		}
		return "", true
	case hasFile:
		p := join(base, "password_file")
		name, ok := r.strField(m, base, "password_file")
		if !ok {
			return "", true
		}
		v, err := readPasswordFile(baseDir, name)
		switch {
		case err != nil:
			r.add(p, "cannot read: %v", err)
		case v == "":
			r.add(p, "%s is empty", name)
		default:
			return v, true
		}
		return "", true
	}
	return "", false
}

// keys reports every key of m not in allowed, with a spelling suggestion.
func (r *reader) keys(base string, m map[string]any, allowed ...string) {
	ok := make(map[string]bool, len(allowed))
	for _, k := range allowed {
		ok[k] = true
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if ok[k] {
			continue
		}
		msg := "unknown key"
		if s := suggest(k, allowed); s != "" {
			msg += " (did you mean " + s + "?)"
		}
		r.add(join(base, k), "%s", msg)
	}
}

func hasAny(m map[string]any, keys ...string) bool {
	for _, k := range keys {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// section returns m[key] as a mapping; absent is not a problem.
func (r *reader) section(m map[string]any, base, key string) (map[string]any, bool) {
	v, ok := m[key]
	if !ok {
		return nil, false
	}
	sec, ok := v.(map[string]any)
	if !ok {
		r.add(join(base, key), "must be a mapping, got %s", describe(v))
		return nil, false
	}
	return sec, true
}

func (r *reader) strField(m map[string]any, base, key string) (string, bool) {
	v, ok := m[key]
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		r.add(join(base, key), "must be a string, got %s", describe(v))
		return "", false
	}
	return s, true
}

func (r *reader) requiredStr(m map[string]any, base, key string) (string, bool) {
	if _, ok := m[key]; !ok {
		r.add(join(base, key), "required")
		return "", false
	}
	s, ok := r.strField(m, base, key)
	if ok && strings.TrimSpace(s) == "" {
		r.add(join(base, key), "required")
		return "", false
	}
	return s, ok
}

func (r *reader) enumField(m map[string]any, base, key string, dst *string, allowed []string) {
	s, ok := r.strField(m, base, key)
	if !ok {
		return
	}
	for _, a := range allowed {
		if s == a {
			*dst = s
			return
		}
	}
	r.add(join(base, key), "must be one of %s, got %s", strings.Join(allowed, ", "), describe(s))
}

// intCheck is an inclusive range; hi == noMax means no upper bound.
type intCheck struct{ lo, hi int }

const noMax = math.MaxInt32

func between(lo, hi int) intCheck { return intCheck{lo, hi} }

func (r *reader) intField(m map[string]any, base, key string, dst *int, c intCheck) {
	v, ok := m[key]
	if !ok {
		return
	}
	p := join(base, key)
	n, ok := toInt(v)
	if !ok {
		r.add(p, "must be an integer, got %s", describe(v))
		return
	}
	switch {
	case n >= c.lo && n <= c.hi:
		*dst = n
	case c.hi == noMax:
		r.add(p, "must be >= %d, got %d", c.lo, n)
	default:
		r.add(p, "must be between %d and %d, got %d", c.lo, c.hi, n)
	}
}

func (r *reader) floatField(m map[string]any, base, key string, dst *float64, lo, hi float64) {
	v, ok := m[key]
	if !ok {
		return
	}
	p := join(base, key)
	var f float64
	switch t := v.(type) {
	case float64:
		f = t
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(t), 64); err != nil {
			r.add(p, "must be a number, got %q", t)
			return
		}
	default:
		n, ok := toInt(v)
		if !ok {
			r.add(p, "must be a number, got %s", describe(v))
			return
		}
		f = float64(n)
	}
	if math.IsNaN(f) || f < lo || f > hi {
		r.add(p, "must be between %g and %g, got %g", lo, hi, f)
		return
	}
	*dst = f
}

type durCheck struct {
	lo, hi    time.Duration
	exclusive bool // lo itself is not allowed
}

func durBetween(lo, hi time.Duration) durCheck { return durCheck{lo: lo, hi: hi} }
func durPositiveMax(hi time.Duration) durCheck { return durCheck{hi: hi, exclusive: true} }

func (r *reader) durField(m map[string]any, base, key string, dst *time.Duration, c durCheck) {
	v, ok := m[key]
	if !ok {
		return
	}
	p := join(base, key)
	var d time.Duration
	switch t := v.(type) {
	case string:
		var err error
		if d, err = time.ParseDuration(strings.TrimSpace(t)); err != nil {
			r.add(p, "invalid duration %q (use a unit: 200ms, 5s, 1m)", t)
			return
		}
	default:
		// A bare number has no unit; only 0 is unambiguous.
		if n, ok := toInt(v); !ok || n != 0 {
			r.add(p, "invalid duration %s (use a unit: 200ms, 5s, 1m)", describe(v))
			return
		}
	}
	switch {
	case c.exclusive && (d <= c.lo || d > c.hi):
		r.add(p, "must be > %s and <= %s, got %s", c.lo, c.hi, d)
	case !c.exclusive && (d < c.lo || d > c.hi):
		r.add(p, "must be between %s and %s, got %s", c.lo, c.hi, d)
	default:
		*dst = d
	}
}

// toInt accepts YAML integers, integral floats, and decimal strings (the
// environment layer only has strings).
func toInt(v any) (int, bool) {
	switch t := v.(type) {
	case int:
		return t, true
	case int64:
		return int(t), true
	case uint64:
		if t > math.MaxInt64 {
			return 0, false
		}
		return int(t), true
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int(t), true
		}
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(t))
		return n, err == nil
	}
	return 0, false
}

// describe names a value for a message without dumping large structures.
// Strings lose any URL user-info: a camera written as a bare URL string
// must not put its password into the message.
func describe(v any) string {
	switch t := v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return strconv.Quote(Redact(t))
	case nil:
		return "nothing"
	default:
		return fmt.Sprintf("%v", t)
	}
}

// suggest returns the allowed name closest to s, if it is a plausible typo.
func suggest(s string, allowed []string) string {
	best, bestD := "", 3
	for _, a := range allowed {
		if d := editDistance(s, a); d < bestD && d <= len(a)/3+1 {
			best, bestD = a, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func checkListen(s string) string {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("must be host:port, e.g. \":8000\" or \"127.0.0.1:8000\", got %q", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("port must be a number 0-65535, got %q", port)
	}
	return ""
}

// checkRedisURL validates the scheme and shape without importing a client.
// Its messages never quote the URL, which may hold a password.
func checkRedisURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "cannot parse as a URL (redis://[user:password@]host:port/db, rediss://..., or unix:///path)"
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Hostname() == "" {
			return "has no host (redis://host:port/db)"
		}
		if db := strings.Trim(u.Path, "/"); db != "" {
			if _, err := strconv.Atoi(db); err != nil {
				return "database must be a number (redis://host:port/0)"
			}
		}
	case "unix":
		if u.Path == "" {
			return "has no socket path (unix:///run/redis.sock)"
		}
	default:
		return "scheme must be redis, rediss or unix"
	}
	return ""
}

func redisPassword(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return ""
	}
	pw, _ := u.User.Password()
	return pw
}
