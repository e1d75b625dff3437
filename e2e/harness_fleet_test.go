package e2e

// The fleet tests' harness (issue 15): replicas r1..rN of one fleet sharing
// one camsim's cameras through one redis-server; a recorder that keeps the
// owner and epoch of every entry any stream receives during a test, so that
// "no camera is captured twice" is checked over the whole test, not just
// over what the streams still hold; and a wait for a stable placement.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

const (
	flLease = 2 * time.Second // fleet.lease of every replica
	flCams  = 9               // cameras of the fleet
	// flHold is how long the leases must stay unchanged for a placement
	// to count as stable.
	flHold = 2 * time.Second
)

// flRig is one fleet under test.
type flRig struct {
	t    *testing.T
	rd   *testenv.Redis
	sim  *camsim
	cams []camCfg
	ids  []string
	rec  *flRecorder
	reps map[string]*service // by replica id

	stopAll sync.Once
}

// flNew starts redis-server, camsim with flCams 320x240 cameras at 10 fps
// and the entry recorder; replicas come with add.
func flNew(t *testing.T) *flRig {
	t.Helper()
	r := &flRig{t: t, rd: testenv.StartRedis(t), reps: map[string]*service{}}
	r.sim = startCamsim(t, camsimOpts{Cameras: flCams, Codec: "h264", Size: "320x240", FPS: 10})
	r.cams = simCams(r.sim, flCams)
	r.ids = camIDs(r.cams)
	r.rec = flRecord(t, r.rd, r.ids)
	return r
}

// flStart is flNew with replicas r1..rN reaching Redis directly, returned
// once their placement is stable.
func flStart(t *testing.T, n int) (*flRig, flPlacement) {
	t.Helper()
	r := flNew(t)
	var live []string
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("r%d", i)
		r.add(id, "gstcapture", r.rd.URL)
		live = append(live, id)
	}
	return r, r.waitStable(60*time.Second, live...)
}

// config is replica id's configuration: every camera of the fleet, lease
// flLease, redis.timeout at its default (2 s), 5 s of history per stream
// (the recorder keeps the rest).
func (r *flRig) config(id, redisURL string) svcConfig {
	return svcConfig{
		Redis: redisURL, Retention: "5s",
		Fleet: true, ReplicaID: id, Lease: flLease.String(),
		AnyReady: true, FPS: 10, Reconnect: reconnect{"500ms", "2s"},
		Cameras: r.cams,
	}
}

// add starts replica id from bin/<bin> with redis.url redisURL.
func (r *flRig) add(id, bin, redisURL string) *service {
	r.t.Helper()
	s := startServiceBin(r.t, bin, r.config(id, redisURL))
	r.reps[id] = s
	// Cleanups run last first: this one, registered after every replica's
	// own, stops them all at once, so that they do not take over from one
	// another one by one while they are stopped in turn.
	r.t.Cleanup(func() {
		r.stopAll.Do(func() {
			for _, s := range r.reps {
				if !s.Exited() {
					_ = s.cmd.Process.Signal(syscall.SIGTERM)
				}
			}
			// Each replica's own cleanup sends SIGKILL past its grace.
			for _, s := range r.reps {
				s.ExitCode(10 * time.Second)
			}
		})
	})
	return s
}

// flStatus is GET /api/v1/fleet.
type flStatus struct {
	Enabled      bool    `json:"enabled"`
	ReplicaID    string  `json:"replica_id"`
	LeaseSeconds float64 `json:"lease_seconds"`
	Replicas     []struct {
		ID            string    `json:"id"`
		Cameras       []string  `json:"cameras"`
		MaxCameras    int       `json:"max_cameras"`
		LastHeartbeat time.Time `json:"last_heartbeat"`
		Self          bool      `json:"self"`
	} `json:"replicas"`
	Cameras []struct {
		ID       string  `json:"id"`
		Owner    string  `json:"owner"`
		Epoch    uint64  `json:"epoch"`
		LeaseTTL float64 `json:"lease_ttl_seconds"`
	} `json:"cameras"`
}

