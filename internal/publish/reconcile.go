package publish

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/redis/go-redis/v9"

	"gstcapture/internal/stats"
)

// A round trip that fails after its bytes left may still be executed:
// a Redis frozen for longer than Options.Timeout (fork, swap, VM pause)
// runs what the kernel buffered for it once it wakes, even though the
// client gave up and closed the connection; a kill can land between an
// XADD and its reply. Counting those frames as dropped would make
// `published` disagree with the stream. So their seqs are kept as
// unconfirmed, and before the camera sends anything else they are settled:
// every connection this process closed that Redis still holds is killed
// (after CLIENT KILL nothing more from it can run), then the stream's tail
// is searched for their frame ids.

// unconfirmed holds one camera's frames whose outcome is unknown.
type unconfirmed struct {
	mu     sync.Mutex
	frames []unsureFrame
	gaveUp uint64 // settled as dropped without knowing (shutdown deadline, Redis gone)
}

type unsureFrame struct {
	seq    uint64
	reason stats.DropReason // counted under it if the frame is not in the stream
}

func (u *unconfirmed) add(seq uint64, reason stats.DropReason) {
	u.mu.Lock()
	u.frames = append(u.frames, unsureFrame{seq, reason})
	u.mu.Unlock()
}

func (u *unconfirmed) snapshot() []unsureFrame {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]unsureFrame(nil), u.frames...)
}

func (u *unconfirmed) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.frames)
}

// remove forgets the first n frames (those just settled).
func (u *unconfirmed) remove(n int) {
	u.mu.Lock()
	u.frames = append(u.frames[:0], u.frames[n:]...)
	u.mu.Unlock()
}

func (p *Publisher) unconfirmedOf(cameraID string) *unconfirmed {
	p.unsureMu.Lock()
	defer p.unsureMu.Unlock()
	u, ok := p.unsure[cameraID]
	if !ok {
		u = &unconfirmed{}
		p.unsure[cameraID] = u
	}
	return u
}

// Unconfirmed returns, for one camera, how many frames wait to be settled
// (neither published nor dropped yet) and how many were counted as dropped
// without knowing whether Redis stored them.
func (p *Publisher) Unconfirmed(cameraID string) (pending int, gaveUp uint64) {
	u := p.unconfirmedOf(cameraID)
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.frames), u.gaveUp
}

// notSent reports whether a command's error proves Redis did not run it:
// an error reply, or a connection that was never made.
func notSent(err error) bool {
	var re redis.Error
	if errors.As(err, &re) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// settle decides the fate of the camera's unconfirmed frames: stored ones
// are counted published, the others dropped under their reason. It fails,
// leaving them unconfirmed, when Redis does not answer.
func (w *worker) settle(parent context.Context) (stored int, err error) {
	frames := w.unsure.snapshot()
	if len(frames) == 0 {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(parent, w.p.opts.Timeout)
	defer cancel()
	if err := w.p.barrier(ctx); err != nil {
		return 0, err
	}
	lowest := frames[0].seq
	for _, f := range frames {
		lowest = min(lowest, f.seq)
	}
	found, err := tailScript.Run(ctx, w.p.client, []string{w.enc.Key()},
		w.enc.FrameIDPrefix(), lowest, len(frames)+tailSlack).Int64Slice()
	if err != nil && !isRedisError(err) {
		return 0, err
	}
	if err != nil {
		// The stream cannot be read (no permission, not a stream): an XADD
		// to it cannot have succeeded either, except in the no-permission case,
		// which is why this is said loudly.
		w.p.log.Warn("cannot check whether unconfirmed frames reached Redis; counting them as dropped",
			"camera_id", w.id, "frames", len(frames), "err", err)
	}
	in := make(map[uint64]bool, len(found))
	for _, s := range found {
		in[uint64(s)] = true
	}
	dropped := map[stats.DropReason]uint64{}
	for _, f := range frames {
		if in[f.seq] {
			stored++
			continue
		}
		dropped[f.reason]++
	}
	if stored > 0 {
		w.cam.Stored(uint64(stored))
	}
	for r, n := range dropped {
		w.drop(r, n)
	}
	w.unsure.remove(len(frames))
	w.p.markUp(w.id)
	w.p.log.Info("settled frames of a failed round trip", "camera_id", w.id,
		"frames", len(frames), "stored_anyway", stored, "dropped", len(frames)-stored)
	return stored, nil
}

// giveUp counts the unconfirmed frames as dropped without knowing (the
// shutdown deadline passed or Redis never answered again).
func (w *worker) giveUp() {
	frames := w.unsure.snapshot()
	if len(frames) == 0 {
		return
	}
	for _, f := range frames {
		w.drop(f.reason, 1)
	}
	w.unsure.mu.Lock()
	w.unsure.gaveUp += uint64(len(frames))
	w.unsure.mu.Unlock()
	w.unsure.remove(len(frames))
	w.p.log.Warn("frames of a failed round trip counted as dropped, but Redis may still store them",
		"camera_id", w.id, "frames", len(frames))
}

// tailSlack bounds how many entries of other writers the tail scan may
// step over.
const tailSlack = 64

// tailScript walks the stream back from its newest entry and returns the
// seqs of this process' frames (frame_id starting with ARGV[1]) down to
// seq ARGV[2], looking at no more than ARGV[3] entries. Done in Lua so
// only numbers, not the pixels, cross the network.
var tailScript = redis.NewScript(`
local prefix, lowest, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local found, seen, from = {}, 0, '+'
while seen < limit do
  local page = redis.call('XREVRANGE', KEYS[1], from, '-', 'COUNT', 8)
  if #page == 0 then break end
  for _, e in ipairs(page) do
    seen = seen + 1
    local f = e[2]
    for i = 1, #f, 2 do
      if f[i] == 'frame_id' then
        local id = f[i + 1]
        if string.sub(id, 1, #prefix) == prefix then
          local seq = tonumber(string.sub(id, #prefix + 1))
          if seq ~= nil then
            if seq < lowest then return found end
            found[#found + 1] = seq
          end
        end
        break
      end
    end
  end
  from = '(' .. page[#page][1]
end
return found
`)

// barrier makes sure no connection this process closed can still run a
// command: Redis may hold one whose buffered commands it has not read yet.
// Matching is by client address, so it works when Redis sees our own
// address (no NAT); where it cannot (unix socket, no CLIENT permission) it
// is skipped, and settling is as good as the timing allows.
func (p *Publisher) barrier(ctx context.Context) error {
	closed := p.tracker.closedConns()
	if len(closed) == 0 {
		return nil
	}
	list, err := p.client.ClientList(ctx).Result()
	if err != nil {
		if isRedisError(err) {
			p.barrierWarn.Do(func() {
				p.log.Warn("CLIENT LIST refused: unconfirmed frames are settled without it", "err", err)
			})
			p.tracker.forget(closed)
			return nil
		}
		return err
	}
	want := make(map[netip.AddrPort]bool, len(closed))
	for _, a := range closed {
		want[a] = true
	}
	for _, line := range strings.Split(list, "\n") {
		var id string
		var addr netip.AddrPort
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "id":
				id = v
			case "addr":
				addr, _ = parseAddrPort(v)
			}
		}
		if id == "" || !want[addr] {
			continue
		}
		if err := p.client.ClientKillByFilter(ctx, "ID", id).Err(); err != nil && !isRedisError(err) {
			return err
		}
		p.log.Info("killed a connection Redis still held after we closed it, so its buffered commands cannot run later",
			"client_addr", addr.String())
	}
	p.tracker.forget(closed)
	return nil
}

