package publish

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/lease"
	"gstcapture/internal/stats"
	"gstcapture/internal/testenv"
)

// fakeFence hands out one lease token and records what the publisher
// tells it.
type fakeFence struct {
	mu      sync.Mutex
	token   FenceToken
	has     bool
	lost    []uint64
	renewed []time.Time
}

func (f *fakeFence) Token(string) (FenceToken, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.token, f.has
}

func (f *fakeFence) Lost(_ string, epoch uint64) {
	f.mu.Lock()
	f.lost = append(f.lost, epoch)
	f.mu.Unlock()
}

func (f *fakeFence) Renewed(_ string, epoch uint64, at time.Time) {
	f.mu.Lock()
	if epoch == f.token.Epoch {
		f.renewed = append(f.renewed, at)
	}
	f.mu.Unlock()
}

func (f *fakeFence) counts() (lost, renewed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.lost), len(f.renewed)
}

// TestFencedWrites writes under a real lease: entries end with owner and
// epoch, each stored round trip counts as a renewal, and once another
// replica holds the lease Redis refuses the writes (dropped as fenced,
// the fence told) and the stream holds none of them.
func TestFencedWrites(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	ctx := context.Background()
	const key = "frames:cam-f"
	keys := lease.KeysFor("gstcapture:fleet", key)
	res, err := lease.Acquire.Run(ctx, c, []string{keys.Lease, keys.Epoch, key}, "r1", 60000).Slice()
	require.NoError(t, err)
	require.Equal(t, int64(1), res[0])
	fence := &fakeFence{has: true, token: FenceToken{Keys: keys, Owner: "r1", Epoch: 1, TTL: time.Minute}}

	p := New(c, Options{Batch: 4, Instance: "run1", Fence: fence}, nil, nil)
	cam := stats.NewCamera("cam-f")
	ring := newTestRing(64, cam)
	fs := newFrames(t)
	for range 6 {
		ring.Push(fs.New(cam.ID, 16, 8, frame.BGR))
	}
	stop := runAsync(p, cam, ring)
	require.Eventually(t, func() bool { return cam.Published() == 6 }, 5*time.Second, 5*time.Millisecond)
	entries := xrange(t, c, key)
	require.Len(t, entries, 6)
	for _, e := range entries {
		n := len(e)
		assert.Equal(t, []string{"owner", "r1", "epoch", "1"}, e[n-4:], "owner and epoch end the entry")
	}
	_, renewed := fence.counts()
	assert.Positive(t, renewed, "a stored write renews the lease")
	pttl := c.PTTL(ctx, keys.Lease).Val()
	assert.Greater(t, pttl, 50*time.Second, "the write renewed the lease in Redis")

	// r2 takes the camera (r1's lease ran out while it was paused).
	require.NoError(t, c.Set(ctx, keys.Epoch, "2 r2 held", 0).Err())
	require.NoError(t, c.Set(ctx, keys.Lease, lease.Token("r2", 2), time.Minute).Err())
	for range 3 {
		ring.Push(fs.New(cam.ID, 16, 8, frame.BGR))
	}
	require.Eventually(t, func() bool { return cam.Dropped(stats.DropFenced) == 3 }, 5*time.Second, 5*time.Millisecond,
		"dropped: %v", cam.Snapshot(time.Now()).Dropped)
	stop()
	lost, _ := fence.counts()
	assert.Positive(t, lost, "the fence is told the lease is gone")
	assert.Len(t, xrange(t, c, key), 6, "no entry after the new owner took the lease")
	assert.Equal(t, lease.Token("r2", 2), c.Get(ctx, keys.Lease).Val(), "a refused write leaves the new owner's lease alone")
	fs.assertReleasedOnce(0)
	assertIdentity(t, cam, ring.Len())
	assert.True(t, p.Healthy(), "a fenced write is Redis answering, not Redis down")
}

// TestFencedWithoutToken: a fleet camera without a lease writes nothing.
func TestFencedWithoutToken(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	p := New(c, Options{Batch: 4, Fence: &fakeFence{}}, nil, nil)
	cam := stats.NewCamera("cam-n")
	ring := newTestRing(64, cam)
	fs := newFrames(t)
	for range 5 {
		ring.Push(fs.New(cam.ID, 16, 8, frame.BGR))
	}
	stop := runAsync(p, cam, ring)
	require.Eventually(t, func() bool { return cam.Dropped(stats.DropFenced) == 5 }, 5*time.Second, 5*time.Millisecond)
	stop()
	assert.Zero(t, c.Exists(context.Background(), "frames:cam-n").Val())
	fs.assertReleasedOnce(0)
	assertIdentity(t, cam, ring.Len())
	assert.Zero(t, cam.Published())
}
