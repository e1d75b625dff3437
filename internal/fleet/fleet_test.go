package fleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/capture"
	"gstcapture/internal/config"
	"gstcapture/internal/health"
	"gstcapture/internal/testenv"
)

// fakeService stands in for the capture service: it records which
// cameras the fleet runs here and which it marked lost.
type fakeService struct {
	mu      sync.Mutex
	running []string
	lost    []string
	share   float64
}

func (s *fakeService) Apply(cams []config.Camera) (capture.Changes, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = s.running[:0]
	for _, c := range cams {
		s.running = append(s.running, c.ID)
	}
	sort.Strings(s.running)
	return capture.Changes{}, nil
}

func (s *fakeService) Restart(string) error      { return nil }
func (s *fakeService) Check(config.Camera) error { return nil }
func (s *fakeService) SetFleetShare(f float64)   { s.mu.Lock(); s.share = f; s.mu.Unlock() }
func (s *fakeService) Lost(id string)            { s.mu.Lock(); s.lost = append(s.lost, id); s.mu.Unlock() }
func (s *fakeService) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.running)
}
func (s *fakeService) LostIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lost)
}
func (s *fakeService) Share() float64     { s.mu.Lock(); defer s.mu.Unlock(); return s.share }
func (s *fakeService) Has(id string) bool { return slices.Contains(s.Running(), id) }
func (s *fakeService) Count() int         { return len(s.Running()) }
func (s *fakeService) clearLost()         { s.mu.Lock(); s.lost = nil; s.mu.Unlock() }

// recorder counts the fleet's hand-offs.
type recorder struct {
	mu       sync.Mutex
	handoffs map[string]int // "in new", "out lost" ...
	failures int
	commands int
}

func (r *recorder) FleetOwned(int, int) {}
func (r *recorder) FleetReplicas(int)   {}
func (r *recorder) FleetHandoff(dir, reason string) {
	r.mu.Lock()
	r.handoffs[dir+" "+reason]++
	r.mu.Unlock()
}
func (r *recorder) FleetRenewFailure()  { r.mu.Lock(); r.failures++; r.mu.Unlock() }
func (r *recorder) FleetCommands(n int) { r.mu.Lock(); r.commands += n; r.mu.Unlock() }
func (r *recorder) sent() int           { r.mu.Lock(); defer r.mu.Unlock(); return r.commands }
func (r *recorder) count(k string) int  { r.mu.Lock(); defer r.mu.Unlock(); return r.handoffs[k] }

// replica is one Fleet running against a real redis-server.
type replica struct {
	*Fleet
	svc    *fakeService
	rec    *recorder
	cancel context.CancelFunc
	done   chan struct{}
}

func cameras(n int) []config.Camera {
	cams := make([]config.Camera, n)
	for i := range cams {
		cams[i] = config.Camera{ID: fmt.Sprintf("cam%d", i+1)}
	}
	return cams
}

