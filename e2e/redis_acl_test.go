package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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
// it publishes, reads maxmemory for its budget, and settles the frames of
// round trips that timed out while Redis held writes, and Redis's ACL LOG
// shows no command it was refused except CLIENT LIST, which it does
// without. The rules allow each
// command gstcapture sends and refuse the rest (ACL DRYRUN).
func TestRedisACL(t *testing.T) {
	const pw = "acl-test-password-0123456789"
	rd := testenv.StartRedis(t)
	admin := redis.NewClient(&redis.Options{Addr: rd.Addr})
	t.Cleanup(func() { _ = admin.Close() })
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
	} {
		res, err := admin.Do(ctx, append([]any{"ACL", "DRYRUN", "gstcapture"}, cmd...)...).Text()
		require.NoError(t, err)
		assert.Equal(t, "OK", res, "gstcapture may run %v", cmd)
	}
	for _, cmd := range [][]any{
		{"FLUSHALL"}, {"CONFIG", "SET", "maxmemory", "0"}, {"KEYS", "*"}, {"DEL", "frames:cam1"},
		{"XADD", "other:cam1", "*", "v", "1"}, {"SET", "frames:x", "1"}, {"CLIENT", "KILL", "ID", "1"},
		{"XREAD", "STREAMS", "frames:cam1", "0"}, {"SUBSCRIBE", "x"},
	} {
		res, err := admin.Do(ctx, append([]any{"ACL", "DRYRUN", "gstcapture"}, cmd...)...).Text()
		require.NoError(t, err)
		assert.NotEqual(t, "OK", res, "gstcapture must not run %v", cmd)
	}

	sim := startCamsim(t, camsimOpts{Cameras: 1, Codec: "h264", Size: "320x240", FPS: 10})
	url := fmt.Sprintf("redis://gstcapture:%s@%s/0", pw, rd.Addr)
	svc := startService(t, fmt.Sprintf("redis: {url: %q, retention: 1h, timeout: 500ms}\nlog: {format: json}\nhealth: {min_ready: 0}\ndefaults: {fps: 10}\ncameras:\n  - {id: cam1, url: %q, codec: h264}\n",
		url, "rtsp://"+sim.Addr+"/cam1"))
	require.Eventually(t, func() bool { return admin.XLen(ctx, "frames:cam1").Val() >= 20 }, 30*time.Second, 100*time.Millisecond,
		"gstcapture publishes as the ACL user: %s", tail(svc.Output(), 2000))
	require.Eventually(t, func() bool { return cfMetric(cfMetrics(t, svc), "rtsp_redis_memory_budget_bytes") > 0 }, 40*time.Second, 200*time.Millisecond,
		"INFO memory is allowed: the budget follows maxmemory")

	// Writes held for 2 s: gstcapture's XADDs time out (redis.timeout
	// 500ms) with their frames unconfirmed, and it settles them with the
	// Lua script once Redis answers again (CLIENT LIST, tried first, is
	// refused and logged).
	require.NoError(t, admin.Do(ctx, "CLIENT", "PAUSE", "2000", "WRITE").Err())
	require.Eventually(t, func() bool { return len(lines(svc.Output(), "redis down")) > 0 }, 10*time.Second, 50*time.Millisecond,
		"the held XADDs time out")
	n0 := admin.XLen(ctx, "frames:cam1").Val()
	require.Eventually(t, func() bool { return admin.XLen(ctx, "frames:cam1").Val() >= n0+20 }, 30*time.Second, 100*time.Millisecond,
		"publishing goes on after the kills")

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
		admin.XLen(ctx, "frames:cam1").Val(), len(entries), len(lines(svc.Output(), "redis down")),
		len(lines(svc.Output(), "CLIENT LIST refused")), len(lines(svc.Output(), "unconfirmed")))
}
