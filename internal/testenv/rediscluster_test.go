package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRedisCluster: three masters with one replica each, every slot
// served; a killed master's replica takes over with every write the master
// acknowledged, and the cluster is ready again.
func TestRedisCluster(t *testing.T) {
	c := StartRedisCluster(t)
	require.Len(t, c.Nodes, 6)
	opts, err := redis.ParseClusterURL(c.URL)
	require.NoError(t, err, "URL %s", c.URL)
	assert.ElementsMatch(t, c.Addrs(), opts.Addrs, "URL names every node")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc := c.Client(t)
	// 30 keys land on every master (a key's slot is CRC16 mod 16384).
	keys := make([]string, 30)
	masters := map[*Redis][]string{}
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
		require.NoError(t, cc.Set(ctx, keys[i], i, 0).Err())
		m, reps := c.MasterOf(t, keys[i])
		require.Len(t, reps, 1, "%s: one replica of master %s", keys[i], m.Addr)
		assert.NotEqual(t, m, reps[0])
		masters[m] = append(masters[m], keys[i])
	}
	require.Len(t, masters, 3, "three masters serve the keys")

	victim, reps := c.MasterOf(t, keys[0])
	at := c.KillMaster(t, victim)
	assert.False(t, victim.Running())
	c.WaitReady(t, 20*time.Second)
	t.Logf("replica %s took over from %s within %s", reps[0].Addr, victim.Addr, time.Since(at).Round(time.Millisecond))
	m, left := c.MasterOf(t, keys[0])
	assert.Equal(t, reps[0], m, "the replica is the master now")
	assert.Empty(t, left, "it has no replica left")
	require.Eventually(t, func() bool { return cc.Get(ctx, keys[0]).Err() == nil }, 5*time.Second, 50*time.Millisecond,
		"the client finds the new master")
	for i, k := range keys {
		v, err := cc.Get(ctx, k).Int()
		require.NoError(t, err, "GET %s after the failover", k)
		assert.Equal(t, i, v, k)
	}
}
