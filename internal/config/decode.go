package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/v2"

	"gstcapture/internal/frame"
)

// reader decodes the merged koanf layers onto the defaults and validates
// the result, collecting every problem instead of stopping at the first.
type reader struct {
	probs   Problems
	fromEnv map[string]string // config path -> environment variable that set it
	failed  map[string]bool   // paths whose value did not decode; Validate skips them
	baseDir string            // the config file's directory: relative paths start there
	lookup  func(name string) (string, bool)
}

func (r *reader) add(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if name, ok := r.fromEnv[path]; ok {
		msg += " (set by " + name + ")"
	}
	r.probs = append(r.probs, Problem{Path: path, Msg: msg})
}

func join(base, key string) string {
	if base == "" || key == "" {
		if key == "" {
			return base
		}
		return key
	}
	return base + "." + key
}

var envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// load is the order of Load after the layers are merged: sizes to bytes,
// decode over the defaults, validate, then each camera over the validated
// defaults.
func (r *reader) load(k *koanf.Koanf) *Config {
	r.sizesToBytes(k)
	f := fileConfig{Config: defaults()}
	err := k.UnmarshalWithConf("", &f, koanf.UnmarshalConf{DecoderConfig: decoderConfig(nil)})
	r.decodeProblems(err, "", reflect.TypeFor[fileConfig]())
	cfg := &f.Config
	r.validate(cfg)
	// health.min_ready is not checked against the file's cameras: more may
	// come through the camera API.
	cfg.Cameras = r.cameras(f.Cameras, cfg.Defaults)
	return cfg
}

// decoderConfig is how every part of the file is decoded: keys exactly as
// the koanf tags spell them, an unknown key is an error, and decodeHook
// turns a wrongly typed value into a message for the user.
func decoderConfig(md *mapstructure.Metadata) *mapstructure.DecoderConfig {
	return &mapstructure.DecoderConfig{
		TagName:              "koanf",
		ErrorUnused:          true,
		IgnoreUntaggedFields: true,
		MatchName:            func(key, field string) bool { return key == field },
		Metadata:             md,
		DecodeHook:           mapstructure.ComposeDecodeHookFunc(decodeHook, mapstructure.TextUnmarshallerHookFunc()),
	}
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	formatType          = reflect.TypeFor[frame.Format]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeHook checks that a value has the shape its field needs and parses
// the values YAML and the environment leave as text: durations, formats,
// numbers. A TextUnmarshaler (validate.Action) only gets text here;
// TextUnmarshallerHookFunc, next, parses it.
func decodeHook(from, to reflect.Value) (any, error) {
	data := from.Interface()
	t := to.Type()
	_, isText := data.(string)
	switch {
	case t == durationType:
		return parseDuration(data)
	case t == formatType:
		if !isText {
			return nil, fmt.Errorf("must be a string, got %s", describe(data))
		}
		return frame.ParseFormat(data.(string))
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		if !isText {
			return nil, fmt.Errorf("must be a string, got %s", describe(data))
		}
		return data, nil
	}
	switch t.Kind() {
	case reflect.String:
		if !isText {
			return nil, fmt.Errorf("must be a string, got %s", describe(data))
		}
	case reflect.Int, reflect.Int64:
		n, ok := toInt(data)
		if !ok {
			return nil, fmt.Errorf("must be an integer, got %s", describe(data))
		}
		return n, nil
	case reflect.Float64:
		return toFloat(data)
	case reflect.Bool:
		return toBool(data)
	case reflect.Struct:
		if _, ok := data.(map[string]any); !ok {
			return nil, fmt.Errorf("must be a mapping, got %s", describe(data))
		}
	}
	return data, nil
}

// toBool reads a YAML boolean, or the text the environment gives
// (GSTCAPTURE_FLEET__ENABLED=true): true/false, 1/0, t/f as strconv reads them.
func toBool(v any) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		p, err := strconv.ParseBool(strings.TrimSpace(b))
		if err != nil {
			return false, fmt.Errorf("must be true or false, got %q", b)
		}
		return p, nil
	}
	return false, fmt.Errorf("must be true or false, got %s", describe(v))
}

// parseDuration reads a Go duration. A bare number has no unit; only 0 is
// unambiguous.
func parseDuration(v any) (time.Duration, error) {
	if s, ok := v.(string); ok {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (use a unit: 200ms, 5s, 1m)", s)
		}
		return d, nil
	}
	if n, ok := toInt(v); !ok || n != 0 {
		return 0, fmt.Errorf("invalid duration %s (use a unit: 200ms, 5s, 1m)", describe(v))
	}
	return 0, nil
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