func parseAddrPort(s string) (netip.AddrPort, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, true
	}
	// Redis may print an IPv6 client as "::1:54321", without brackets.
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return netip.AddrPort{}, false
	}
	a, err := netip.ParseAddr(s[:i])
	if err != nil {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(s[i+1:], 10, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

func localAddrPort(a net.Addr) (netip.AddrPort, bool) {
	if a == nil {
		return netip.AddrPort{}, false
	}
	ap, ok := parseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ok
}

// maxTracked bounds the closed connections remembered between barriers.
const maxTracked = 4096

// connTracker is a go-redis hook that remembers the local address of every
// connection the client closed until a barrier has dealt with it.
type connTracker struct {
	mu     sync.Mutex
	open   map[netip.AddrPort]bool // true: open; false: closed, maybe still held by Redis
	closed []netip.AddrPort        // closed ones, oldest first
}

func newConnTracker() *connTracker { return &connTracker{open: map[netip.AddrPort]bool{}} }

func (t *connTracker) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			return c, err
		}
		local, ok := localAddrPort(c.LocalAddr())
		if !ok {
			return c, nil // a unix socket: Redis cannot name it back to us
		}
		t.mu.Lock()
		t.open[local] = true
		t.mu.Unlock()
		tc := &trackedConn{Conn: c, t: t, local: local}
		if sc, ok := c.(syscall.Conn); ok {
			// Keep go-redis' MSG_PEEK health check of idle connections working.
			return &trackedSysConn{trackedConn: tc, sc: sc}, nil
		}
		return tc, nil
	}
}

func (t *connTracker) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (t *connTracker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (t *connTracker) closedConn(a netip.AddrPort) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if open, ok := t.open[a]; !ok || !open {
		return
	}
	t.open[a] = false
	t.closed = append(t.closed, a)
	if len(t.closed) > maxTracked {
		old := t.closed[0]
		t.closed = t.closed[1:]
		if !t.open[old] {
			delete(t.open, old)
		}
	}
}

// closedConns returns the closed connections not yet dealt with.
func (t *connTracker) closedConns() []netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(t.closed))
	for _, a := range t.closed {
		if !t.open[a] { // a live connection may have reused the port since
			out = append(out, a)
		}
	}
	return out
}

// forget drops the given closed connections: Redis no longer holds them.
func (t *connTracker) forget(done []netip.AddrPort) {
	t.mu.Lock()
	defer t.mu.Unlock()
	gone := make(map[netip.AddrPort]bool, len(done))
	for _, a := range done {
		gone[a] = true
	}
	kept := t.closed[:0]
	for _, a := range t.closed {
		if gone[a] {
			if !t.open[a] {
				delete(t.open, a)
			}
			continue
		}
		kept = append(kept, a)
	}
	t.closed = kept
}

type trackedConn struct {
	net.Conn
	t     *connTracker
	local netip.AddrPort
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.t.closedConn(c.local) })
	return c.Conn.Close()
}

// NetConn exposes the wrapped connection, as crypto/tls.Conn does.
func (c *trackedConn) NetConn() net.Conn { return c.Conn }

type trackedSysConn struct {
	*trackedConn
	sc syscall.Conn
}

func (c *trackedSysConn) SyscallConn() (syscall.RawConn, error) { return c.sc.SyscallConn() }

// Key returns the stream key the encoder writes to.
func (e *Encoder) Key() string { return e.stream.(string) }

// FrameIDPrefix returns what every frame_id of this encoder starts with:
// "<camera_id>-<instance>-".
func (e *Encoder) FrameIDPrefix() string { return string(e.idPrefix) }
