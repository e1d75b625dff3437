package publish

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/stats"
	"gstcapture/internal/testenv"
)

// TestTimedOutRoundTripStoredAnyway: a Redis that is alive but stalls
// longer than Options.Timeout (here SIGSTOP, like DEBUG SLEEP or a long
// fork) still executes the XADDs the client gave up on once it wakes. Those frames are
// in Redis, so they must be counted published, not dropped.
func TestTimedOutRoundTripStoredAnyway(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	other := rs.Client(t)
	p := New(c, Options{Batch: 8, Timeout: 300 * time.Millisecond}, nil, nil)
	cam := stats.NewCamera("cam-slow")
	ring := newTestRing(1000, cam)
	fs := newFrames(t)

	stop := runAsync(p, cam, ring)
	for range 20 {
		ring.Push(fs.New(cam.ID, 64, 64, frame.GRAY8))
	}
	require.Eventually(t, func() bool { return cam.Published() == 20 }, 5*time.Second, 5*time.Millisecond)

	// SIGSTOP freezes redis-server as a long fork, swap or VM pause would:
	// the kernel still accepts connections and buffers what clients send.
	pid := redisPID(t, other)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	for range 40 {
		ring.Push(fs.New(cam.ID, 64, 64, frame.GRAY8))
		time.Sleep(25 * time.Millisecond)
	}
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	require.Eventually(t, func() bool {
		return cam.Published()+cam.DroppedTotal() == cam.Captured()
	}, 10*time.Second, 10*time.Millisecond, "every frame accounted for")
	time.Sleep(500 * time.Millisecond)
	stop()

	n, err := c.XLen(ctxTimeout(t, time.Second), "frames:"+cam.ID).Result()
	require.NoError(t, err)
	t.Logf("captured %d published %d dropped %v xlen %d", cam.Captured(), cam.Published(), cam.Snapshot(time.Now()).Dropped, n)
	assert.Equal(t, uint64(n), cam.Published(), "published equals the entries in Redis")
	assertIdentity(t, cam, 0)
	fs.assertReleasedOnce(0)
}

// redisPID asks the server for its process id (INFO server).
func redisPID(t *testing.T, c *redis.Client) int {
	t.Helper()
	info, err := c.Info(ctxTimeout(t, 2*time.Second), "server").Result()
	require.NoError(t, err)
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			require.NoError(t, err)
			return pid
		}
	}
	t.Fatalf("INFO server has no process_id:\n%s", info)
	return 0
}

// TestSettleLargeBatchCutMidWrite: a batch far larger than the socket
// buffers is cut mid-write while Redis is frozen; when Redis wakes it runs
// the complete commands it had buffered. Settling counts exactly those as
// published: published equals XLEN.
func TestSettleLargeBatchCutMidWrite(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	other := rs.Client(t)
	logs := &logBuf{}
	p := New(c, Options{Batch: 16, Timeout: 400 * time.Millisecond}, logs.logger(), nil)
	cam := stats.NewCamera("cam-big")
	ring := newTestRing(64, cam)
	fs := newFrames(t)
	stop := runAsync(p, cam, ring)
	ring.Push(fs.New(cam.ID, 64, 64, frame.BGR)) // a connection is open
	require.Eventually(t, func() bool { return cam.Published() == 1 }, 5*time.Second, 5*time.Millisecond)

	pid := redisPID(t, other)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	big := make([]*frame.Frame, 16)
	for i := range big {
		big[i] = fs.New(cam.ID, 1280, 720, frame.BGR) // 2.7 MB each
	}
	ring.pushAll(big)       // one batch of 44 MB
	time.Sleep(time.Second) // the batch is written, cut by the timeout, and retried
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))

	require.Eventually(t, func() bool {
		pending, _ := p.Unconfirmed(cam.ID)
		return pending == 0 && ring.Len() == 0 && cam.Published()+cam.DroppedTotal() == cam.Captured()
	}, 20*time.Second, 10*time.Millisecond, "every frame accounted for")
	time.Sleep(time.Second) // anything Redis could still run from the old connection has run
	stop()

	n, err := c.XLen(ctxTimeout(t, time.Second), "frames:"+cam.ID).Result()
	require.NoError(t, err)
	t.Logf("captured %d published %d dropped %v xlen %d; settle lines %q",
		cam.Captured(), cam.Published(), cam.Snapshot(time.Now()).Dropped, n, logs.lines("settled frames"))
	require.NotEmpty(t, logs.lines("settled frames"), "the cut batch was settled")
	assert.Equal(t, uint64(n), cam.Published(), "published equals the entries in Redis")
	assertIdentity(t, cam, 0)
	fs.assertReleasedOnce(0)
}

// TestBarrierKillsClosedConnections: a connection this process closed but
// Redis still holds (its FIN or last segments delayed, as in a network
// partition) must be killed before the stream is searched, or its buffered
// commands could run after settling. Stand-in: a raw connection parked in
// Redis with half a command, registered with the tracker as closed by us.
func TestBarrierKillsClosedConnections(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	p := New(c, Options{}, nil, nil)

	raw, err := net.Dial("tcp", rs.Addr)
	require.NoError(t, err)
	defer raw.Close()
	_, err = raw.Write([]byte("*3\r\n$4\r\nECHO\r\n")) // half a command: Redis waits for the rest
	require.NoError(t, err)
	local, ok := localAddrPort(raw.LocalAddr())
	require.True(t, ok)
	require.Eventually(t, func() bool {
		list, err := c.ClientList(ctxTimeout(t, time.Second)).Result()
		return err == nil && strings.Contains(list, "addr="+local.String()+" ")
	}, 5*time.Second, 10*time.Millisecond, "Redis lists the parked connection")

	p.tracker.mu.Lock()
	p.tracker.open[local] = true
	p.tracker.mu.Unlock()
	p.tracker.closedConn(local)
	require.Equal(t, []netip.AddrPort{local}, p.tracker.closedConns())

	require.NoError(t, p.barrier(ctxTimeout(t, 2*time.Second)))
	_ = raw.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = raw.Read(make([]byte, 16))
	assert.ErrorIs(t, err, io.EOF, "Redis closed the parked connection")
	assert.Empty(t, p.tracker.closedConns(), "dealt-with connections are forgotten")

	// An address that is open again (port reused) is never killed.
	p.tracker.mu.Lock()
	p.tracker.open[local] = true
	p.tracker.mu.Unlock()
	p.tracker.closedConn(local)
	p.tracker.mu.Lock()
	p.tracker.open[local] = true
	p.tracker.mu.Unlock()
	assert.Empty(t, p.tracker.closedConns())
}

func TestParseAddrPort(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"127.0.0.1:54321", "127.0.0.1:54321", true},
		{"[::1]:6379", "[::1]:6379", true},
		{"::1:6379", "[::1]:6379", true},
		{"/tmp/redis.sock:0", "", false},
		{"", "", false},
	} {
		got, ok := parseAddrPort(tc.in)
		assert.Equal(t, tc.ok, ok, tc.in)
		if ok {
			assert.Equal(t, tc.want, got.String(), tc.in)
		}
	}
}
