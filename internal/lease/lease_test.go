package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/lease"
	"gstcapture/internal/testenv"
)

func TestKeysShareTheStreamsSlot(t *testing.T) {
	k := lease.KeysFor("gstcapture:fleet", "frames:cam1")
	assert.Equal(t, "gstcapture:fleet:lease:{frames:cam1}", k.Lease)
	assert.Equal(t, "gstcapture:fleet:epoch:{frames:cam1}", k.Epoch)
	// A stream key with its own hash tag: the lease keys use the same tag.
	k = lease.KeysFor("f", "frames:{cam1}:v1")
	assert.Equal(t, "f:lease:{cam1}", k.Lease)
	assert.Equal(t, "cam1", lease.HashTag("f:epoch:{cam1}"))
	assert.Equal(t, "a{}b", lease.HashTag("a{}b"), "an empty tag hashes the whole key")
}

type rig struct {
	t   *testing.T
	rc  *redis.Client
	ctx context.Context
	k   lease.Keys
}

const stream = "frames:cam1"

func newRig(t *testing.T) rig {
	rd := testenv.StartRedis(t)
	return rig{t: t, rc: rd.Client(t), ctx: context.Background(), k: lease.KeysFor("gstcapture:fleet", stream)}
}

// acquire runs Acquire for owner and returns its reply.
func (r rig) acquire(owner string, ms int64) []any {
	res, err := lease.Acquire.Run(r.ctx, r.rc, []string{r.k.Lease, r.k.Epoch, stream}, owner, ms).Slice()
	require.NoError(r.t, err)
	return res
}

// add writes one frame under owner's token and returns the error.
func (r rig) add(owner string, epoch uint64, ms int64) error {
	args := []any{lease.Token(owner, epoch), owner, epoch, ms, 0, "seq", "1", "owner", owner, "epoch", epoch}
	return r.rc.Eval(r.ctx, lease.FencedXAdd, []string{r.k.Lease, r.k.Epoch, stream}, args...).Err()
}

func (r rig) renew(owner string, epoch uint64, ms int64) int64 {
	n, err := lease.Renew.Run(r.ctx, r.rc, []string{r.k.Lease, r.k.Epoch}, lease.Token(owner, epoch), owner, epoch, ms).Int64()
	require.NoError(r.t, err)
	return n
}

func TestAcquireRenewRelease(t *testing.T) {
	r := newRig(t)
	assert.Equal(t, []any{int64(1), int64(1), "new"}, r.acquire("a", 60000))
	// Held: b is refused with the holder and its remaining lease.
	res := r.acquire("b", 60000)
	require.Len(t, res, 3)
	assert.Equal(t, int64(0), res[0])
	assert.Equal(t, "a 1", res[1])
	assert.Greater(t, res[2].(int64), int64(50000))

	require.NoError(t, r.add("a", 1, 60000))
	assert.Equal(t, int64(1), r.renew("a", 1, 60000))
	err := r.add("b", 1, 60000)
	require.Error(t, err, "a writer that never held the lease is refused")
	assert.True(t, lease.IsFenced(err), "%v", err)

	n, err := lease.Release.Run(r.ctx, r.rc, []string{r.k.Lease, r.k.Epoch}, lease.Token("b", 1), "b", 1).Int64()
	require.NoError(t, err)
	assert.Zero(t, n, "only the holder releases")
	n, err = lease.Release.Run(r.ctx, r.rc, []string{r.k.Lease, r.k.Epoch}, lease.Token("a", 1), "a", 1).Int64()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)

	assert.Equal(t, []any{int64(1), int64(2), "released"}, r.acquire("b", 60000))
	err = r.add("a", 1, 60000)
	assert.True(t, lease.IsFenced(err), "the old owner writes after the new owner took over: %v", err)
	assert.Zero(t, r.renew("a", 1, 60000), "the old owner cannot renew")
	require.NoError(t, r.add("b", 2, 60000))
	assert.Equal(t, int64(2), r.rc.XLen(r.ctx, stream).Val(), "one entry per owner, none of the refused ones")
}

func TestExpiredLeaseHasANewEpoch(t *testing.T) {
	r := newRig(t)
	r.acquire("a", 50)
	time.Sleep(120 * time.Millisecond)
	assert.Equal(t, []any{int64(1), int64(2), "expired"}, r.acquire("b", 60000))
	assert.True(t, lease.IsFenced(r.add("a", 1, 60000)), "a cut-off owner whose lease ran out cannot write")
	assert.Zero(t, r.renew("a", 1, 60000), "nor take its lease back")
}

func TestLeaseGoneWithoutAnotherOwnerIsTakenBack(t *testing.T) {
	r := newRig(t)
	r.acquire("a", 50)
	time.Sleep(120 * time.Millisecond)
	// Nobody took it: the owner renews it back, and writes.
	assert.Equal(t, int64(2), r.renew("a", 1, 60000))
	require.NoError(t, r.add("a", 1, 60000))
	assert.Equal(t, "a 1", r.rc.Get(r.ctx, r.k.Lease).Val())
}

func TestEpochContinuesFromTheStream(t *testing.T) {
	r := newRig(t)
	// Redis lost the lease keys but kept the stream (a failover, a restore).
	require.NoError(t, r.rc.XAdd(r.ctx, &redis.XAddArgs{Stream: stream, Values: []any{"seq", "9", "owner", "a", "epoch", "7"}}).Err())
	assert.Equal(t, []any{int64(1), int64(8), "new"}, r.acquire("b", 60000))
}

func TestSameIDTakesOverWithANewEpoch(t *testing.T) {
	r := newRig(t)
	r.acquire("a", 60000)
	// A second process under the same replica id fences the first.
	assert.Equal(t, []any{int64(1), int64(2), "expired"}, r.acquire("a", 60000))
	assert.True(t, lease.IsFenced(r.add("a", 1, 60000)))
}

func TestHeartbeat(t *testing.T) {
	r := newRig(t)
	key := "gstcapture:fleet:replicas"
	beat := func(id, mode string, ms int64) []any {
		res, err := lease.Heartbeat.Run(r.ctx, r.rc, []string{key}, id, `{"cameras":[]}`, ms, mode).Slice()
		require.NoError(t, err)
		return res
	}
	beat("a", "", 100)
	res := beat("b", "", 100)
	assert.Len(t, res, 5, "now, then a and b")
	time.Sleep(150 * time.Millisecond)
	res = beat("b", "", 100)
	require.Len(t, res, 3, "a is pruned once its heartbeat is older than the liveness")
	assert.Equal(t, "b", res[1])
	res = beat("b", "leave", 100)
	assert.Len(t, res, 1, "b left")
	assert.Zero(t, r.rc.HLen(r.ctx, key).Val())
}
