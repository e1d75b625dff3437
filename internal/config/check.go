package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// validate is the one validation pass over the decoded top level: the
// rules in the struct tags, then those that involve more than one key or
// read a file.
func (r *reader) validate(cfg *Config) {
	r.checkKeys(reflect.ValueOf(cfg).Elem(), "", nil)
	r.crossCheck("defaults", cfg.Defaults)
	if name := cfg.HTTP.Auth.TokensFile; name != "" {
		toks, probs := readTokens(r.baseDir, name)
		for _, pr := range probs {
			r.add("http.auth.tokens_file", "%s", pr)
		}
		cfg.HTTP.Auth.Tokens = toks
	}
}

// checkKeys applies the tag rules of every key of the struct v (addressable)
// at base. With set, only the paths in it are checked, and the keys whose
// check says they must be present.
func (r *reader) checkKeys(v reflect.Value, base string, set map[string]bool) {
	eachKey(v, base, func(path string, f reflect.StructField, fv reflect.Value) bool {
		if r.failed[path] {
			return false // already reported; it holds the value it had before
		}
		if set != nil && !set[path] && !mustBeSet[f.Tag.Get("check")] {
			return true
		}
		if msg := r.checkField(f, fv); msg != "" {
			r.add(path, "%s", msg)
		}
		return true
	})
}

func (r *reader) checkField(f reflect.StructField, fv reflect.Value) string {
	if spec, ok := f.Tag.Lookup("range"); ok {
		if msg := checkRange(spec, fv); msg != "" {
			return msg
		}
	}
	if name := f.Tag.Get("check"); name != "" {
		if msg := checks[name](r, f, fv); msg != "" {
			return msg
		}
	}
	if list, ok := f.Tag.Lookup("oneof"); ok {
		if allowed := strings.Split(list, ","); !slices.Contains(allowed, fv.String()) {
			return fmt.Sprintf("must be one of %s, got %s", strings.Join(allowed, ", "), describe(fv.String()))
		}
	}
	return ""
}

var cameraIDRe = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// replicaIDRe is what fleet.replica_id may be: a host or pod name.
var replicaIDRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,253}$`)

// checks are the rules a check:"<name>" tag names; each returns a message
// for the problem, "" when there is none.
var checks = map[string]func(r *reader, f reflect.StructField, v reflect.Value) string{
	"required": func(_ *reader, f reflect.StructField, v reflect.Value) string {
		if strings.TrimSpace(v.String()) != "" {
			return ""
		}
		if list := f.Tag.Get("oneof"); list != "" {
			return "required: one of " + strings.ReplaceAll(list, ",", ", ")
		}
		return "required"
	},
	"camera_id": func(_ *reader, _ reflect.StructField, v reflect.Value) string {
		switch id := v.String(); {
		case strings.TrimSpace(id) == "":
			return "required"
		case !cameraIDRe.MatchString(id):
			return fmt.Sprintf("%q must be 1-64 characters of a-z A-Z 0-9 _ -", id)
		}
		return ""
	},
	"replica_id": func(_ *reader, _ reflect.StructField, v reflect.Value) string {
		if id := v.String(); id != "" && !replicaIDRe.MatchString(id) {
			return fmt.Sprintf("%q must be 1-253 characters of a-z A-Z 0-9 . _ - (\"\" = the host name)", id)
		}
		return ""
	},
	"listen": func(_ *reader, _ reflect.StructField, v reflect.Value) string { return checkListen(v.String()) },
	"redis_url": func(_ *reader, _ reflect.StructField, v reflect.Value) string {
		return checkRedisURL(v.String())
	},
	"stream": func(_ *reader, _ reflect.StructField, v reflect.Value) string {
		if strings.TrimSpace(v.String()) == "" {
			return "must not be empty (e.g. \"frames:{camera_id}\")"
		}
		return ""
	},
	// ca_file also resolves the path against the config file's directory.
	"ca_file": func(r *reader, _ reflect.StructField, v reflect.Value) string {
		if v.String() == "" {
			return ""
		}
		path, msg := readCAFile(r.baseDir, v.String())
		v.SetString(path)
		return msg
	},
}

// mustBeSet are the checks that find a problem in a key that is absent.
var mustBeSet = map[string]bool{"required": true, "camera_id": true}

// checkRange checks v against a range tag: "[lo,hi]", "(" or ")" for an
// excluded bound, no hi for no upper bound. Bounds are written as v's
// type is (durations with a unit).
func checkRange(spec string, v reflect.Value) string {
	loIn, hiIn := spec[0] == '[', spec[len(spec)-1] == ']'
	loS, hiS, _ := strings.Cut(spec[1:len(spec)-1], ",")
	var val float64
	var parse func(string) (float64, error)
	var show func(float64) string
	switch {
	case v.Type() == durationType:
		val = float64(v.Int())
		parse = func(s string) (float64, error) { d, err := time.ParseDuration(s); return float64(d), err }
		show = func(x float64) string { return time.Duration(x).String() }
	case v.CanInt():
		val = float64(v.Int())
		parse = func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
		show = func(x float64) string { return strconv.FormatInt(int64(x), 10) }
	default:
		val = v.Float()
		parse = func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
		show = func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	}
	bound := func(s string) float64 {
		x, err := parse(s)
		if err != nil {
			panic(fmt.Sprintf("config: bad range tag %q: %v", spec, err))
		}
		return x
	}
	lo, hi := bound(loS), math.Inf(1)
	if hiS != "" {
		hi = bound(hiS)
	}
	above := val > lo || loIn && val == lo
	below := val < hi || hiIn && val == hi
	if above && below {
		return ""
	}
	loOp, hiOp := ">", "<"
	if loIn {
		loOp = ">="
	}
	if hiIn {
		hiOp = "<="
	}
	switch {
	case hiS == "":
		return fmt.Sprintf("must be %s %s, got %s", loOp, show(lo), show(val))
	case loIn && hiIn:
		return fmt.Sprintf("must be between %s and %s, got %s", show(lo), show(hi), show(val))
	default:
		return fmt.Sprintf("must be %s %s and %s %s, got %s", loOp, show(lo), hiOp, show(hi), show(val))
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
