package stats

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeLatency is a histogram's cumulative counts per camera.
type fakeLatency struct {
	bounds []float64
	counts map[string][]uint64
	totals map[string]uint64
}

func (f *fakeLatency) LatencyBuckets(id string) ([]float64, []uint64, uint64, bool) {
	c, ok := f.counts[id]
	return f.bounds, append([]uint64(nil), c...), f.totals[id], ok
}

func TestQuantile(t *testing.T) {
	bounds := []float64{0.001, 0.002, 0.004, 0.008}
	zero := []uint64{0, 0, 0, 0}
	for _, tc := range []struct {
		name      string
		cur, prev []uint64
		n         uint64
		want      *float64
	}{
		{"no observations", []uint64{0, 0, 0, 0}, zero, 0, nil},
		// 100 in (0.002, 0.004]: p99 at rank 99 interpolates to 0.00398.
		{"one bucket", []uint64{0, 0, 100, 100}, zero, 100, ptr(0.002 + 0.002*99/100)},
		// 99 under 1 ms, 1 in (4, 8] ms: rank 99 is the 99th, under 1 ms.
		{"tail outside", []uint64{99, 99, 99, 100}, zero, 100, ptr(0.001)},
		// Past the last bound: the last bound.
		{"over the top", []uint64{0, 0, 0, 0}, zero, 10, ptr(0.008)},
		// Only the observations since prev count.
		{"a delta", []uint64{1000, 1000, 1010, 1010}, []uint64{1000, 1000, 1000, 1000}, 10, ptr(0.002 + 0.002*9.9/10)},
		{"reset", []uint64{0, 0, 1, 1}, []uint64{5, 5, 5, 5}, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := quantile(0.99, bounds, tc.cur, tc.prev, tc.n)
			if tc.want == nil {
				assert.Nil(t, got)
				return
			}
			require.NotNil(t, got)
			assert.InDelta(t, *tc.want, *got, 1e-9)
		})
	}
}

func ptr(v float64) *float64 { return &v }

func TestHistory(t *testing.T) {
	reg := NewRegistry()
	cam := reg.Add("cam1")
	lat := &fakeLatency{bounds: []float64{0.01, 0.02}, counts: map[string][]uint64{"cam1": {0, 0}}, totals: map[string]uint64{}}
	h := NewHistory(reg, lat, time.Second, 3*time.Second)
	assert.Equal(t, 3*time.Second, h.Window())

	t0 := time.Now()
	h.Sample(t0) // the first sample only records the counters
	pts, ok := h.Points("cam1")
	require.True(t, ok)
	assert.Empty(t, pts)
	_, ok = h.Points("nope")
	assert.False(t, ok)

	for i := 1; i <= 5; i++ {
		cam.Drop(DropFrozen, uint64(i))
		if i%2 == 0 {
			lat.counts["cam1"] = []uint64{lat.counts["cam1"][0] + 10, lat.counts["cam1"][1] + 10}
			lat.totals["cam1"] += 10
		}
		h.Sample(t0.Add(time.Duration(i) * time.Second))
	}
	pts, _ = h.Points("cam1")
	require.Len(t, pts, 3, "the window holds 3 points")
	for i, p := range pts {
		n := i + 3
		assert.Equal(t, t0.Add(time.Duration(n)*time.Second), p.T, "oldest first")
		assert.Equal(t, uint64(n), p.Dropped, "point %d: drops within its interval", n)
		if n%2 == 0 {
			require.NotNil(t, p.LatencyP99, "point %d", n)
			assert.InDelta(t, 0.0099, *p.LatencyP99, 1e-9)
		} else {
			assert.Nil(t, p.LatencyP99, "point %d: no frame published", n)
		}
	}

	// A camera removed is forgotten; one added again under its id starts afresh.
	reg.Remove("cam1")
	_, ok = h.Points("cam1")
	assert.False(t, ok)
	again := reg.Add("cam1")
	again.Drop(DropSize, 7)
	h.Sample(t0.Add(10 * time.Second))
	pts, ok = h.Points("cam1")
	require.True(t, ok)
	assert.Empty(t, pts)
}

func TestTransitionsBounded(t *testing.T) {
	c := NewCamera("cam1")
	c.SetState(StateConnecting, "")
	c.SetState(StateStreaming, "")
	c.SetState(StateStreaming, "") // no change, no transition
	c.SetState(StateStalled, "no frame for 3s")
	tr := c.Transitions()
	require.Len(t, tr, 3)
	assert.Equal(t, Transition{At: tr[2].At, From: StateStreaming, To: StateStalled, Reason: "no frame for 3s"}, tr[2])
	assert.Equal(t, StateStarting, tr[0].From)

	for i := range 2 * maxTransitions {
		c.SetState(State(fmt.Sprint("s", i)), "")
	}
	tr = c.Transitions()
	require.Len(t, tr, maxTransitions)
	assert.Equal(t, State(fmt.Sprint("s", 2*maxTransitions-1)), tr[len(tr)-1].To, "newest last")
}
