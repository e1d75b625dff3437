package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/knadh/koanf/v2"
)

// sizesToBytes replaces, in k, each value of a size:"..." key (an int64
// field: its users count bytes) by its bytes, so that decoding sees a
// number: "auto" is 0, "none" (only where the tag allows it) -1, and a size
// must be at least the tag's min. A bad value is reported and removed, so
// the field keeps its default.
func (r *reader) sizesToBytes(k *koanf.Koanf) {
	eachKey(reflect.ValueOf(Config{}), "", func(path string, f reflect.StructField, _ reflect.Value) bool {
		tag, ok := f.Tag.Lookup("size")
		if !ok || !k.Exists(path) {
			return true
		}
		n, msg := parseBudget(k.Get(path), tag)
		if msg != "" {
			r.add(path, "%s", msg)
			r.failed[path] = true
			k.Delete(path)
			return true
		}
		if err := k.Set(path, n); err != nil {
			panic(err) // a merge into a map koanf itself built
		}
		return true
	})
}

// parseBudget reads "auto", "none" where tag has it, or a size ("2GiB",
// "512MiB", "1.5gb", "300mb", or a number of bytes) of at least tag's
// min=. It returns a message for the problem, "" when there is none.
func parseBudget(v any, tag string) (int64, string) {
	var allowNone bool
	var minText string
	for _, opt := range strings.Split(tag, ",") {
		if opt == "none" {
			allowNone = true
		} else if m, ok := strings.CutPrefix(opt, "min="); ok {
			minText = m
		}
	}
	minBytes, ok := parseSize(minText)
	if !ok {
		panic(fmt.Sprintf("config: bad size tag %q", tag))
	}
	names := "auto"
	if allowNone {
		names = "auto, none"
	}
	var s string
	switch t := v.(type) {
	case string:
		s = strings.TrimSpace(t)
	default:
		n, ok := toInt(v)
		if !ok {
			return 0, fmt.Sprintf("must be %s or a size such as 2GiB, 512MiB or 1.5GB, got %s", names, describe(v))
		}
		s = strconv.Itoa(n)
	}
	switch {
	case strings.EqualFold(s, "auto"):
		return BudgetAuto, ""
	case allowNone && strings.EqualFold(s, "none"):
		return BudgetNone, ""
	}
	n, ok := parseSize(s)
	if !ok {
		return 0, fmt.Sprintf("must be %s or a size such as 2GiB, 512MiB or 1.5GB, got %q", names, s)
	}
	if n < minBytes {
		return 0, fmt.Sprintf("must be at least %s, got %q (%d bytes)", minText, s, n)
	}
	return n, ""
}

// sizeUnits are the suffixes of a size, longest first so that "mib" is not
// read as "b". They mean what they mean in redis.conf, where operators
// write maxmemory: kb, mb, gb are powers of 1024 (and so are KiB, MiB,
// GiB), k, m, g powers of 1000.
var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"tb", 1 << 40},
	{"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"b", 1},
}

// parseSize reads a byte size: a number, optionally fractional, and a unit
// (see sizeUnits; case-insensitive).
func parseSize(s string) (int64, bool) {
	low := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(low, u.suffix) {
			low, mult = strings.TrimSpace(strings.TrimSuffix(low, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(low, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f*mult > math.MaxInt64/2 {
		return 0, false
	}
	return int64(math.Round(f * mult)), true
}