func startReplica(t *testing.T, client redis.UniversalClient, id string, lease time.Duration, maxCams int, cams []config.Camera) *replica {
	t.Helper()
	cfg := &config.Config{
		Redis:   config.Redis{Stream: "frames:{camera_id}"},
		Fleet:   config.Fleet{Enabled: true, ReplicaID: id, Lease: lease, MaxCameras: maxCams, Key: "gstcapture:fleet"},
		Cameras: cams,
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	f, err := New(cfg, client, log, Options{Timeout: 500 * time.Millisecond})
	require.NoError(t, err)
	r := &replica{Fleet: f, svc: &fakeService{}, rec: &recorder{handoffs: map[string]int{}}, done: make(chan struct{})}
	f.Attach(r.svc, r.rec)
	_, err = f.Apply(cams)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { defer close(r.done); f.Run(ctx) }()
	t.Cleanup(r.crash)
	return r
}

// crash stops the replica's rounds without releasing anything.
func (r *replica) crash() {
	r.cancel()
	<-r.done
}

// shutdown is gstcapture's SIGTERM: the rounds stop, then the leases go.
func (r *replica) shutdown() {
	r.crash()
	r.Release(context.Background())
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// waitSplit waits until the replicas run every camera of all exactly
// once, their shares differing by at most one.
func waitSplit(t *testing.T, within time.Duration, all []config.Camera, rs ...*replica) {
	t.Helper()
	var last string
	ok := assert.Eventually(t, func() bool {
		seen := map[string]int{}
		counts := make([]int, len(rs))
		for i, r := range rs {
			for _, id := range r.svc.Running() {
				seen[id]++
			}
			counts[i] = r.svc.Count()
		}
		last = fmt.Sprint(counts, seen)
		if len(seen) != len(all) {
			return false
		}
		for _, n := range seen {
			if n != 1 {
				return false
			}
		}
		return slices.Max(counts)-slices.Min(counts) <= 1
	}, within, 10*time.Millisecond)
	require.True(t, ok, "cameras not split once each over the replicas: %s", last)
}

func TestReplicasShareCamerasAndLeasesMatch(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := rd.Client(t)
	all := cameras(7)
	a := startReplica(t, rc, "a", 2*time.Second, 0, all)
	b := startReplica(t, rc, "b", 2*time.Second, 0, all)
	waitSplit(t, 5*time.Second, all, a, b)

	// What runs is what Redis's leases say; every replica answers the same.
	st, err := a.Status(context.Background())
	require.NoError(t, err)
	require.Len(t, st.Cameras, len(all))
	owners := map[string][]string{}
	for _, c := range st.Cameras {
		owners[c.Owner] = append(owners[c.Owner], c.ID)
		assert.NotZero(t, c.Epoch, c.ID)
		assert.Greater(t, c.LeaseTTLSeconds, 0.0, c.ID)
	}
	assert.Equal(t, a.svc.Running(), owners["a"])
	assert.Equal(t, b.svc.Running(), owners["b"])
	stB, err := b.Status(context.Background())
	require.NoError(t, err)
	for i, c := range stB.Cameras {
		assert.Equal(t, [2]any{st.Cameras[i].Owner, st.Cameras[i].Epoch}, [2]any{c.Owner, c.Epoch}, c.ID)
	}
	// Each replica lists the members of its newest heartbeat (every lease/3).
	assert.Eventually(t, func() bool {
		st, err := a.Status(context.Background())
		if err != nil || len(st.Replicas) != 2 {
			return false
		}
		for _, m := range st.Replicas {
			if m.Self != (m.ID == "a") || m.LastHeartbeat.IsZero() {
				return false
			}
		}
		return true
	}, time.Second, 20*time.Millisecond, "a does not list both replicas")
	assert.InDelta(t, float64(a.svc.Count())/float64(len(all)), a.svc.Share(), 1e-9, "the publisher's budget share is the cameras held")

	// A restart of a camera held elsewhere names its owner.
	other := b.svc.Running()[0]
	err = a.Restart(other)
	var ce *health.CameraError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, http.StatusConflict, ce.Status)
	assert.Contains(t, ce.Message, `replica "b"`)
	assert.ErrorIs(t, a.Restart("nope"), capture.ErrUnknownCamera)

	// The leases stay put over several renewals: no camera moves.
	before := a.svc.Running()
	time.Sleep(2500 * time.Millisecond)
	assert.Equal(t, before, a.svc.Running())
	assert.Zero(t, a.rec.count("out lost")+b.rec.count("out lost"), "no lease lost in steady state")
}

func TestShutdownHandsOverAtOnce(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := rd.Client(t)
	all := cameras(6)
	const lease = 5 * time.Second
	a := startReplica(t, rc, "a", lease, 0, all)
	b := startReplica(t, rc, "b", lease, 0, all)
	waitSplit(t, 8*time.Second, all, a, b)
	mine := a.svc.Running()
	epochs := map[string]uint64{}
	st, err := a.Status(context.Background())
	require.NoError(t, err)
	for _, c := range st.Cameras {
		epochs[c.ID] = c.Epoch
	}

	released := b.rec.count("in released")
	t0 := time.Now()
	a.shutdown()
	require.Eventually(t, func() bool { return b.svc.Count() == len(all) }, lease, 5*time.Millisecond,
		"b did not take a's cameras: %v", b.svc.Running())
	took := time.Since(t0)
	t.Logf("handover after release: %s for %d cameras (lease %s)", took.Round(time.Millisecond), len(mine), lease)
	assert.Less(t, took, lease/2, "a released camera is taken on the release event, not when a lease runs out")
	assert.Equal(t, len(mine), b.rec.count("in released")-released)
	assert.Equal(t, len(mine), a.rec.count("out shutdown"))

	st, err = b.Status(context.Background())
	require.NoError(t, err)
	for _, c := range st.Cameras {
		assert.Equal(t, "b", c.Owner, c.ID)
		if slices.Contains(mine, c.ID) {
			assert.Equal(t, epochs[c.ID]+1, c.Epoch, "%s: the new owner's epoch is the next one", c.ID)
		} else {
			assert.Equal(t, epochs[c.ID], c.Epoch, "%s: a camera that stays keeps its epoch", c.ID)
		}
	}
	assert.Len(t, st.Replicas, 1, "a left the replicas")
}

func TestCrashedReplicasCamerasMoveWhenTheLeaseRunsOut(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := rd.Client(t)
	all := cameras(4)
	const lease = 2 * time.Second
	a := startReplica(t, rc, "a", lease, 0, all)
	b := startReplica(t, rc, "b", lease, 0, all)
	waitSplit(t, 5*time.Second, all, a, b)

	t0 := time.Now()
	a.crash()
	require.Eventually(t, func() bool { return b.svc.Count() == len(all) }, lease+3*time.Second, 5*time.Millisecond,
		"b did not take a's cameras: %v", b.svc.Running())
	took := time.Since(t0)
	t.Logf("takeover after a crash: %s (lease %s)", took.Round(time.Millisecond), lease)
	assert.GreaterOrEqual(t, took, lease*2/3, "taken before the crashed replica's lease could run out")
	assert.Equal(t, 2, b.rec.count("in expired"))
}

func TestMaxCameras(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := rd.Client(t)
	all := cameras(6)
	a := startReplica(t, rc, "a", 2*time.Second, 1, all)
	b := startReplica(t, rc, "b", 2*time.Second, 0, all)
	// Until the replicas see each other's heartbeats, they may disagree.
	require.Eventually(t, func() bool { return a.svc.Count() == 1 && b.svc.Count() == 5 }, 5*time.Second, 10*time.Millisecond,
		"a takes max_cameras (1), b the rest: %v %v", a.svc.Running(), b.svc.Running())
	time.Sleep(time.Second)
	assert.Equal(t, 1, a.svc.Count(), "a takes no more than max_cameras")
	assert.Equal(t, 5, b.svc.Count())
}

func TestCameraSetChanges(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := rd.Client(t)
	all := cameras(4)
	a := startReplica(t, rc, "a", 2*time.Second, 0, all)
	b := startReplica(t, rc, "b", 2*time.Second, 0, all)
	waitSplit(t, 5*time.Second, all, a, b)

	// Both replicas read the same set (a file, the camera API's hash).
	more := cameras(6)
	for _, r := range []*replica{a, b} {
		_, err := r.Apply(more)
		require.NoError(t, err)
	}
	waitSplit(t, 5*time.Second, more, a, b)

	fewer := more[2:]
	gone := append(a.svc.Running(), b.svc.Running()...)
	for _, r := range []*replica{a, b} {
		_, err := r.Apply(fewer)
		require.NoError(t, err)
	}
	waitSplit(t, 5*time.Second, fewer, a, b)
	for _, id := range []string{"cam1", "cam2"} {
		assert.Contains(t, gone, id)
		assert.Eventually(t, func() bool { return rc.Exists(context.Background(), a.keys(id).Lease).Val() == 0 },
			2*time.Second, 10*time.Millisecond, "%s: a removed camera's lease is released", id)
	}
	assert.Equal(t, 2, a.rec.count("out removed")+b.rec.count("out removed"))
}

func TestLostLeaseStopsTheCamera(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := rd.Client(t)
	all := cameras(2)
	a := startReplica(t, rc, "a", 2*time.Second, 0, all)
	require.Eventually(t, func() bool { return a.svc.Count() == 2 }, 5*time.Second, 10*time.Millisecond)

	// Another owner took cam1 behind a's back (as a replica that saw a's
	// lease run out while a was paused would): a higher epoch and a lease.
	ctx := context.Background()
	k := a.keys("cam1")
	require.NoError(t, rc.Set(ctx, k.Epoch, "9 x held", 0).Err())
	require.NoError(t, rc.Set(ctx, k.Lease, "x 9", time.Minute).Err())
	require.Eventually(t, func() bool { return !a.svc.Has("cam1") }, 3*time.Second, 10*time.Millisecond,
		"a keeps capturing a camera whose lease another replica holds")
	assert.Equal(t, []string{"cam1"}, a.svc.LostIDs(), "its ring is discarded, not flushed under a lease it lost")
	assert.True(t, a.svc.Has("cam2"))
	assert.Equal(t, 1, a.rec.count("out lost"))
	time.Sleep(time.Second)
	assert.False(t, a.svc.Has("cam1"), "a does not take back a lease another replica holds")
	assert.Equal(t, "x 9", rc.Get(ctx, k.Lease).Val())

	// A write refused by Redis (publish.Fence.Lost) stops it too.
	a.svc.clearLost()
	tok, ok := a.Token("cam2")
	require.True(t, ok)
	a.Lost("cam2", tok.Epoch)
	require.Eventually(t, func() bool { return slices.Contains(a.svc.LostIDs(), "cam2") }, 2*time.Second, 10*time.Millisecond,
		"a write refused under the lease does not stop the camera")
	// Nobody else holds cam2, so a takes it again, under a new epoch.
	require.Eventually(t, func() bool {
		t2, ok := a.Token("cam2")
		return ok && t2.Epoch > tok.Epoch && a.svc.Has("cam2")
	}, 3*time.Second, 10*time.Millisecond)
}

// TestSelfFenceBeforeTheLeaseEnds cuts the replica off from Redis: it
// stops its cameras before Redis's lease can run out, so no other replica
// can take over while this one still captures.
func TestSelfFenceBeforeTheLeaseEnds(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := rd.Client(t)
	all := cameras(3)
	const lease = 3 * time.Second
	a := startReplica(t, rc, "a", lease, 0, all)
	require.Eventually(t, func() bool { return a.svc.Count() == 3 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(lease / 2)

	t0 := time.Now()
	rd.Stop()
	require.Eventually(t, func() bool { return a.svc.Count() == 0 }, lease, 5*time.Millisecond,
		"a keeps capturing without Redis: %v", a.svc.Running())
	stopped := time.Since(t0)
	t.Logf("self-fenced %s after Redis went away (lease %s, margin %s)", stopped.Round(time.Millisecond), lease, lease/5)
	// Its last renewal was sent before t0, so Redis's lease runs at least
	// until t0 + lease; the margin must keep the stop before that.
	assert.Less(t, stopped, lease-lease/10, "stopped too close to the end of the lease")
	lost := a.svc.LostIDs()
	sort.Strings(lost)
	assert.Equal(t, []string{"cam1", "cam2", "cam3"}, lost)
	assert.Positive(t, a.rec.failures, "renewal failures are counted")

	// Redis back (empty, no persistence): the replica takes its cameras again.
	rd.Restart(t)
	require.Eventually(t, func() bool { return a.svc.Count() == 3 }, 3*lease, 10*time.Millisecond,
		"a did not take its cameras again after Redis came back")
	assert.True(t, a.Joined())
}

func TestTokenFollowsTheLease(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := rd.Client(t)
	a := startReplica(t, rc, "a", 2*time.Second, 0, cameras(1))
	require.Eventually(t, func() bool { return a.svc.Count() == 1 }, 5*time.Second, 10*time.Millisecond)
	tok, ok := a.Token("cam1")
	require.True(t, ok)
	assert.Equal(t, "a", tok.Owner)
	assert.Equal(t, uint64(1), tok.Epoch)
	assert.Equal(t, "gstcapture:fleet:lease:{frames:cam1}", tok.Keys.Lease)
	_, ok = a.Token("cam9")
	assert.False(t, ok)
}

// TestPublishingCameraNeedsNoRenewal: a stored frame renewed the lease in
// Redis (Renewed), so a round renews only the cameras that did not
// publish, which keeps the coordination's cost off the cameras that stream.
func TestPublishingCameraNeedsNoRenewal(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := rd.Client(t)
	cfg := &config.Config{
		Redis:   config.Redis{Stream: "frames:{camera_id}"},
		Fleet:   config.Fleet{Enabled: true, ReplicaID: "a", Lease: 3 * time.Second, Key: "gstcapture:fleet"},
		Cameras: cameras(2),
	}
	f, err := New(cfg, rc, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	require.NoError(t, err)
	svc, rec := &fakeService{}, &recorder{handoffs: map[string]int{}}
	f.Attach(svc, rec)
	ctx := context.Background()
	f.loadScripts(ctx)
	f.tick(ctx) // one round, without Run: joins and acquires both
	require.Equal(t, []string{"cam1", "cam2"}, svc.Running())

	stale := time.Now().Add(-time.Second)
	f.mu.Lock()
	f.owned["cam1"].renewed, f.owned["cam2"].renewed = stale, stale
	e1 := f.owned["cam1"].epoch
	f.mu.Unlock()
	now := time.Now()
	f.Renewed("cam1", e1, now)
	f.Renewed("cam2", 99, now) // another epoch's write: not this lease
	before := rec.sent()
	f.renew(ctx)
	assert.Equal(t, 1, rec.sent()-before, "one renewal: cam2's, which did not publish")
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, now, f.owned["cam1"].renewed)
	assert.True(t, f.owned["cam2"].renewed.After(now), "cam2 renewed by the round")
}

// holeProxy forwards TCP to a target until Blackhole: from then on
// nothing passes either way and nothing is closed, as in a partition.
type holeProxy struct {
	ln   net.Listener
	hole atomic.Bool
}

func startHoleProxy(t *testing.T, target string) *holeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &holeProxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); u.Close() })
			go p.pipe(u, c)
			go p.pipe(c, u)
		}
	}()
	return p
}

