package e2e

// gstcapture against Redis set up as deployed: the compose file's ACL user,
// and a maxmemory that its defaults must fit.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
// command gstcapture sends and refuse the rest (ACL DRYRUN).
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