// replicaIDs are the live replicas the answer lists, sorted.
func (st flStatus) replicaIDs() []string {
	var ids []string
	for _, m := range st.Replicas {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

// shares is how many cameras each live replica says it holds.
func (st flStatus) shares() map[string]int {
	out := map[string]int{}
	for _, m := range st.Replicas {
		out[m.ID] = len(m.Cameras)
	}
	return out
}

// tryFleet is GET /api/v1/fleet for polls: false when it does not answer
// 200 with JSON.
func (s *service) tryFleet() (flStatus, error) {
	var st flStatus
	code, body, err := fetch(s.HTTP + "/api/v1/fleet")
	if err != nil {
		return st, err
	}
	if code != 200 {
		return st, fmt.Errorf("GET /api/v1/fleet: %d %s", code, body)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("GET /api/v1/fleet: %v: %s", err, body)
	}
	return st, nil
}

// flHolder is a camera's lease: its owner and epoch.
type flHolder struct {
	Owner string
	Epoch uint64
}

// flPlacement is a stable placement: the lease of every camera, the fleet
// as one replica answered it, and when it was seen stable.
type flPlacement struct {
	Leases map[string]flHolder
	Status flStatus
	At     time.Time
}

// owned returns the cameras replica id holds, sorted.
func (p flPlacement) owned(id string) []string {
	var out []string
	for cam, h := range p.Leases {
		if h.Owner == id {
			out = append(out, cam)
		}
	}
	slices.Sort(out)
	return out
}

// counts is how many cameras each of ids holds.
func (p flPlacement) counts(ids ...string) map[string]int {
	out := map[string]int{}
	for _, id := range ids {
		out[id] = len(p.owned(id))
	}
	return out
}

// waitStable waits until the fleet of the replicas live is settled: each
// of them lists exactly live as the fleet's replicas; every camera's lease
// is held by one of them, the one whose heartbeat lists it, and by no
// other heartbeat; each camera's entries of the last second are all of
// that owner and epoch; and no lease has changed for flHold.
func (r *flRig) waitStable(within time.Duration, live ...string) flPlacement {
	r.t.Helper()
	want := slices.Sorted(slices.Values(live))
	deadline := time.Now().Add(within)
	var prev map[string]flHolder
	var since time.Time
	why := "not polled"
	for {
		p, problem := r.settled(want)
		switch {
		case problem != "":
			why, prev = problem, nil
		case prev == nil || !maps.Equal(prev, p.Leases):
			why, prev, since = "the leases changed", p.Leases, time.Now()
		case time.Since(since) >= flHold:
			p.At = time.Now()
			return p
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the fleet of %v did not settle within %s: %s", want, within, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// settled is one poll of waitStable: the placement, or what is not
// settled yet.
func (r *flRig) settled(live []string) (flPlacement, string) {
	p := flPlacement{Leases: map[string]flHolder{}}
	for i, id := range live {
		st, err := r.reps[id].tryFleet()
		if err != nil {
			return p, fmt.Sprintf("%s: %v", id, err)
		}
		if got := st.replicaIDs(); !slices.Equal(got, live) {
			return p, fmt.Sprintf("%s lists replicas %v", id, got)
		}
		if i == 0 {
			p.Status = st
		}
	}
	beats := map[string]string{} // camera -> the replica whose heartbeat lists it
	for _, m := range p.Status.Replicas {
		for _, cam := range m.Cameras {
			if other, dup := beats[cam]; dup {
				return p, fmt.Sprintf("%s is in the heartbeats of %s and %s", cam, other, m.ID)
			}
			beats[cam] = m.ID
		}
	}
	if len(p.Status.Cameras) != len(r.ids) {
		return p, fmt.Sprintf("/api/v1/fleet lists %d cameras", len(p.Status.Cameras))
	}
	recent := time.Now().Add(-time.Second)
	for _, c := range p.Status.Cameras {
		if !slices.Contains(live, c.Owner) {
			return p, fmt.Sprintf("%s's lease is held by %q", c.ID, c.Owner)
		}
		if beats[c.ID] != c.Owner {
			return p, fmt.Sprintf("%s's lease is %s's, the heartbeats say %q", c.ID, c.Owner, beats[c.ID])
		}
		es := r.rec.since(c.ID, recent)
		if len(es) == 0 {
			return p, fmt.Sprintf("%s: no entry in the last second", c.ID)
		}
		for _, e := range es {
			if e.Owner != c.Owner || e.Epoch != c.Epoch {
				return p, fmt.Sprintf("%s: entry %s of %s epoch %d, the lease is %s epoch %d", c.ID, e.ID, e.Owner, e.Epoch, c.Owner, c.Epoch)
			}
		}
		p.Leases[c.ID] = flHolder{c.Owner, c.Epoch}
	}
	return p, ""
}

// flEntry is what the recorder keeps of a stream entry.
type flEntry struct {
	At    time.Time // the id's milliseconds: Redis's clock, this machine's
	ID    string
	Owner string
	Epoch uint64 // 0: missing or not a number
}

// flRecorder reads every new entry of the cameras' streams every 50 ms,
// keeping the id, owner and epoch of each. A Lua script picks those out in
// Redis, so that the frames' pixels never cross the wire. It is sent
// with EVAL, never EVALSHA, so that its calls count with the frame writes
// (cmdstat_eval), never as the coordination's commands. It rides out Redis restarts: a failed read is tried again.
type flRecorder struct {
	c    *redis.Client
	ids  []string
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	last map[string]string // the newest id read, per camera
	got  map[string][]flEntry
}

// flScan returns, for each stream KEYS[k], the entries after ARGV[k] as
// {id, owner, epoch}; owner and epoch are the entry's last fields.
var flScan = redis.NewScript(`
local out = {}
for k = 1, #KEYS do
  local rows = {}
  for _, e in ipairs(redis.call('XRANGE', KEYS[k], ARGV[k], '+', 'COUNT', 2000)) do
    local f, owner, epoch = e[2], '', ''
    for i = #f - 1, 1, -2 do
      if f[i] == 'owner' then owner = f[i + 1] elseif f[i] == 'epoch' then epoch = f[i + 1] end
      if owner ~= '' and epoch ~= '' then break end
    end
    rows[#rows + 1] = {e[1], owner, epoch}
  end
  out[k] = rows
end
return out
`)

func flRecord(t *testing.T, rd *testenv.Redis, ids []string) *flRecorder {
	rec := &flRecorder{c: rd.Client(t), ids: ids, stop: make(chan struct{}), done: make(chan struct{}),
		last: map[string]string{}, got: map[string][]flEntry{}}
	for _, id := range ids {
		rec.last[id] = "-"
	}
	go rec.run()
	t.Cleanup(func() { close(rec.stop); <-rec.done })
	return rec
}

func (rec *flRecorder) run() {
	defer close(rec.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	keys := make([]string, len(rec.ids))
	for i, id := range rec.ids {
		keys[i] = streamKey(id)
	}
	for {
		select {
		case <-rec.stop:
			return
		case <-tick.C:
		}
		rec.mu.Lock()
		args := make([]any, len(rec.ids))
		for i, id := range rec.ids {
			args[i] = rec.last[id]
		}
		rec.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		res, err := flScan.Eval(ctx, rec.c, keys, args...).Slice()
		cancel()
		if err != nil {
			continue // Redis down or restarting: read again next tick
		}
		rec.mu.Lock()
		for i, id := range rec.ids {
			rows, _ := res[i].([]any)
			for _, row := range rows {
				f, _ := row.([]any)
				if len(f) != 3 {
					continue
				}
				eid, _ := f[0].(string)
				owner, _ := f[1].(string)
				epochText, _ := f[2].(string)
				epoch, _ := strconv.ParseUint(epochText, 10, 64)
				ms, _, _ := strings.Cut(eid, "-")
				v, _ := strconv.ParseInt(ms, 10, 64)
				rec.got[id] = append(rec.got[id], flEntry{At: time.UnixMilli(v), ID: eid, Owner: owner, Epoch: epoch})
				rec.last[id] = "(" + eid
			}
		}
		rec.mu.Unlock()
	}
}

// all returns every entry of cam recorded so far, in stream order.
func (rec *flRecorder) all(cam string) []flEntry {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.got[cam])
}

// since returns cam's entries added at or after from.
func (rec *flRecorder) since(cam string, from time.Time) []flEntry {
	es := rec.all(cam)
	i, _ := slices.BinarySearchFunc(es, from, func(e flEntry, t time.Time) int { return e.At.Compare(t) })
	return es[i:]
}

// first returns cam's first entry added at or after from for which ok
// holds, waiting up to within for it.
func (rec *flRecorder) first(cam string, from time.Time, within time.Duration, ok func(flEntry) bool) (flEntry, bool) {
	deadline := time.Now().Add(within)
	for {
		for _, e := range rec.since(cam, from) {
			if ok(e) {
				return e, true
			}
		}
		if time.Now().After(deadline) {
			return flEntry{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flCheckOrder asserts that cam was captured by one replica at a time
// along es: every entry names an owner and an epoch, the epochs never
// decrease, and each epoch belongs to one owner. (An old owner's entry
// after a new owner's, interleaved, has a lower epoch than the one before
// it.) It returns the (epoch, owner) runs seen, for the log.
func flCheckOrder(t assert.TestingT, cam string, es []flEntry) string {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	var runs []string
	owners := map[uint64]string{}
	var prev flEntry
	for i, e := range es {
		if !assert.True(t, e.Owner != "" && e.Epoch > 0, "%s: entry %s has owner %q epoch %d", cam, e.ID, e.Owner, e.Epoch) {
			break
		}
		if i > 0 && !assert.GreaterOrEqual(t, e.Epoch, prev.Epoch,
			"%s: entry %s (%s epoch %d) after %s (%s epoch %d): two owners' entries interleave", cam, e.ID, e.Owner, e.Epoch, prev.ID, prev.Owner, prev.Epoch) {
			break
		}
		if o, seen := owners[e.Epoch]; seen && !assert.Equal(t, o, e.Owner, "%s: epoch %d written by %s and %s (entry %s)", cam, e.Epoch, o, e.Owner, e.ID) {
			break
		}
		owners[e.Epoch] = e.Owner
		if i == 0 || e.Epoch != prev.Epoch {
			runs = append(runs, fmt.Sprintf("%s@%d", e.Owner, e.Epoch))
		}
		prev = e
	}
	return strings.Join(runs, " ")
}

// checkAllOrder is flCheckOrder for every camera over the entries added at
// or after from, failing when a camera has none.
func (r *flRig) checkAllOrder(from time.Time) {
	r.t.Helper()
	for _, cam := range r.ids {
		es := r.rec.since(cam, from)
		require.NotEmpty(r.t, es, "%s: no entry recorded since %s", cam, from.Format(time.StampMilli))
		r.t.Logf("%s: %d entries, owner@epoch runs: %s", cam, len(es), flCheckOrder(r.t, cam, es))
	}
}

// flSpread is the largest share minus the smallest.
func flSpread(shares map[string]int) int {
	lo, hi := -1, -1
	for _, n := range shares {
		if lo < 0 || n < lo {
			lo = n
		}
		if n > hi {
			hi = n
		}
	}
	return hi - lo
}

// flHandoff is one fleet log line about a camera changing hands.
type flHandoff struct {
	Time      time.Time `json:"time"`
	Msg       string    `json:"msg"`
	ReplicaID string    `json:"replica_id"`
	CameraID  string    `json:"camera_id"`
	Epoch     uint64    `json:"epoch"`
	Reason    string    `json:"reason"`
}

// flLogged returns replica s's lines with message msg ("fleet: camera
// acquired", "fleet: camera released"), logged at or after from.
func flLogged(t *testing.T, s *service, msg string, from time.Time) []flHandoff {
	t.Helper()
	var out []flHandoff
	for _, l := range logged(s.Output(), msg, "") {
		if l.Time.Before(from) {
			continue
		}
		var h flHandoff
		l.decode(t, &h)
		out = append(out, h)
	}
	return out
}

// flCommandStats returns the calls of each command, INFO commandstats.
func flCommandStats(t *testing.T, c *redis.Client) map[string]int64 {
	t.Helper()
	info, err := c.Info(ctxT(t, 5*time.Second), "commandstats").Result()
	require.NoError(t, err, "INFO commandstats")
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		require.NoError(t, err, "commandstats line %q", line)
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}
