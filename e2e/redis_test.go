package e2e

// gstcapture against Redis set up as deployed: the compose file's ACL user,
// and a maxmemory that its defaults must fit.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/client"
	"gstcapture/internal/testenv"
)

// aclRules reads docker/redis/gstcapture.acl: its rule line(s), without
// the comments, as ACL SETUSER arguments.
func aclRules(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docker", "redis", "gstcapture.acl"))
	require.NoError(t, err)
	var rules []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			rules = append(rules, strings.Fields(line)...)
		}
	}
	require.NotEmpty(t, rules, "no rules in docker/redis/gstcapture.acl")
	return rules
}

// TestRedisACL: gstcapture works against a real redis-server as a user with
// exactly the rules the compose file gives it (docker/redis/gstcapture.acl):
// it publishes, reads maxmemory for its budget, settles the frames of
// round trips that timed out while Redis held writes, reads, stores and
// removes the camera API's cameras, and Redis's ACL LOG
// shows no command it was refused except CLIENT LIST, which it does
// without. The rules allow each
// command gstcapture sends and refuse the rest (ACL DRYRUN). Subtest
// fleet: two fleet replicas as the same user join, acquire, hand a camera
// over and back, write entries with owner and epoch, and are refused
// nothing; the user still cannot FLUSHALL or touch keys outside.
func TestRedisACL(t *testing.T) {
	const pw = "acl-test-password-0123456789"
	rd := testenv.StartRedis(t)
	admin := openFrames(t, rd)
	ctx := ctxT(t, 3*time.Minute)
	args := []any{"ACL", "SETUSER", "gstcapture", "reset", ">" + pw}
	for _, r := range aclRules(t) {
		args = append(args, r)
	}
	require.NoError(t, admin.Do(ctx, args...).Err())
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory", "200mb").Err())
	require.NoError(t, admin.Do(ctx, "ACL", "LOG", "RESET").Err())

	for _, cmd := range [][]any{
		{"XADD", "frames:cam1", "MAXLEN", "~", "10", "*", "v", "1"},
		{"XTRIM", "frames:cam1", "MAXLEN", "5"},
		{"XREVRANGE", "frames:cam1", "+", "-", "COUNT", "8"},
		{"INFO", "memory"}, {"PING"}, {"EVALSHA", "0123456789012345678901234567890123456789", "1", "frames:cam1"},
		{"HGETALL", "gstcapture:cameras"}, {"HSET", "gstcapture:cameras", "cam9", "{}"}, {"HDEL", "gstcapture:cameras", "cam9"},
		// A fleet replica's: the lease scripts (a camera's lease, epoch
		// record and stream in one script), what they call, the
		// heartbeats' hash and the events channel.
		{"EVAL", "return 1", "3", "gstcapture:fleet:lease:{frames:cam1}", "gstcapture:fleet:epoch:{frames:cam1}", "frames:cam1"},
		{"EVALSHA", "0123456789012345678901234567890123456789", "1", "gstcapture:fleet:replicas"},
		{"SCRIPT", "LOAD", "return 1"}, {"TIME"},
		{"GET", "gstcapture:fleet:lease:{frames:cam1}"}, {"PTTL", "gstcapture:fleet:lease:{frames:cam1}"},
		{"SET", "gstcapture:fleet:lease:{frames:cam1}", "r1 1", "PX", "5000"}, {"PEXPIRE", "gstcapture:fleet:lease:{frames:cam1}", "5000"},
		{"DEL", "gstcapture:fleet:lease:{frames:cam1}"}, {"SET", "gstcapture:fleet:epoch:{frames:cam1}", "1 r1 held"},
		{"HSET", "gstcapture:fleet:replicas", "r1", "x"}, {"HGETALL", "gstcapture:fleet:replicas"},
		{"HDEL", "gstcapture:fleet:replicas", "r1"}, {"PEXPIRE", "gstcapture:fleet:replicas", "50000"},
		{"PUBLISH", "gstcapture:fleet:events", "join r1"}, {"SUBSCRIBE", "gstcapture:fleet:events"},
	} {
		res, err := admin.Do(ctx, append([]any{"ACL", "DRYRUN", "gstcapture"}, cmd...)...).Text()
		require.NoError(t, err)
		assert.Equal(t, "OK", res, "gstcapture may run %v", cmd)
	}
	for _, cmd := range [][]any{
		{"FLUSHALL"}, {"CONFIG", "SET", "maxmemory", "0"}, {"KEYS", "*"}, {"DEL", "frames:cam1"},
		{"XADD", "other:cam1", "*", "v", "1"}, {"SET", "frames:x", "1"}, {"CLIENT", "KILL", "ID", "1"},
		{"XREAD", "STREAMS", "frames:cam1", "0"}, {"SUBSCRIBE", "x"},
		{"HSET", "frames:cam1", "f", "v"}, {"XADD", "gstcapture:cameras", "*", "v", "1"}, {"DEL", "gstcapture:cameras"},
		{"HSET", "other", "f", "v"},
		// Around the fleet's grants: other commands on its keys, other
		// channels, pattern subscriptions, scripts over keys outside.
		{"SET", "gstcapture:fleet:replicas", "x"}, {"DEL", "gstcapture:fleet:replicas"},
		{"XADD", "gstcapture:fleet:lease:{frames:cam1}", "*", "v", "1"}, {"HSET", "gstcapture:fleet:epoch:{frames:cam1}", "f", "v"},
		{"GET", "gstcapture:fleet:other"}, {"GET", "frames:cam1"}, {"SET", "gstcapture:cameras", "x"},
		{"EVAL", "return 1", "2", "gstcapture:fleet:lease:{frames:cam1}", "other"},
		{"PUBLISH", "other", "x"}, {"SUBSCRIBE", "gstcapture:fleet:other"}, {"PSUBSCRIBE", "gstcapture:fleet:*"},
		{"SCRIPT", "FLUSH"}, {"SCRIPT", "KILL"}, {"FUNCTION", "FLUSH"},
	} {
		res, err := admin.Do(ctx, append([]any{"ACL", "DRYRUN", "gstcapture"}, cmd...)...).Text()
		require.NoError(t, err)
		assert.NotEqual(t, "OK", res, "gstcapture must not run %v", cmd)
	}

	sim := startCamsim(t, camsimOpts{Cameras: 1, Codec: "h264", Size: "320x240", FPS: 10})
	url := fmt.Sprintf("redis://gstcapture:%s@%s/0", pw, rd.Addr)
	svc := startService(t, svcConfig{Redis: url, Retention: "1h", RedisTimeout: "500ms", AnyReady: true, FPS: 10, Cameras: simCams(sim, 1)})
	require.Eventually(t, func() bool { return admin.Len("cam1") >= 20 }, 30*time.Second, 100*time.Millisecond,
		"gstcapture publishes as the ACL user: %s", tail(svc.Output(), 2000))
	require.Eventually(t, func() bool { return svc.metrics(t).value("rtsp_redis_memory_budget_bytes") > 0 }, 40*time.Second, 200*time.Millisecond,
		"INFO memory is allowed: the budget follows maxmemory")

	// Writes held for 2 s: gstcapture's XADDs time out (redis.timeout
	// 500ms) with their frames unconfirmed, and it settles them with the
	// Lua script once Redis answers again (CLIENT LIST, tried first, is
	// refused and logged).
	require.NoError(t, admin.Do(ctx, "CLIENT", "PAUSE", "2000", "WRITE").Err())
	require.Eventually(t, func() bool { return len(lines(svc.Output(), "redis down")) > 0 }, 10*time.Second, 50*time.Millisecond,
		"the held XADDs time out")
	n0 := admin.Len("cam1")
	require.Eventually(t, func() bool { return admin.Len("cam1") >= n0+20 }, 30*time.Second, 100*time.Millisecond,
		"publishing goes on after the kills")

	// The camera API stores and removes its cameras as the ACL user.
	code, body := svc.admin(t, "PUT", "/api/v1/cameras/apicam", map[string]any{"url": sim.URL(1), "codec": "h264"})
	require.Equal(t, 201, code, "%s", body)
	require.Eventually(t, func() bool { return admin.Len("apicam") >= 5 }, 30*time.Second, 100*time.Millisecond, "the API camera publishes")
	code, body = svc.admin(t, "DELETE", "/api/v1/cameras/apicam", nil)
	require.Equal(t, 204, code, "%s", body)

	entries, err := admin.Do(ctx, "ACL", "LOG").Slice()
	require.NoError(t, err)
	var refused []string
	for _, e := range entries {
		fields, _ := e.([]any)
		rec := map[string]any{}
		for i := 0; i+1 < len(fields); i += 2 {
			k, _ := fields[i].(string)
			rec[k] = fields[i+1]
		}
		if rec["username"] == "gstcapture" && rec["object"] != "client|list" {
			refused = append(refused, fmt.Sprintf("%v %v (%v)", rec["reason"], rec["object"], rec["context"]))
		}
	}
	assert.Empty(t, refused, "Redis refused gstcapture nothing but CLIENT LIST")
	assert.NotEmpty(t, lines(svc.Output(), "redis back"), "publishing resumed after the settle")
	assert.Empty(t, lines(svc.Output(), "cannot check whether unconfirmed frames reached Redis"),
		"the settle script ran under the ACL (it reads the stream with XREVRANGE)")
	assert.NotContains(t, svc.Output(), pw, "the Redis password is never logged")
	t.Logf("ACL user gstcapture: %d entries, %d ACL LOG entries; %d 'redis down', %d 'CLIENT LIST refused', %d unconfirmed-settle lines",
		admin.Len("cam1"), len(entries), len(lines(svc.Output(), "redis down")),
		len(lines(svc.Output(), "CLIENT LIST refused")), len(lines(svc.Output(), "unconfirmed")))

	// A fleet of two replicas as the same user (fleet.key's default, which
	// the rules name): each joins, acquires cameras, writes every frame
	// through the lease script (entries end with owner and epoch), hands
	// one over when the other joins and takes it back when the other stops
	// (release, pub/sub), and Redis refuses them nothing.
	t.Run("fleet", func(t *testing.T) {
		ctx := ctxT(t, 3*time.Minute)
		svc.Stop(5 * time.Second)
		require.NoError(t, admin.Do(ctx, "ACL", "LOG", "RESET").Err())
		fsim := startCamsim(t, camsimOpts{Cameras: 2, Codec: "h264", Size: "320x240", FPS: 10})
		cams := []camCfg{{ID: "fl1", URL: fsim.URL(1)}, {ID: "fl2", URL: fsim.URL(2)}}
		replica := func(id string) *service {
			return startService(t, svcConfig{Redis: url, AnyReady: true, FPS: 10, Fleet: true, ReplicaID: id, Lease: "2s", Cameras: cams})
		}
		// owner and epoch of a camera's newest entry ("" and 0 without one).
		newest := func(cam string) (string, uint64) {
			msgs, err := admin.XRevRangeN(ctx, streamKey(cam), "+", "-", 1).Result()
			if err != nil || len(msgs) == 0 {
				return "", 0
			}
			f, err := client.Parse(streamKey(cam), msgs[0].ID, msgs[0].Values)
			if err != nil || f.Epoch < 0 {
				return "", 0
			}
			return f.Owner, uint64(f.Epoch)
		}
		type fleetStatus struct {
			Replicas []struct {
				ID string `json:"id"`
			} `json:"replicas"`
			Cameras []struct {
				ID    string `json:"id"`
				Owner string `json:"owner"`
			} `json:"cameras"`
		}
		owners := func(s *service) (replicas int, byCam map[string]string) {
			var st fleetStatus
			if code, body, err := fetch(s.HTTP + "/api/v1/fleet"); err != nil || code != http.StatusOK || json.Unmarshal(body, &st) != nil {
				return 0, nil
			}
			byCam = map[string]string{}
			for _, c := range st.Cameras {
				byCam[c.ID] = c.Owner
			}
			return len(st.Replicas), byCam
		}

		r1 := replica("r1")
		require.Eventually(t, func() bool {
			o1, e1 := newest("fl1")
			o2, e2 := newest("fl2")
			return o1 == "r1" && o2 == "r1" && e1 > 0 && e2 > 0
		}, 30*time.Second, 100*time.Millisecond, "r1, alone, captures both cameras under their leases: %s", tail(r1.Output(), 2000))
		first := map[string]uint64{}
		for _, cam := range []string{"fl1", "fl2"} {
			_, first[cam] = newest(cam)
		}

		r2 := replica("r2")
		var moved string // the camera r2 takes
		require.Eventually(t, func() bool {
			n, by := owners(r1)
			if n != 2 || by["fl1"] == by["fl2"] || by["fl1"] == "" || by["fl2"] == "" {
				return false
			}
			for cam, o := range by {
				if o == "r2" {
					moved = cam
				}
			}
			owner, ep := newest(moved)
			return owner == "r2" && ep > first[moved]
		}, 30*time.Second, 100*time.Millisecond, "r2 joins and takes one camera with a higher epoch: %s", tail(r2.Output(), 2000))
		_, taken := newest(moved)
		assert.NotEmpty(t, lines(r1.Output(), `"reason":"rebalance"`), "r1 released a camera for r2")
		assert.NotEmpty(t, lines(r2.Output(), `"reason":"released"`), "r2 acquired a released camera")

		r2.Stop(10 * time.Second)
		require.Eventually(t, func() bool {
			owner, ep := newest(moved)
			return owner == "r1" && ep > taken
		}, 15*time.Second, 100*time.Millisecond, "r1 takes %s back when r2 stops: %s", moved, tail(r1.Output(), 2000))
		assert.NotEmpty(t, lines(r1.Output(), `"reason":"released"`), "r1 took it back as released by r2's shutdown")
		assert.NotEmpty(t, lines(r2.Output(), `"reason":"shutdown"`), "r2 released it at shutdown")

		entries, err := admin.Do(ctx, "ACL", "LOG").Slice()
		require.NoError(t, err)
		var refused []string
		for _, e := range entries {
			fields, _ := e.([]any)
			rec := map[string]any{}
			for i := 0; i+1 < len(fields); i += 2 {
				k, _ := fields[i].(string)
				rec[k] = fields[i+1]
			}
			if rec["username"] == "gstcapture" && rec["object"] != "client|list" {
				refused = append(refused, fmt.Sprintf("%v %v (%v)", rec["reason"], rec["object"], rec["context"]))
			}
		}
		assert.Empty(t, refused, "Redis refused the fleet's replicas nothing")
		for _, out := range []string{r1.Output(), r2.Output()} {
			assert.Empty(t, lines(out, "NOPERM"), "no command was refused")
			assert.Empty(t, lines(out, "heartbeat failed"))
		}

		// The same user still cannot reach past its grants.
		user := redis.NewClient(&redis.Options{Addr: rd.Addr, Username: "gstcapture", Password: pw, DisableIdentity: true})
		defer user.Close()
		for _, cmd := range [][]any{
			{"FLUSHALL"}, {"SET", "other", "x"}, {"HSET", "gstcapture:fleet:lease:{frames:fl1}", "f", "v"},
			{"PUBLISH", "other", "x"}, {"XRANGE", "frames:fl1", "-", "+"},
		} {
			err := user.Do(ctx, cmd...).Err()
			assert.True(t, redis.HasErrorPrefix(err, "NOPERM"), "%v as gstcapture: %v", cmd, err)
		}
		t.Logf("fleet under the ACL: %s went r1 (epoch %d) -> r2 (epoch %d) -> r1; %d ACL LOG entries",
			moved, first[moved], taken, len(entries))
	})
}