func toFloat(v any) (float64, error) {
	switch t := v.(type) {
	case float64:
		return t, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil {
			return 0, fmt.Errorf("must be a number, got %q", t)
		}
		return f, nil
	}
	n, ok := toInt(v)
	if !ok {
		return 0, fmt.Errorf("must be a number, got %s", describe(v))
	}
	return float64(n), nil
}

// decodeProblems turns mapstructure's errors, whose names are the paths
// below base, into problems. root is the type decoded at base, whose keys
// suggest the spelling of an unknown one.
func (r *reader) decodeProblems(err error, base string, root reflect.Type) {
	if err == nil {
		return
	}
	de, ok := err.(*mapstructure.DecodeError)
	if !ok {
		// Decode wraps errors.Join of one *DecodeError per problem.
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				r.decodeProblems(e, base, root)
			}
		} else if inner := errors.Unwrap(err); inner != nil {
			r.decodeProblems(inner, base, root)
		} else {
			r.add(base, "%s", Redact(err.Error()))
		}
		return
	}
	rel := de.Name()
	if rel == root.String() { // how mapstructure names the root
		rel = ""
	}
	msg := de.Unwrap().Error()
	if keys, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
		allowed := keysOf(typeAt(root, rel))
		for _, key := range strings.Split(keys, ", ") {
			msg := "unknown key"
			if s := suggest(key, allowed); s != "" {
				msg += " (did you mean " + s + "?)"
			}
			r.add(join(join(base, rel), key), "%s", msg)
		}
		return
	}
	path := join(base, rel)
	r.failed[path] = true
	// A value is quoted back; one written as a URL loses its user-info.
	r.add(path, "%s", Redact(msg))
}

// keyOf returns a struct field's key from its koanf tag: "" for a field
// that is not a key (untagged), squash for one whose keys are its parent's.
func keyOf(f reflect.StructField) (key string, squash bool) {
	name, opts, _ := strings.Cut(f.Tag.Get("koanf"), ",")
	if !f.IsExported() || name == "-" {
		return "", false
	}
	return name, opts == "squash"
}

// isSection reports whether a field of type t holds keys of its own.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// eachKey calls fn with every key field of the struct v and its path below
// base, and descends into a section when fn returns true.
func eachKey(v reflect.Value, base string, fn func(path string, f reflect.StructField, fv reflect.Value) bool) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key, squash := keyOf(f)
		switch {
		case squash:
			eachKey(v.Field(i), base, fn)
		case key == "":
		default:
			p := join(base, key)
			if fn(p, f, v.Field(i)) && isSection(f.Type) {
				eachKey(v.Field(i), p, fn)
			}
		}
	}
}

// keysOf returns the keys of section type t (nil for nil).
func keysOf(t reflect.Type) []string {
	if t == nil {
		return nil
	}
	var out []string
	eachKey(reflect.New(t).Elem(), "", func(path string, _ reflect.StructField, _ reflect.Value) bool {
		out = append(out, path)
		return false
	})
	return out
}

// typeAt returns the section type at the dotted path below t, nil if there
// is none.
func typeAt(t reflect.Type, path string) reflect.Type {
	if path == "" {
		return t
	}
	var found reflect.Type
	first, rest, _ := strings.Cut(path, ".")
	eachKey(reflect.New(t).Elem(), "", func(p string, f reflect.StructField, _ reflect.Value) bool {
		if p == first && isSection(f.Type) {
			found = f.Type
		}
		return false
	})
	if found == nil {
		return nil
	}
	return typeAt(found, rest)
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
		if strings.EqualFold(s, a) {
			return a // keys are lower-case: FPS is fps
		}
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

// Choices returns the values a camera setting accepts (its oneof tag), by
// its path below a camera's settings ("converter", "transport"); nil for a
// setting with no fixed set. Tests range over it instead of a copy.
func Choices(path string) []string {
	var out []string
	eachKey(reflect.New(reflect.TypeFor[Settings]()).Elem(), "", func(p string, f reflect.StructField, _ reflect.Value) bool {
		if p == path {
			if list := f.Tag.Get("oneof"); list != "" {
				out = strings.Split(list, ",")
			}
		}
		return true
	})
	return out
}
