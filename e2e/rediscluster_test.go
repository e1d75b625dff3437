package e2e

// Redis Cluster (issue 15): gstcapture in redis.mode cluster against a real
// cluster of three masters with one replica each (testenv.StartRedisCluster).
// A master is SIGKILLed mid-run: the cameras whose streams it served resume
// once its replica is promoted, the others go on, and what gstcapture
// counts as published is exactly what the streams hold. The same holds
// when a master cuts gstcapture's connections. The fleet variant runs the
// lease scripts, which read a camera's lease keys and write its stream in
// one call, on the cluster.

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/client"
	"gstcapture/internal/lease"
	"gstcapture/internal/testenv"
)

const (
	clFPS  = 10
	clW    = 320
	clH    = 240
	clSize = "320x240"
	// clResume bounds the time from the kill to a camera's first entry on
	// the promoted replica: the cluster's failover (cluster-node-timeout
	// and the election, 3-4 s here) and the client finding the new master.
	// go-redis's own slot map refresh, once a minute, would miss it.
	clResume = 20 * time.Second
	// clAfterPromotion bounds the time from the cluster being whole again
	// to such a camera's first entry: gstcapture reloads the slot map
	// every second, and its retry backoff is at most 2 s.
	clAfterPromotion = 5 * time.Second
	// clFleetKey is fleet.key's default, under which the lease keys live.
	clFleetKey = "gstcapture:fleet"
)

// clRig is a cluster test's setup: the cluster, a reader of it, and camsim.
type clRig struct {
	t    *testing.T
	rc   *testenv.RedisCluster
	cc   *redis.ClusterClient
	sim  *camsim
	cams []camCfg
	ids  []string
}

// clStart starts the cluster and camsim with cams cameras.
func clStart(t *testing.T, cams int) *clRig {
	t.Helper()
	r := &clRig{t: t, rc: testenv.StartRedisCluster(t)}
	r.cc = r.rc.Client(t)
	r.sim = startCamsim(t, camsimOpts{Cameras: cams, Codec: "h264", Size: clSize, FPS: clFPS})
	r.cams = simCams(r.sim, cams)
	r.ids = camIDs(r.cams)
	return r
}

// config is a gstcapture on the rig's cluster capturing every camera. No
// stream is trimmed during a test (maxlen and retention far above what
// it writes), so that XLEN counts every entry ever added.
func (r *clRig) config() svcConfig {
	return svcConfig{
		Redis: r.rc.URL, RedisMode: "cluster", MaxLen: 100000, Retention: "1h",
		AnyReady: true, Shutdown: "10s",
		FPS: clFPS, StallTimeout: "5s", Reconnect: reconnect{"500ms", "2s"},
		Cameras: r.cams,
	}
}

// counts returns XLEN and XINFO STREAM entries-added of cam's stream.
func (r *clRig) counts(cam string) (xlen, added int64) {
	r.t.Helper()
	ctx := ctxT(r.t, 10*time.Second)
	info, err := r.cc.XInfoStream(ctx, streamKey(cam)).Result()
	require.NoError(r.t, err, "XINFO STREAM %s", streamKey(cam))
	return info.Length, info.EntriesAdded
}

// waitEntries waits until every camera's stream holds more than n entries.
func (r *clRig) waitEntries(n int64, within time.Duration) {
	r.t.Helper()
	require.Eventually(r.t, func() bool {
		for _, cam := range r.ids {
			if l, err := r.cc.XLen(ctxT(r.t, 5*time.Second), streamKey(cam)).Result(); err != nil || l <= n {
				return false
			}
		}
		return true
	}, within, 200*time.Millisecond, "every stream of %v holding more than %d entries", r.ids, n)
}

// entryAfter returns cam's first entry added at or after at, if any.
func (r *clRig) entryAfter(cam string, at time.Time) (redis.XMessage, bool) {
	msgs, err := r.cc.XRangeN(ctxT(r.t, 5*time.Second), streamKey(cam), strconv.FormatInt(at.UnixMilli(), 10), "+", 1).Result()
	if err != nil || len(msgs) == 0 {
		return redis.XMessage{}, false
	}
	return msgs[0], true
}