// TestRedisMemoryBudget: redis-server with maxmemory 300mb (policy
// noeviction, Redis's default) and gstcapture's defaults otherwise
// (retention 10 s, memory_budget auto), fed two 1280x720 BGR cameras at
// 10 fps: 63 MB/s, so 10 s of history (630 MB) does not fit. Before the
// budget, Redis refused every XADD after about 5 s ("OOM command not
// allowed"), gstcapture called Redis down and dropped every frame.
// Now, over 60 s, both cameras publish at their configured fps, used_memory
// never exceeds maxmemory, no frame is refused, and the shortened
// retention is reported in /health, in rtsp_redis_retention_seconds and
// once per camera in the log.
func TestRedisMemoryBudget(t *testing.T) {
	const (
		maxmemory = 300 << 20 // Redis's "300mb"
		window    = 60 * time.Second
	)
	rd := testenv.StartRedis(t)
	rc := openFrames(t, rd)
	ctx := ctxT(t, 5*time.Minute)
	require.NoError(t, rc.ConfigSet(ctx, "maxmemory", "300mb").Err())
	policy, err := rc.ConfigGet(ctx, "maxmemory-policy").Result()
	require.NoError(t, err)
	require.Equal(t, "noeviction", policy["maxmemory-policy"])

	sim := startCamsim(t, camsimOpts{Cameras: 2, Codec: "h264", Size: "1280x720", FPS: 25, Control: true})
	ids := []string{"big1", "big2"}
	svc := startService(t, svcConfig{Redis: rd.URL, FPS: 10, Cameras: []camCfg{{ID: "big1", URL: sim.URL(1)}, {ID: "big2", URL: sim.URL(2)}}})
	rc.WaitPublished(svc, 60*time.Second, 10, ids...)
	health := func() (string, map[string]cameraStatus) {
		h := svc.health(t)
		return h.Redis, h.byID()
	}

	_, h0 := health()
	t0 := time.Now()
	var peak int64
	samples, notReady := 0, 0
	var states []string
	for time.Since(t0) < window {
		used := testenv.UsedMemory(t, rc.Client)
		peak = max(peak, used)
		assert.LessOrEqual(t, used, int64(maxmemory), "used_memory at %s", time.Since(t0).Round(time.Second))
		if code, _ := httpGet(t, svc.HTTP+"/readyz"); code != http.StatusOK {
			notReady++
		}
		if st, _ := health(); st != "up" {
			states = append(states, st)
		}
		samples++
		time.Sleep(500 * time.Millisecond)
	}
	dt := time.Since(t0).Seconds()
	_, h1 := health()
	m := svc.metrics(t)

	assert.Zero(t, notReady, "/readyz stayed 200 over %d samples", samples)
	assert.Empty(t, states, "/health redis stayed up (never full, never down)")
	for _, id := range ids {
		c := h1[id]
		rate := float64(c.Published-h0[id].Published) / dt
		assert.InDelta(t, 10, rate, 1, "%s publishes at its configured fps", id)
		assert.Zero(t, c.Dropped["redis_oom"], "%s: no XADD refused", id)
		assert.Zero(t, c.Dropped["redis_error"], "%s", id)
		assert.True(t, c.RetentionShortened, "%s: retention shortened", id)
		assert.Greater(t, c.RedisRetention, 0.0, id)
		assert.Less(t, c.RedisRetention, 10.0, "%s: less than the configured 10 s", id)
		assert.InDelta(t, float64(c.RedisMaxLen)/10, c.RedisRetention, 1e-6, "%s: retention is MAXLEN / fps", id)
		assert.InDelta(t, c.RedisRetention, m.value("rtsp_redis_retention_seconds", "camera_id", id), 1e-6, "%s: the metric says the same", id)
		n := rc.Len(id)
		assert.LessOrEqual(t, n, c.RedisMaxLen+1, "%s: the stream holds its MAXLEN (trimmed approximately)", id)
		shortened := 0
		for _, l := range lines(svc.Output(), "redis retention shortened") {
			if strings.Contains(l, `"camera_id":"`+id+`"`) {
				shortened++
			}
		}
		assert.Equal(t, 1, shortened, "%s: the shortened retention is logged once", id)
		t.Logf("%s: %.2f entries/s, MAXLEN %d, retention %.2f s, XLEN %d, dropped %v", id, rate, c.RedisMaxLen, c.RedisRetention, n, c.Dropped)
	}
	budget := m.value("rtsp_redis_memory_budget_bytes")
	assert.Equal(t, float64(maxmemory)*0.75, budget, "memory_budget auto: 75%% of maxmemory")
	t.Logf("maxmemory %d, budget %.0f, peak used_memory %d (%.0f%% of maxmemory) over %d samples in %.0f s",
		maxmemory, budget, peak, 100*float64(peak)/maxmemory, samples, dt)
}
