package validate

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"gstcapture/internal/frame"
)

// Action says what happens to a frame that fails a rule.
type Action int

const (
	// Pass keeps the frame and flags it (Result.Flagged): it is published
	// with the rule in its flags field and counted as flagged.
	Pass Action = iota
	// Drop discards the frame.
	Drop
	// Off does not run the rule at all.
	Off
)

// ParseAction parses "drop", "pass" or "off" (case-insensitive).
func ParseAction(s string) (Action, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "drop":
		return Drop, nil
	case "pass":
		return Pass, nil
	case "off":
		return Off, nil
	}
	return 0, fmt.Errorf("unknown validation action %q (want drop, pass or off)", s)
}

// String returns "drop" or "pass".
func (a Action) String() string {
	switch a {
	case Pass:
		return "pass"
	case Drop:
		return "drop"
	case Off:
		return "off"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) {
	if a != Pass && a != Drop {
		return nil, fmt.Errorf("invalid validation action %d", int(a))
	}
	return []byte(a.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler, so config decoders
// can fill an Action straight from "drop"/"pass".
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// BlackRule fails frames whose mean luma is at most MaxLuma and whose luma
// spread is at most BlackMaxStddev. It does not run on JPEG frames.
type BlackRule struct {
	Action  Action
	MaxLuma int // 0..255
}

// UniformRule fails frames whose luma standard deviation is at most
// MaxStddev: flat grey or green pictures that decoders emit on corruption.
// It does not run on JPEG frames.
type UniformRule struct {
	Action    Action
	MaxStddev float64
}

// FrozenRule fails frames whose sampled content (a JPEG frame's bytes) has
// not changed for After. After == 0 disables the rule.
type FrozenRule struct {
	Action Action
	After  time.Duration
}

// SizeRule fails frames whose buffer is smaller than their caps imply or
// whose width, height or format are invalid; a JPEG frame, when its buffer
// is not one whole JPEG of its width and height.
type SizeRule struct {
	Action Action
}

// CorruptRule fails frames the decoder flagged as corrupted.
type CorruptRule struct {
	Action Action
}

// Rules configures a Validator.
type Rules struct {
	Black   BlackRule
	Uniform UniformRule
	Frozen  FrozenRule
	Size    SizeRule
	Corrupt CorruptRule
}

// BlackMaxStddev is the largest luma standard deviation a black frame may
// have. A covered lens or a dead sensor still shows sensor noise and
// compression artefacts of a few levels; a dark scene with anything in it
// (a lamp, a lit window, an edge, texture) goes well past this, so it is not
// dropped as black however low its mean.
const BlackMaxStddev = 6.0

// PixelRulesSkipped names the rules of r that are configured (not Off) but
// do not run on frames of format f: black and uniform on JPEG. Empty for
// raw formats.
func (r Rules) PixelRulesSkipped(f frame.Format) []string {
	if f != frame.JPEG {
		return nil
	}
	var out []string
	if r.Black.Action != Off {
		out = append(out, "black")
	}
	if r.Uniform.Action != Off {
		out = append(out, "uniform")
	}
	return out
}

// DefaultRules returns the rules used when the config says nothing.
func DefaultRules() Rules {
	return Rules{
		Black:   BlackRule{Action: Drop, MaxLuma: 16},
		Uniform: UniformRule{Action: Drop, MaxStddev: 2.0},
		Frozen:  FrozenRule{Action: Drop, After: 10 * time.Second},
		Size:    SizeRule{Action: Drop},
		Corrupt: CorruptRule{Action: Drop},
	}
}

// Validate reports every out-of-range field, naming it as the config does.
func (r Rules) Validate() error {
	var errs []error
	check := func(name string, a Action) {
		if a != Pass && a != Drop {
			errs = append(errs, fmt.Errorf("%s.action: invalid value %d (want drop or pass)", name, int(a)))
		}
	}
	check("black", r.Black.Action)
	check("uniform", r.Uniform.Action)
	check("frozen", r.Frozen.Action)
	check("size", r.Size.Action)
	check("corrupt", r.Corrupt.Action)
	if r.Black.MaxLuma < 0 || r.Black.MaxLuma > 255 {
		errs = append(errs, fmt.Errorf("black.max_luma: %d out of range 0..255", r.Black.MaxLuma))
	}
	if !(r.Uniform.MaxStddev >= 0 && r.Uniform.MaxStddev <= 128) { // also rejects NaN
		errs = append(errs, fmt.Errorf("uniform.max_stddev: %g out of range 0..128", r.Uniform.MaxStddev))
	}
	if r.Frozen.After < 0 {
		errs = append(errs, fmt.Errorf("frozen.after: %s is negative (0 disables the rule)", r.Frozen.After))
	}
	return errors.Join(errs...)
}
