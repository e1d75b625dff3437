package e2e

// Network faults between the service and a camera, and their fixtures: a
// TCP proxy that can black-hole traffic (a partition: nothing is refused,
// nothing arrives) and a listener whose connects hang (SYNs dropped), both
// on 127.0.0.1.

import (
	"errors"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNetFaultPartition black-holes the network between the service and a
// camera (transport tcp through nfProxy): no byte passes either way, the
// open connection is neither closed nor reset, and new connections are
// accepted but never answered. The camera must leave streaming within
// stall_timeout, stay down without ever wedging its teardown (no frozen
// pipeline), and stream again by itself once the partition heals, while a
// camera outside the partition keeps 10 fps.
func TestNetFaultPartition(t *testing.T) {
	sim := startCamsim(t, cfSim(camsimOpts{}))
	px := nfStartProxy(t, sim.Addr)
	svc, rc := cfStart(t, camCfg{ID: "partitioned", URL: "rtsp://" + px.Addr() + "/cam1", Transport: "tcp"})
	time.Sleep(time.Second)
	rate := rc.RateFrom("healthy")

	tHole := time.Now()
	px.Blackhole()
	accepted := px.Accepted()
	// Detection: the camera leaves streaming within stall_timeout.
	var down time.Time
	require.Eventually(t, func() bool {
		down = time.Now()
		return svc.health(t).camera("partitioned").State != "streaming"
	}, cfStallTimeout+cfSlack+5*time.Second, 20*time.Millisecond, "partition not noticed")
	detect := down.Sub(tHole)
	h := svc.health(t).camera("partitioned")
	t.Logf("partition noticed after %s: state %s, last_error %q", detect.Round(time.Millisecond), h.State, h.LastError)
	assert.LessOrEqual(t, detect, cfStallTimeout+cfSlack, "partition detection: stall_timeout %s + %s slack", cfStallTimeout, cfSlack)

	// Held down: never streaming, no frame published, states logged.
	const hold = 10 * time.Second
	states := map[string]int{}
	for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		st := svc.health(t).camera("partitioned").State
		states[st]++
		require.NotEqual(t, "streaming", st, "camera streams through a black hole")
	}
	tHeal := time.Now()
	n := rc.CountBetween("partitioned", tHole.Add(300*time.Millisecond), tHeal)
	assert.Zero(t, n, "entries published while partitioned")
	newConns := px.Accepted() - accepted
	var errs []string
	for _, l := range stateChanges(svc.Output(), "partitioned") {
		if l.Time.After(tHole) {
			errs = append(errs, l.State+": "+l.Error)
		}
	}
	t.Logf("during the %s partition: states seen %v, %d connection attempts accepted and left unanswered; state changes: %s",
		hold, states, newConns, strings.Join(errs, " | "))
	assert.Positive(t, newConns, "the service did not try to reconnect during the partition")
	m := svc.metrics(t)
	assert.Zero(t, m.value("rtsp_frozen_pipelines_total", "camera_id", "partitioned"),
		"a pipeline's teardown wedged on the black-holed connection")

	// Heal: recovery by itself. Worst case an attempt is waiting out its
	// RTSP timeout (stall_timeout) and then the capped backoff.
	px.Heal()
	first := rc.WaitEntry("partitioned", tHeal, 30*time.Second, "after the partition healed")
	rec := first.Sub(tHeal)
	t.Logf("after healing: first entry %s later", rec.Round(time.Millisecond))
	assert.LessOrEqual(t, rec, cfStallTimeout+cfReconnectMax+2*time.Second, "recovery after the partition heals")
	svc.waitState(t, "partitioned", "streaming", 10*time.Second)
	after := rc.RateFrom("partitioned")
	time.Sleep(6 * time.Second)
	after.Check(t, "the 6 s after healing")
	rate.Check(t, "the partition")

	var reasons []string
	for _, r := range []string{"stall", "timeout", "error", "eos", "no_frames"} {
		if v := m.value("rtsp_reconnects_total", "camera_id", "partitioned", "reason", r); v > 0 {
			reasons = append(reasons, r)
		}
	}
	sort.Strings(reasons)
	t.Logf("reconnect reasons during the partition: %v", reasons)
}

// nfProxy forwards TCP connections to a target. Blackhole stops every byte
// in both directions while keeping connections open, and new connections
// are accepted but never answered (nor forwarded); Heal forwards again,
// delivering what was held back, as TCP would after a partition heals.
type nfProxy struct {
	ln       net.Listener
	target   string
	accepted atomic.Int64

	mu     sync.Mutex
	open   chan struct{} // closed while forwarding; replaced by Blackhole
	holed  bool
	closed bool
	conns  map[net.Conn]struct{}
	done   chan struct{}
	wg     sync.WaitGroup
}

func nfStartProxy(t testing.TB, target string) *nfProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "proxy listen")
	p := &nfProxy{ln: ln, target: target, open: make(chan struct{}), conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	close(p.open)
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *nfProxy) Addr() string { return p.ln.Addr().String() }

// Accepted counts connections accepted since start.
func (p *nfProxy) Accepted() int64 { return p.accepted.Load() }

// Blackhole stops forwarding.
func (p *nfProxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.holed {
		p.holed, p.open = true, make(chan struct{})
	}
}

// Heal forwards again.
func (p *nfProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holed {
		p.holed = false
		close(p.open)
	}
}

// Close stops the proxy and closes every connection.
func (p *nfProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	_ = p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// pass blocks while the proxy black-holes; false once it is closed.
func (p *nfProxy) pass() bool {
	p.mu.Lock()
	open := p.open
	p.mu.Unlock()
	select {
	case <-open:
		return true
	case <-p.done:
		return false
	}
}

func (p *nfProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *nfProxy) untrack(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *nfProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *nfProxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	// A connection accepted during a partition waits, unanswered, until
	// the partition heals (or the client gives up and closes it, which we
	// only notice then).
	if !p.pass() {
		return
	}
	upstream, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(upstream) {
		return
	}
	defer p.untrack(upstream)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(upstream, client) }()
	go func() { defer wg.Done(); p.pipe(client, upstream) }()
	wg.Wait()
}

// pipe copies src to dst, holding bytes while black-holed; the first
// error closes both ends.
func (p *nfProxy) pipe(dst, src net.Conn) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		if !p.pass() {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if !p.pass() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// nfHangingAddr returns a 127.0.0.1 address whose connects hang: a socket
// listening with a backlog of 0 that never accepts, its queue filled, so
// the kernel drops further SYNs (as for a host that does not answer).
// It checks that a connect really hangs before returning.
func nfHangingAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err, "socket")
	t.Cleanup(func() { _ = syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}), "bind")
	require.NoError(t, syscall.Listen(fd, 0), "listen")
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()

	var fill []net.Conn
	t.Cleanup(func() {
		for _, c := range fill {
			_ = c.Close()
		}
	})
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			var ne net.Error
			require.True(t, errors.As(err, &ne) && ne.Timeout(), "connect to the full listener %s: want a timeout, got %v", addr, err)
			return addr
		}
		fill = append(fill, c)
	}
	t.Fatalf("connects to %s still succeed after %d: the kernel did not drop SYNs", addr, len(fill))
	return ""
}