// countBetween counts cam's entries added in [from, to].
func (r *clRig) countBetween(cam string, from, to time.Time) int {
	r.t.Helper()
	msgs, err := r.cc.XRange(ctxT(r.t, 10*time.Second), streamKey(cam),
		strconv.FormatInt(from.UnixMilli(), 10), strconv.FormatInt(to.UnixMilli(), 10)).Result()
	require.NoError(r.t, err, "XRANGE %s", streamKey(cam))
	return len(msgs)
}

// clFailover is what killing a master did.
type clFailover struct {
	victim     *testenv.Redis
	hit, spare []string             // cameras whose streams it served, and the others
	kill       time.Time            // SIGKILL
	ready      time.Time            // the cluster was whole again (WaitReady)
	resumed    map[string]time.Time // each hit camera's first entry after the kill
}

// failover SIGKILLs the master serving cam's stream, after its replica has
// everything it acknowledged (RedisCluster.KillMaster), and waits until
// the cluster is whole again and every camera it served has an entry
// written after the kill, within clResume.
func (r *clRig) failover(cam string) clFailover {
	r.t.Helper()
	f := clFailover{resumed: map[string]time.Time{}}
	var replicas []*testenv.Redis
	f.victim, replicas = r.rc.MasterOf(r.t, streamKey(cam))
	require.Len(r.t, replicas, 1, "%s: the master of %s has one replica", f.victim.Addr, streamKey(cam))
	for _, id := range r.ids {
		if m, _ := r.rc.MasterOf(r.t, streamKey(id)); m == f.victim {
			f.hit = append(f.hit, id)
		} else {
			f.spare = append(f.spare, id)
		}
	}
	require.NotEmpty(r.t, f.spare, "a camera whose stream another master serves (cameras %v)", r.ids)

	f.kill = r.rc.KillMaster(r.t, f.victim)
	r.rc.WaitReady(r.t, clResume)
	f.ready = time.Now()
	m, _ := r.rc.MasterOf(r.t, streamKey(cam))
	require.Equal(r.t, replicas[0], m, "the replica %s took over %s", replicas[0].Addr, streamKey(cam))

	deadline := f.kill.Add(clResume)
	for len(f.resumed) < len(f.hit) {
		for _, id := range f.hit {
			if _, done := f.resumed[id]; done {
				continue
			}
			if e, ok := r.entryAfter(id, f.kill); ok {
				f.resumed[id] = entryTime(r.t, e.ID)
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("cameras %v: no entry within %s of the kill of master %s (resumed: %v); the cluster was whole again after %s",
				f.hit, clResume, f.victim.Addr, f.resumed, f.ready.Sub(f.kill))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, id := range f.hit {
		r.t.Logf("%s: master %s SIGKILLed; cluster whole again after %.2f s; first entry on the promoted replica %s %.2f s after the kill",
			id, f.victim.Addr, f.ready.Sub(f.kill).Seconds(), replicas[0].Addr, f.resumed[id].Sub(f.kill).Seconds())
		assert.Less(r.t, f.resumed[id].Sub(f.ready), clAfterPromotion, "%s: first entry after the cluster was whole again", id)
	}
	// The other masters' cameras went on while the cluster failed over,
	// but for the second or so in which the whole cluster refuses writes
	// (CLUSTERDOWN: a master is failed and not yet replaced).
	for _, id := range f.spare {
		n := r.countBetween(id, f.kill, f.ready)
		r.t.Logf("%s (another master): %d entries during the failover (%.1f s)", id, n, f.ready.Sub(f.kill).Seconds())
		assert.Positive(r.t, n, "%s: publishing goes on while another master fails over", id)
	}
	return f
}

// stopAll sends SIGTERM to every service at once (replicas of a fleet
// stopped one by one would take each other's cameras over) and requires a
// clean exit of each.
func stopAll(t *testing.T, svcs ...*service) {
	t.Helper()
	for _, s := range svcs {
		s.Signal(t, syscall.SIGTERM)
	}

	for _, s := range svcs {
		require.Equal(t, 0, s.ExitCode(30*time.Second), "exit status after SIGTERM; output:\n%s", tail(s.Output(), 3000))
		assert.Empty(t, lines(s.Output(), "CROSSSLOT"), "a command or script touched keys of several slots")
	}
}

// TestRedisClusterFailover: one gstcapture publishes three cameras to the
// cluster; the master serving two of the streams is SIGKILLed. Those two
// resume within clResume on the promoted replica, the third never stops,
// and after SIGTERM every camera's final accounting balances with
// published equal to the entries its stream holds (XLEN, and entries-added:
// nothing trimmed, nothing stored twice, nothing acknowledged and lost).
func TestRedisClusterFailover(t *testing.T) {
	r := clStart(t, 3)
	svc := startService(t, r.config())
	r.waitEntries(20, 60*time.Second)
	v, ok := r.entryAfter(r.ids[0], time.Now().Add(-time.Second))
	require.True(t, ok, "%s: an entry in the last second", r.ids[0])
	checkEntry(t, r.ids[0], v, clW, clH)
	time.Sleep(2 * time.Second)

	f := r.failover(r.ids[0])
	require.Len(t, f.hit, 2, "cam1 and cam2 hash to one master, cam3 to another (CLUSTER KEYSLOT)")
	for _, id := range f.hit {
		v, ok := r.entryAfter(id, f.kill)
		require.True(t, ok)
		checkEntry(t, id, v, clW, clH)
	}
	time.Sleep(3 * time.Second)
	h := svc.health(t)
	assert.Equal(t, "up", h.Redis, "/health after the failover")
	stopAll(t, svc)

	r.checkPublished(svc)
}

// checkPublished checks, after svc exited, that each camera's final
// accounting balances and that its published frames are exactly the
// entries its stream holds: XLEN equals entries-added (nothing trimmed)
// and published, and no frame is in it twice.
func (r *clRig) checkPublished(svc *service) {
	r.t.Helper()
	final := finalAccounting(r.t, svc.Output(), r.ids...)
	var published, stored uint64
	for _, id := range r.ids {
		a := final[id]
		xlen, added := r.counts(id)
		r.t.Logf("%s final: captured %d published %d dropped %v; stream: XLEN %d, entries-added %d",
			id, a.Captured, a.Published, a.Dropped, xlen, added)
		checkIdentity(r.t, a)
		assert.Equal(r.t, xlen, added, "%s: nothing was trimmed, so XLEN counts every entry", id)
		assert.Len(r.t, r.entries(id), int(xlen), "%s: XRANGE", id)
		assert.Equal(r.t, uint64(xlen), a.Published, "%s: published equals the entries its stream holds", id)
		published += a.Published
		stored += uint64(xlen)
	}
	r.t.Logf("published %d frames in all, the streams hold %d", published, stored)
	assert.Equal(r.t, stored, published)
}

// TestRedisClusterConnectionsKilled: the master serving two of the
// streams closes gstcapture's connections while their XADDs are in
// flight (CLIENT KILL TYPE normal), as an output-buffer limit, a proxy or
// an operator would. To cut round trips that Redis ran but never answered,
// the master is frozen (SIGSTOP) until each camera's next XADD waits in
// its socket, the kill is queued behind them, and the master resumes: it
// runs the XADDs, then the kill, which drops their replies. Against one
// redis-server the publisher settles such round trips (publish/
// reconcile.go); on a cluster, go-redis's own retry of a cut pipeline
// must not store what Redis already ran again. After SIGTERM, published
// equals the entries each stream holds, and no frame is in a stream twice.
func TestRedisClusterConnectionsKilled(t *testing.T) {
	const cuts = 10
	r := clStart(t, 3)
	svc := startService(t, r.config())
	r.waitEntries(20, 60*time.Second)
	m, _ := r.rc.MasterOf(t, streamKey(r.ids[0]))
	rf := &redisFrames{Client: m.Client(t), t: t}
	killer := m.Client(t)
	ctx := ctxT(t, 60*time.Second)
	require.NoError(t, killer.Ping(ctx).Err())
	var killed int64
	for range cuts {
		thaw := rf.Freeze()
		time.Sleep(300 * time.Millisecond) // > 1/fps: every camera has an XADD waiting
		done := make(chan int64, 1)
		go func() {
			n, _ := killer.Do(ctx, "CLIENT", "KILL", "TYPE", "normal").Int64()
			done <- n
		}()
		time.Sleep(50 * time.Millisecond)
		thaw()
		killed += <-done
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("master %s, frozen and resumed %d times, closed %d connections", m.Addr, cuts, killed)
	require.GreaterOrEqual(t, killed, int64(cuts), "connections closed")
	time.Sleep(time.Second)
	stopAll(t, svc)
	r.checkPublished(svc)
}

// TestRedisClusterFleet: two fleet replicas share four cameras on the
// cluster, so every frame goes through the lease script (lease, epoch
// record and stream: one slot), and the master serving two of the streams
// is SIGKILLed. Those cameras resume within clResume; every entry carries
// an owner and epoch, one owner per epoch, epochs never going back; and
// each replica's final accounting of a camera equals the entries written
// under the epoch it last acquired the camera with.
func TestRedisClusterFleet(t *testing.T) {
	r := clStart(t, 4)
	replicas := []string{"c1", "c2"}
	var svcs []*service
	for _, id := range replicas {
		cfg := r.config()
		cfg.Fleet, cfg.ReplicaID, cfg.Lease = true, id, "3s"
		svcs = append(svcs, startService(t, cfg))
	}
	r.waitEntries(10, 60*time.Second)
	owners := map[string]string{}
	require.Eventually(t, func() bool {
		seen := map[string]bool{}
		for _, id := range r.ids {
			e, ok := r.entryAfter(id, time.Now().Add(-time.Second))
			if !ok {
				return false
			}
			f, err := client.Parse(streamKey(id), e.ID, e.Values)
			if err != nil {
				owners[id] = err.Error()
				return false
			}
			owners[id] = f.Owner
			seen[owners[id]] = true
		}
		return seen["c1"] && seen["c2"] && len(seen) == 2
	}, 60*time.Second, 200*time.Millisecond, "both replicas publishing (latest owners %v)", owners)
	t.Logf("owners of the latest entries: %v", owners)

	// The lease keys share the slot of their stream; the epoch record never
	// expires, so it is there for every camera.
	ctx := ctxT(t, 10*time.Second)
	for _, id := range r.ids {
		k := lease.KeysFor(clFleetKey, streamKey(id))
		var slots []int64
		for _, key := range []string{streamKey(id), k.Lease, k.Epoch} {
			s, err := r.cc.ClusterKeySlot(ctx, key).Result()
			require.NoError(t, err, "CLUSTER KEYSLOT %s", key)
			slots = append(slots, s)
		}
		assert.Equal(t, []int64{slots[0], slots[0], slots[0]}, slots, "%s: slots of %s, %s, %s", id, streamKey(id), k.Lease, k.Epoch)
		n, err := r.cc.Exists(ctx, k.Epoch).Result()
		require.NoError(t, err)
		assert.EqualValues(t, 1, n, "%s: epoch record %s", id, k.Epoch)
	}
	time.Sleep(2 * time.Second)

	f := r.failover(r.ids[0])
	require.Len(t, f.hit, 2, "cam1 and cam2 hash to one master (CLUSTER KEYSLOT)")
	time.Sleep(3 * time.Second)
	stopAll(t, svcs...)

	// Each stream: runs of entries of one owner and epoch.
	runs := map[string][]clRun{}
	for _, id := range r.ids {
		runs[id] = clRuns(r.entries(id))
		xlen, added := r.counts(id)
		var n int64
		var text []string
		for i, run := range runs[id] {
			n += run.n
			text = append(text, fmt.Sprintf("%s@%d x%d", run.owner, run.epoch, run.n))
			require.Contains(t, replicas, run.owner, "%s: entries of owner %q epoch %d", id, run.owner, run.epoch)
			require.Positive(t, run.epoch, "%s: entries of %s without an epoch", id, run.owner)
			if i > 0 {
				prev := runs[id][i-1]
				require.Greater(t, run.epoch, prev.epoch, "%s: %s@%d after %s@%d: two owners' entries interleave, or an epoch went back",
					id, run.owner, run.epoch, prev.owner, prev.epoch)
			}
		}
		t.Logf("%s: XLEN %d, entries-added %d; owner@epoch runs: %s", id, xlen, added, strings.Join(text, ", "))
		assert.Equal(t, xlen, added, "%s: nothing was trimmed", id)
		assert.Equal(t, xlen, n, "%s: XRANGE returns every entry", id)
	}

	// A replica's final accounting of a camera covers the frames it wrote
	// since it last acquired it: under that epoch.
	var published, stored int64
	for i, rep := range replicas {
		out := svcs[i].Output()
		last := map[string]uint64{}
		for _, l := range logged(out, "fleet: camera acquired", "") {
			var a struct {
				Epoch uint64 `json:"epoch"`
			}
			l.decode(t, &a)
			last[l.CameraID] = a.Epoch
		}
		final := finalAccounting(t, out)
		for id, a := range final {
			epoch, ok := last[id]
			require.True(t, ok, "%s ran %s without acquiring it", rep, id)
			var n int64
			for _, run := range runs[id] {
				if run.owner == rep && run.epoch == epoch {
					n += run.n
				}
			}
			t.Logf("%s final of %s: captured %d published %d dropped %v; entries under %s@%d: %d",
				rep, id, a.Captured, a.Published, a.Dropped, rep, epoch, n)
			checkIdentity(t, a)
			assert.Equal(t, uint64(n), a.Published, "%s: %s's published equals the entries under its epoch %d", id, rep, epoch)
			published += int64(a.Published)
			stored += n
		}
	}
	t.Logf("published %d frames in the final accountings, the streams hold %d under those epochs", published, stored)
}

// clEntry is what the tests keep of a stream entry.
type clEntry struct {
	id, frameID, owner string
	epoch              uint64 // 0: none
}

// clEntriesScript returns the entries of stream KEYS[1] as {id, frame_id,
// owner, epoch, ...}, so that the frames' pixels never leave Redis.
var clEntriesScript = redis.NewScript(`
local out, from = {}, '-'
while true do
  local rows = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 50)
  if #rows == 0 then break end
  for _, e in ipairs(rows) do
    local f, v = e[2], {frame_id = '', owner = '', epoch = ''}
    for i = 1, #f - 1, 2 do
      if v[f[i]] then v[f[i]] = f[i + 1] end
    end
    out[#out + 1] = e[1]; out[#out + 1] = v.frame_id; out[#out + 1] = v.owner; out[#out + 1] = v.epoch
    from = '(' .. e[1]
  end
end
return out
`)

// entries returns cam's whole stream, oldest first, failing when a frame
// is in it twice (a batch stored again by a retry).
func (r *clRig) entries(cam string) []clEntry {
	r.t.Helper()
	res, err := clEntriesScript.Eval(ctxT(r.t, 30*time.Second), r.cc, []string{streamKey(cam)}).StringSlice()
	require.NoError(r.t, err, "entries of %s", streamKey(cam))
	out := make([]clEntry, 0, len(res)/4)
	seen := map[string]string{}
	for i := 0; i+3 < len(res); i += 4 {
		epoch, _ := strconv.ParseUint(res[i+3], 10, 64)
		e := clEntry{id: res[i], frameID: res[i+1], owner: res[i+2], epoch: epoch}
		require.NotEmpty(r.t, e.frameID, "%s: entry %s without a frame_id", cam, e.id)
		if prev, dup := seen[e.frameID]; dup {
			assert.Failf(r.t, "a frame stored twice", "%s: frame %s in entries %s and %s", cam, e.frameID, prev, e.id)
		}
		seen[e.frameID] = e.id
		out = append(out, e)
	}
	return out
}

// clRun is a run of consecutive entries of one owner and epoch.
type clRun struct {
	owner string
	epoch uint64
	n     int64
}

// clRuns cuts es into runs of one owner and epoch.
func clRuns(es []clEntry) []clRun {
	var out []clRun
	for _, e := range es {
		if k := len(out) - 1; k >= 0 && out[k].owner == e.owner && out[k].epoch == e.epoch {
			out[k].n++
			continue
		}
		out = append(out, clRun{e.owner, e.epoch, 1})
	}
	return out
}