func (p *holeProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if !p.hole.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}

// TestSelfFenceWhileRedisHangs: Redis stops answering without refusing
// (a partition), so every round trip waits for redis.timeout; the check
// still stops the cameras before the lease can end in Redis, where the
// other replica then takes them.
func TestSelfFenceWhileRedisHangs(t *testing.T) {
	rd := testenv.StartRedis(t)
	px := startHoleProxy(t, rd.Addr)
	cut := redis.NewClient(&redis.Options{Addr: px.ln.Addr().String(), MaxRetries: -1,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, ContextTimeoutEnabled: true})
	t.Cleanup(func() { cut.Close() })
	all := cameras(2)
	const lease = 2 * time.Second
	// A round trip may wait 2 s, longer than lease - lease/5.
	cfg := &config.Config{
		Redis:   config.Redis{Stream: "frames:{camera_id}"},
		Fleet:   config.Fleet{Enabled: true, ReplicaID: "a", Lease: lease, Key: "gstcapture:fleet"},
		Cameras: all,
	}
	f, err := New(cfg, cut, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Timeout: 2 * time.Second})
	require.NoError(t, err)
	a := &replica{Fleet: f, svc: &fakeService{}, rec: &recorder{handoffs: map[string]int{}}, done: make(chan struct{})}
	f.Attach(a.svc, a.rec)
	_, err = f.Apply(all)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() { defer close(a.done); f.Run(ctx) }()
	t.Cleanup(a.crash)
	require.Eventually(t, func() bool { return a.svc.Count() == 2 }, 5*time.Second, 10*time.Millisecond)
	b := startReplica(t, rd.Client(t), "b", lease, 0, all)
	waitSplit(t, 5*time.Second, all, a, b)
	time.Sleep(lease / 2)

	t0 := time.Now()
	px.hole.Store(true)
	require.Eventually(t, func() bool { return a.svc.Count() == 0 }, 2*lease, 5*time.Millisecond)
	stopped := time.Since(t0)
	require.Eventually(t, func() bool { return b.svc.Count() == 2 }, 2*lease+3*time.Second, 5*time.Millisecond)
	took := time.Since(t0)
	t.Logf("cut off at 0: a stopped at %s, b took over at %s (lease %s)", stopped.Round(time.Millisecond), took.Round(time.Millisecond), lease)
	assert.Less(t, stopped, took, "a still captured when b took its cameras")
	assert.Less(t, stopped, lease-lease/10, "a stopped too close to the end of its lease")
}

// TestCamerasStoredReachesTheOthers: a change of the camera API's hash
// stored through one replica makes the others read it at once.
func TestCamerasStoredReachesTheOthers(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := rd.Client(t)
	all := cameras(2)
	a := startReplica(t, rc, "a", 2*time.Second, 0, all)
	b := startReplica(t, rc, "b", 2*time.Second, 0, all)
	waitSplit(t, 5*time.Second, all, a, b)
	select {
	case <-b.CamerasChanged():
		t.Fatal("signalled before anything was stored")
	default:
	}
	a.CamerasStored()
	select {
	case <-b.CamerasChanged():
	case <-time.After(2 * time.Second):
		t.Fatal("b was not told of the change a stored")
	}
	select {
	case <-a.CamerasChanged():
		t.Fatal("a is told of its own change")
	case <-time.After(200 * time.Millisecond):
	}
}
