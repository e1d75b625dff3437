package backoff

import (
	"math"
	"math/rand/v2"
	"time"
)

// DefaultMultiplier is the growth factor used when Multiplier is below 1.
const DefaultMultiplier = 2.0

// Backoff hands out retry delays. Attempt k (from 0) has the base delay
// min(Initial * Multiplier^k, Max) and waits a uniformly random time in
// [base/2, base], so the first delay is at most Initial and none exceeds Max.
//
// A Backoff belongs to one goroutine (the camera's supervisor); it is not
// safe for concurrent use. The zero value with Initial and Max set is usable.
type Backoff struct {
	Initial time.Duration
	// Max caps every delay; zero or negative means no cap but the largest
	// time.Duration.
	Max time.Duration
	// Multiplier is the growth factor per attempt; values below 1 (such as
	// the zero value) mean DefaultMultiplier. 1 gives a constant delay.
	Multiplier float64

	attempt int
	rnd     *rand.Rand // nil: the global source; tests install a seeded one
}

// New returns a Backoff growing from initial to max by DefaultMultiplier.
func New(initial, max time.Duration) *Backoff {
	return &Backoff{Initial: initial, Max: max, Multiplier: DefaultMultiplier}
}

// Next returns the delay before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	base := b.base(b.attempt)
	if b.attempt < math.MaxInt {
		b.attempt++
	}
	if base <= 0 {
		return 0
	}
	lo := base / 2
	return lo + time.Duration(b.int64N(int64(base-lo)+1))
}

// Reset starts over from Initial, after a connection that worked.
func (b *Backoff) Reset() { b.attempt = 0 }

// Attempt returns how many delays Next has handed out since the last Reset.
func (b *Backoff) Attempt() int { return b.attempt }

// base returns min(Initial*Multiplier^k, Max), computed in float64 so it
// saturates instead of overflowing however large k grows.
func (b *Backoff) base(k int) time.Duration {
	limit := b.Max
	if limit <= 0 {
		limit = math.MaxInt64
	}
	if b.Initial <= 0 {
		return 0
	}
	m := b.Multiplier
	if !(m >= 1) { // also NaN
		m = DefaultMultiplier
	}
	d := float64(b.Initial) * math.Pow(m, float64(k))
	if d >= float64(limit) || math.IsNaN(d) {
		return limit
	}
	return time.Duration(d)
}

func (b *Backoff) int64N(n int64) int64 {
	if b.rnd != nil {
		return b.rnd.Int64N(n)
	}
	return rand.Int64N(n)
}
