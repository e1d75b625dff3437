package backoff

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func seeded(initial, max time.Duration, seed uint64) *Backoff {
	b := New(initial, max)
	b.rnd = rand.New(rand.NewPCG(seed, seed^0x5eed))
	return b
}

func TestFirstDelayWithinInitial(t *testing.T) {
	for seed := range uint64(1000) {
		b := seeded(time.Second, time.Minute, seed)
		d := b.Next()
		assert.GreaterOrEqual(t, d, 500*time.Millisecond)
		assert.LessOrEqual(t, d, time.Second)
		assert.Equal(t, 1, b.Attempt())
	}
}

func TestGrowth(t *testing.T) {
	b := seeded(100*time.Millisecond, time.Hour, 1)
	base := 100 * time.Millisecond
	for k := range 15 {
		d := b.Next()
		assert.GreaterOrEqual(t, d, base/2, "attempt %d", k)
		assert.LessOrEqual(t, d, base, "attempt %d", k)
		base *= 2
	}
	assert.Equal(t, 15, b.Attempt())
}

func TestMultiplier(t *testing.T) {
	b := seeded(time.Second, time.Hour, 2)
	b.Multiplier = 3
	for _, base := range []time.Duration{1, 3, 9, 27, 81} {
		d := b.Next()
		assert.GreaterOrEqual(t, d, base*time.Second/2)
		assert.LessOrEqual(t, d, base*time.Second)
	}

	constant := seeded(time.Second, time.Hour, 3)
	constant.Multiplier = 1
	for range 50 {
		assert.LessOrEqual(t, constant.Next(), time.Second)
	}

	// Zero value and nonsense multipliers fall back to the default.
	for _, m := range []float64{0, -1, 0.5, math.NaN()} {
		b := &Backoff{Initial: time.Second, Max: time.Hour, Multiplier: m}
		b.rnd = rand.New(rand.NewPCG(4, 4))
		b.Next()
		d := b.Next()
		assert.GreaterOrEqual(t, d, time.Second, "multiplier %v", m)
		assert.LessOrEqual(t, d, 2*time.Second, "multiplier %v", m)
	}
}

func TestCapAtMax(t *testing.T) {
	b := seeded(time.Second, 30*time.Second, 5)
	for k := range 200 {
		d := b.Next()
		assert.LessOrEqual(t, d, 30*time.Second, "attempt %d", k)
		if k >= 5 { // 2^5 s > 30 s: capped from here on
			assert.GreaterOrEqual(t, d, 15*time.Second, "attempt %d", k)
		}
	}
}

func TestMaxBelowInitial(t *testing.T) {
	b := seeded(time.Minute, time.Second, 6)
	for range 20 {
		d := b.Next()
		assert.LessOrEqual(t, d, time.Second)
		assert.GreaterOrEqual(t, d, 500*time.Millisecond)
	}
}

func TestNoOverflow(t *testing.T) {
	for _, limit := range []time.Duration{time.Minute, 0, math.MaxInt64} {
		b := seeded(time.Second, limit, 7)
		capped := limit
		if capped <= 0 {
			capped = math.MaxInt64
		}
		for k := range 1000 {
			d := b.Next()
			require.Positive(t, d, "max %s attempt %d", limit, k)
			require.LessOrEqual(t, d, capped, "max %s attempt %d", limit, k)
			if k > 100 {
				require.GreaterOrEqual(t, d, capped/2, "max %s attempt %d", limit, k)
			}
		}
		assert.Equal(t, 1000, b.Attempt())
	}
}

func TestReset(t *testing.T) {
	b := seeded(time.Second, time.Minute, 8)
	for range 10 {
		b.Next()
	}
	assert.Equal(t, 10, b.Attempt())
	b.Reset()
	assert.Equal(t, 0, b.Attempt())
	assert.LessOrEqual(t, b.Next(), time.Second)
}

func TestJitterVaries(t *testing.T) {
	b := seeded(time.Second, time.Second, 9) // base fixed at 1s
	seen := map[time.Duration]bool{}
	var lo, hi int
	for range 1000 {
		d := b.Next()
		seen[d] = true
		if d < 750*time.Millisecond {
			lo++
		} else {
			hi++
		}
	}
	assert.Greater(t, len(seen), 900, "delays should rarely repeat")
	// Uniform over [0.5s, 1s]: each half gets about 500 of 1000.
	assert.InDelta(t, 500, lo, 100)
	assert.InDelta(t, 500, hi, 100)

	// The unseeded default source varies too.
	d := New(time.Second, time.Second)
	first := d.Next()
	varied := false
	for range 100 {
		if d.Next() != first {
			varied = true
			break
		}
	}
	assert.True(t, varied)
}

func TestSeedIsDeterministic(t *testing.T) {
	a, b := seeded(time.Second, time.Minute, 10), seeded(time.Second, time.Minute, 10)
	for range 20 {
		assert.Equal(t, a.Next(), b.Next())
	}
}

func TestZeroInitial(t *testing.T) {
	b := New(0, time.Minute)
	for range 5 {
		assert.Zero(t, b.Next())
	}
	assert.Equal(t, 5, b.Attempt())
}
