package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	assert.Greater(t, p, 0)
	assert.Less(t, p, 65536)
}

func TestStartStopRestart(t *testing.T) {
	r := StartRedis(t)
	require.True(t, r.Running())
	assert.Equal(t, "redis://"+r.Addr+"/0", r.URL)

	c := r.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Ping(ctx).Err())

	// Persistence is off.
	cfg, err := c.ConfigGet(ctx, "save").Result()
	require.NoError(t, err)
	assert.Equal(t, "", cfg["save"])
	cfg, err = c.ConfigGet(ctx, "appendonly").Result()
	require.NoError(t, err)
	assert.Equal(t, "no", cfg["appendonly"])
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	r.Stop()
	assert.False(t, r.Running())
	assert.Error(t, ping(r.Addr))
	r.Stop() // idempotent

	addr := r.Addr
	r.Restart(t)
	assert.Equal(t, addr, r.Addr, "restart keeps the port")
	require.True(t, r.Running())
	require.Eventually(t, func() bool { return c.Ping(ctx).Err() == nil }, 5*time.Second, 20*time.Millisecond,
		"the same client reconnects by itself")
	// Nothing survives a kill: persistence is off.
	n, err := c.Exists(ctx, "k").Result()
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestTwoServers(t *testing.T) {
	a, b := StartRedis(t), StartRedis(t)
	assert.NotEqual(t, a.Addr, b.Addr)
	assert.NotEqual(t, a.Dir, b.Dir)
}
