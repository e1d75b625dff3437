package fleet

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func camIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("cam%d", i+1)
	}
	return out
}

// members builds members holding what a placement gave them.
func members(place map[string]string, ids ...string) []Member {
	ms := make([]Member, len(ids))
	for i, id := range ids {
		ms[i].ID = id
		for c, o := range place {
			if o == id {
				ms[i].Cameras = append(ms[i].Cameras, c)
			}
		}
	}
	return ms
}

func shares(place map[string]string) map[string]int {
	out := map[string]int{}
	for _, o := range place {
		out[o]++
	}
	return out
}

func moved(a, b map[string]string) int {
	n := 0
	for c, o := range a {
		if b[c] != o {
			n++
		}
	}
	return n
}

func assertBalanced(t *testing.T, place map[string]string, ids ...string) {
	t.Helper()
	s := shares(place)
	lo, hi := len(place), 0
	for _, id := range ids {
		lo, hi = min(lo, s[id]), max(hi, s[id])
	}
	assert.LessOrEqual(t, hi-lo, 1, "shares %v", s)
	assert.Zero(t, s[""], "unplaced cameras: %v", s)
}

func TestPlaceBalancedAndStable(t *testing.T) {
	cams := camIDs(9)
	p3 := Place(cams, members(nil, "r1", "r2", "r3"))
	assertBalanced(t, p3, "r1", "r2", "r3")
	// The same inputs give the same placement, and holding it changes
	// nothing.
	assert.Equal(t, p3, Place(cams, members(nil, "r3", "r1", "r2")))
	assert.Equal(t, p3, Place(cams, members(p3, "r1", "r2", "r3")))

	// A fourth joins: only what its quota takes moves, and all to it.
	p4 := Place(cams, append(members(p3, "r1", "r2", "r3"), Member{ID: "r4"}))
	assertBalanced(t, p4, "r1", "r2", "r3", "r4")
	assert.LessOrEqual(t, moved(p3, p4), 3)
	for c, o := range p4 {
		if p3[c] != o {
			assert.Equal(t, "r4", o, "%s moved to %s, not to the new member", c, o)
		}
	}

	// r2 leaves: only its cameras move.
	p := Place(cams, members(p4, "r1", "r3", "r4"))
	assertBalanced(t, p, "r1", "r3", "r4")
	for c, o := range p4 {
		if o != "r2" {
			assert.Equal(t, o, p[c], "%s moved though its owner stayed", c)
		}
	}
}

// Over many random fleets: balanced, and a join or a leave moves at most
// what the quotas force plus one.
func TestPlaceRandomFleets(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		n, r := 1+rng.IntN(60), 1+rng.IntN(8)
		cams := camIDs(n)
		ids := make([]string, r)
		for i := range ids {
			ids[i] = fmt.Sprintf("pod-%x", rng.Uint32())
		}
		p := Place(cams, members(nil, ids...))
		assertBalanced(t, p, ids...)
		require.Equal(t, p, Place(cams, members(p, ids...)), "a settled placement must not move")

		joined := append(members(p, ids...), Member{ID: "new"})
		pj := Place(cams, joined)
		assertBalanced(t, pj, append(ids, "new")...)
		assert.LessOrEqual(t, moved(p, pj), n/(r+1)+1, "join of %d cameras on %d replicas", n, r)

		if r > 1 {
			pl := Place(cams, members(p, ids[1:]...))
			assertBalanced(t, pl, ids[1:]...)
			assert.Equal(t, shares(p)[ids[0]], moved(p, pl), "a leave moves exactly the leaver's cameras")
		}
	}
}

func TestPlaceCaps(t *testing.T) {
	cams := camIDs(10)
	ms := []Member{{ID: "a", Max: 2}, {ID: "b"}, {ID: "c"}}
	p := Place(cams, ms)
	s := shares(p)
	assert.Equal(t, 2, s["a"])
	assert.Equal(t, 4, s["b"])
	assert.Equal(t, 4, s["c"])

	// No room for all: the rest have no owner.
	p = Place(cams, []Member{{ID: "a", Max: 3}, {ID: "b", Max: 4}})
	assert.Equal(t, map[string]int{"a": 3, "b": 4, "": 3}, shares(p))

	assert.Equal(t, map[string]int{"": 10}, shares(Place(cams, nil)))
	// A member holding a camera no longer in the set keeps nothing for it.
	p = Place(camIDs(2), []Member{{ID: "a", Cameras: []string{"gone", "cam1"}}, {ID: "b"}})
	assert.Equal(t, map[string]int{"a": 1, "b": 1}, shares(p))
}
