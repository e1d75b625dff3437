package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// minBudget is the smallest redis.memory_budget: below it not even one
// 640x480 BGR frame fits.
const minBudget = 1 << 20

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

// parseBudget reads redis.memory_budget: "auto" (0) or a size ("2GiB",
// "512MiB", "1.5gb", "300mb", or a number of bytes). It returns a message
// for the problem, "" when there is none.
func parseBudget(v any) (int64, string) {
	var s string
	switch t := v.(type) {
	case string:
		s = strings.TrimSpace(t)
	default:
		n, ok := toInt(v)
		if !ok {
			return 0, fmt.Sprintf("must be auto or a size such as 2GiB, got %s", describe(v))
		}
		s = strconv.Itoa(n)
	}
	if strings.EqualFold(s, "auto") {
		return 0, ""
	}
	n, ok := parseSize(s)
	if !ok {
		return 0, fmt.Sprintf("must be auto or a size such as 2GiB, 512MiB or 1.5GB, got %q", s)
	}
	if n < minBudget {
		return 0, fmt.Sprintf("must be at least 1MiB, got %q (%d bytes)", s, n)
	}
	return n, ""
}

// minProcessBudget is the smallest memory.budget: the Go heap's share
// alone needs about this much.
const minProcessBudget = 64 << 20

// parseProcessBudget reads memory.budget: "auto" (BudgetAuto), "none"
// (BudgetNone) or a size of at least 64MiB.
func parseProcessBudget(v any) (int64, string) {
	if s, ok := v.(string); ok && strings.EqualFold(strings.TrimSpace(s), "none") {
		return BudgetNone, ""
	}
	n, msg := parseBudget(v)
	if msg != "" {
		return 0, strings.Replace(msg, "must be auto or", "must be auto, none or", 1)
	}
	if n != 0 && n < minProcessBudget {
		return 0, fmt.Sprintf("must be at least 64MiB, got %d bytes", n)
	}
	return n, ""
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
