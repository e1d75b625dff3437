package fleet

import (
	"cmp"
	"hash/fnv"
	"slices"
)

// Member is a live replica as placement sees it.
type Member struct {
	ID      string
	Max     int      // the most cameras it takes; 0 = no cap
	Cameras []string // the cameras it holds now
}

// Place assigns every camera to one member, or to "" when no member has
// room. All replicas compute it from the same inputs (the camera set and
// the members' heartbeats), so they agree without talking.
//
//   - Quotas: the cameras are shared as evenly as the caps allow, so two
//     members' counts differ by at most 1 unless a cap holds one back. An
//     odd camera goes to a member that holds more now, so fewer move.
//   - Sticky: a member keeps the cameras it holds, up to its quota, those
//     it ranks highest first.
//   - The rest go by rendezvous hashing: each camera to the member that
//     ranks it highest among those with room. A member that joins or
//     leaves moves only what its quota takes or frees.
func Place(cameras []string, members []Member) map[string]string {
	out := make(map[string]string, len(cameras))
	for _, c := range cameras {
		out[c] = ""
	}
	if len(members) == 0 {
		return out
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	want := make(map[string]bool, len(cameras))
	for _, c := range cameras {
		want[c] = true
	}
	held := make([]int, len(ms)) // cameras of the set each member holds now
	for i, m := range ms {
		for _, c := range m.Cameras {
			if want[c] {
				held[i]++
			}
		}
	}
	quota := quotas(len(cameras), ms, held)

	load := make([]int, len(ms))
	for i, m := range ms {
		mine := make([]string, 0, len(m.Cameras))
		for _, c := range m.Cameras {
			if want[c] && out[c] == "" {
				mine = append(mine, c)
			}
		}
		slices.SortFunc(mine, func(a, b string) int { return cmp.Compare(score(b, m.ID), score(a, m.ID)) })
		for _, c := range mine[:min(len(mine), quota[i])] {
			out[c] = m.ID
			load[i]++
		}
	}
	rest := slices.Clone(cameras)
	slices.Sort(rest)
	for _, c := range rest {
		if out[c] != "" {
			continue
		}
		best := -1
		for i, m := range ms {
			if load[i] < quota[i] && (best < 0 || score(c, m.ID) > score(c, ms[best].ID)) {
				best = i
			}
		}
		if best >= 0 {
			out[c] = ms[best].ID
			load[best]++
		}
	}
	return out
}

// quotas shares n cameras among the members one at a time, each to the
// member with the fewest so far that has room; ties go to the member
// holding more now, then by id.
func quotas(n int, ms []Member, held []int) []int {
	q := make([]int, len(ms))
	for range n {
		best := -1
		for i, m := range ms {
			if m.Max > 0 && q[i] >= m.Max {
				continue
			}
			if best < 0 || q[i] < q[best] || (q[i] == q[best] && held[i] > held[best]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		q[best]++
	}
	return q
}

// score ranks a member for a camera (rendezvous hashing): FNV-1a of both,
// then a 64-bit finalizer, so that close ids do not rank alike.
func score(camera, member string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(camera))
	h.Write([]byte{0})
	h.Write([]byte(member))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
