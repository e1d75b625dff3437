package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"gstcapture/internal/shm"
)

// Options configure a Reader.
type Options struct {
	// Stream is the camera's stream key (gstcapture's redis.stream with
	// the camera id: "frames:cam1" by default).
	Stream string
	// Group and Consumer select group mode (XREADGROUP): each frame goes to
	// one consumer of the group and is acked with Frame.Ack. Without a
	// group the Reader is in latest mode: each Next returns the newest
	// entry, never a backlog, never the same entry twice.
	Group, Consumer string
	// Start is where a group created here begins: "$" (default, new
	// entries) or "0" (the whole stream).
	Start string
	// ClaimIdle is how long an entry stays pending with another consumer
	// before this one claims it (XPENDING, XCLAIM): that consumer died.
	// 0: 30s; negative: never.
	ClaimIdle time.Duration
	// Block bounds each read's wait for a new entry (default 1s); Next
	// goes on waiting until its context ends.
	Block time.Duration
	// Retry is the longest pause between attempts while Redis fails
	// (default 5s); Next retries until its context ends.
	Retry time.Duration
	// ShmDir is where this host sees gstcapture's shm.dir (default
	// /dev/shm): entries of cameras with delivery shm name a segment file
	// there, which the Reader maps.
	ShmDir string
	// ShmCopy copies a shared-memory frame's pixels out of its slot and
	// checks the slot's generation after the copy, so Data stays the
	// frame's for good. Without it Data views the slot (no copy) and the
	// caller checks with Frame.Check after using it.
	ShmCopy bool
}

// shmSegments is how many segment mappings a Reader keeps: a camera's
// current one and those of recent caps changes or rebuilds.
const shmSegments = 4

// Reader reads one camera's frames. It is not safe for concurrent use.
type Reader struct {
	c    redis.UniversalClient
	o    Options
	last string // latest mode: the newest id returned

	pendFrom  string // group mode: own pending entries are read again after this id ("" done)
	queue     []redis.XMessage
	groupMade bool
	nextClaim time.Time

	prevInst string // the capture run and seq of the last frame returned
	prevSeq  uint64
	havePrev bool
	epoch    int64 // the highest fleet epoch seen
	// StaleDrops counts entries dropped for a fleet epoch lower than one
	// already seen.
	StaleDrops uint64
	// Lapped counts shared-memory entries dropped because the writer had
	// lapped their slot (or removed their segment) before they were read.
	Lapped uint64

	segs []*shm.Segment // mapped segments, newest last
}

// NewReader returns a Reader of o.Stream through c.
func NewReader(c redis.UniversalClient, o Options) (*Reader, error) {
	if o.Stream == "" {
		return nil, errors.New("client: Options.Stream is empty")
	}
	if (o.Group == "") != (o.Consumer == "") {
		return nil, errors.New("client: Options.Group and Consumer go together")
	}
	if o.Start == "" {
		o.Start = "$"
	}
	if o.ClaimIdle == 0 {
		o.ClaimIdle = 30 * time.Second
	}
	if o.Block <= 0 {
		o.Block = time.Second
	}
	if o.Retry <= 0 {
		o.Retry = 5 * time.Second
	}
	if o.ShmDir == "" {
		o.ShmDir = "/dev/shm"
	}
	r := &Reader{c: c, o: o, epoch: -1}
	if o.Group != "" {
		r.pendFrom = "0"
	}
	return r, nil
}

// Next returns the next frame, waiting until one comes or ctx ends. Redis
// errors are retried with a growing pause; an entry that does not parse is
// acked (in group mode) and returned as an *EntryError, and the next call
// goes on after it. Entries of a lower fleet epoch than one already seen
// are dropped (counted in StaleDrops): a replica that lost the camera.
func (r *Reader) Next(ctx context.Context) (*Frame, error) {
	pause := 50 * time.Millisecond
	for {
		msgs, redelivered, err := r.read(ctx)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			if isBusyGroup(err) || strings.HasPrefix(err.Error(), "NOGROUP") {
				r.groupMade = false
			}
			if !sleep(ctx, pause) {
				return nil, ctx.Err()
			}
			pause = min(2*pause, r.o.Retry)
			continue
		}
		pause = 50 * time.Millisecond
		for _, m := range msgs {
			f, err := Parse(r.o.Stream, m.ID, m.Values)
			if err != nil {
				r.ackID(ctx, m.ID)
				return nil, err
			}
			if r.o.Group != "" {
				f.ack = func(id string) error { return r.c.XAck(ctx, r.o.Stream, r.o.Group, id).Err() }
			}
			if f.Shm != nil {
				if err := r.pixels(f); err != nil {
					r.ackID(ctx, m.ID)
					if errors.Is(err, shm.ErrLapped) || errors.Is(err, os.ErrNotExist) {
						r.Lapped++
						continue
					}
					return nil, &EntryError{Stream: r.o.Stream, ID: m.ID, Err: err}
				}
			}
			f.Redelivered = redelivered
			if !redelivered && f.Epoch >= 0 {
				if f.Epoch < r.epoch {
					r.StaleDrops++
					r.ackID(ctx, m.ID)
					continue
				}
				r.epoch = f.Epoch
			}
			r.gap(f)
			return f, nil
		}
	}
}

// pixels fills a shared-memory frame's Data from its slot: a view, or a
// copy checked after the copy with ShmCopy. shm.ErrLapped: the slot holds
// another frame now; os.ErrNotExist: the segment is gone (its camera
// stopped or changed caps), and with it the frame.
func (r *Reader) pixels(f *Frame) error {
	seg, err := r.segment(f.Shm.Segment)
	if err != nil {
		return err
	}
	if r.o.ShmCopy {
		f.Data, err = seg.Copy(nil, *f.Shm, f.SizeBytes)
	} else {
		f.Data, err = seg.View(*f.Shm, f.SizeBytes)
		f.seg = seg
	}
	return err
}

// segment returns the mapping of segment file name, mapping it when new;
// the oldest of more than shmSegments is unmapped (a view of it must not
// outlive shmSegments caps changes).
func (r *Reader) segment(name string) (*shm.Segment, error) {
	for _, s := range r.segs {
		if s.Name == name {
			return s, nil
		}
	}
	s, err := shm.Open(r.o.ShmDir, name)
	if err != nil {
		return nil, err
	}
	r.segs = append(r.segs, s)
	if len(r.segs) > shmSegments {
		_ = r.segs[0].Close()
		r.segs = r.segs[1:]
	}
	return s, nil
}

// Close unmaps the shared-memory segments the Reader mapped: Data of the
// frames it returned without ShmCopy is invalid after it.
func (r *Reader) Close() error {
	for _, s := range r.segs {
		_ = s.Close()
	}
	r.segs = nil
	return nil
}

// gap sets f.LostBefore from the seq of the previous frame of the same
// capture run (another run, after a restart or an owner change, starts
// its own seq: no gap).
func (r *Reader) gap(f *Frame) {
	if f.Redelivered {
		return
	}
	if r.havePrev && f.Instance == r.prevInst && f.Seq > r.prevSeq+1 {
		f.LostBefore = f.Seq - r.prevSeq - 1
	}
	r.prevInst, r.prevSeq, r.havePrev = f.Instance, f.Seq, true
}

func (r *Reader) ackID(ctx context.Context, id string) {
	if r.o.Group != "" {
		_ = r.c.XAck(ctx, r.o.Stream, r.o.Group, id).Err()
	}
}

// read returns the next entries: in group mode this consumer's own
// pending ones first (delivered before a restart, not acked), then those
// claimed from dead consumers, then new ones; in latest mode the newest.
func (r *Reader) read(ctx context.Context) ([]redis.XMessage, bool, error) {
	if r.o.Group == "" {
		return r.readLatest(ctx)
	}
	if len(r.queue) > 0 {
		m := r.queue[0]
		r.queue = r.queue[1:]
		return []redis.XMessage{m}, true, nil
	}
	if !r.groupMade {
		err := r.c.XGroupCreateMkStream(ctx, r.o.Stream, r.o.Group, r.o.Start).Err()
		if err != nil && !isBusyGroup(err) {
			return nil, false, err
		}
		r.groupMade = true
	}
	if r.pendFrom != "" {
		res, err := r.c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: r.o.Group, Consumer: r.o.Consumer,
			Streams: []string{r.o.Stream, r.pendFrom}, Count: 16}).Result()
		if err != nil {
			return nil, false, err
		}
		if len(res) == 0 || len(res[0].Messages) == 0 {
			r.pendFrom = ""
			return nil, false, nil
		}
		ms := res[0].Messages
		r.pendFrom = ms[len(ms)-1].ID
		r.enqueue(ctx, ms)
		return nil, false, nil
	}
	if r.o.ClaimIdle > 0 && time.Now().After(r.nextClaim) {
		r.nextClaim = time.Now().Add(r.o.ClaimIdle / 2)
		if err := r.claim(ctx); err != nil {
			return nil, false, err
		}
		if len(r.queue) > 0 {
			return nil, false, nil
		}
	}
	res, err := r.c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: r.o.Group, Consumer: r.o.Consumer,
		Streams: []string{r.o.Stream, ">"}, Count: 1, Block: r.o.Block}).Result()
	if err != nil {
		return nil, false, err
	}
	if len(res) == 0 {
		return nil, false, nil
	}
	return res[0].Messages, false, nil
}

// claim takes over the entries pending for longer than ClaimIdle with
// other consumers of the group (dead ones: a live one acks sooner); this
// consumer's own slow entries stay where they are.
func (r *Reader) claim(ctx context.Context) error {
	ps, err := r.c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: r.o.Stream, Group: r.o.Group,
		Idle: r.o.ClaimIdle, Start: "-", End: "+", Count: 64}).Result()
	if err != nil {
		return err
	}
	var ids []string
	for _, p := range ps {
		if p.Consumer != r.o.Consumer {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	ms, err := r.c.XClaim(ctx, &redis.XClaimArgs{Stream: r.o.Stream, Group: r.o.Group, Consumer: r.o.Consumer,
		MinIdle: r.o.ClaimIdle, Messages: ids}).Result()
	if err != nil {
		return err
	}
	r.enqueue(ctx, ms)
	return nil
}

// enqueue keeps entries to deliver again; one trimmed from the stream
// while pending (no values) is acked, since there is nothing to read.
func (r *Reader) enqueue(ctx context.Context, ms []redis.XMessage) {
	for _, m := range ms {
		if m.Values == nil {
			r.ackID(ctx, m.ID)
			continue
		}
		r.queue = append(r.queue, m)
	}
}

// readLatest returns the newest entry when it is not the last one
// returned, else waits (Block) for a new one and returns the newest then.
func (r *Reader) readLatest(ctx context.Context) ([]redis.XMessage, bool, error) {
	msgs, err := r.c.XRevRangeN(ctx, r.o.Stream, "+", "-", 1).Result()
	if err != nil {
		return nil, false, err
	}
	if len(msgs) > 0 && (r.last == "" || newer(msgs[0].ID, r.last)) {
		r.last = msgs[0].ID
		return msgs, false, nil
	}
	// "$": entries added from now on. An id to read after would never see
	// a stream made again with lower ids (Redis restarted without data).
	res, err := r.c.XRead(ctx, &redis.XReadArgs{Streams: []string{r.o.Stream, "$"}, Count: 1, Block: r.o.Block}).Result()
	if err != nil {
		return nil, false, err
	}
	if len(res) == 0 || len(res[0].Messages) == 0 {
		return nil, false, nil
	}
	got := res[0].Messages[0]
	if msgs, err := r.c.XRevRangeN(ctx, r.o.Stream, "+", "-", 1).Result(); err == nil && len(msgs) > 0 && newer(msgs[0].ID, got.ID) {
		got = msgs[0]
	}
	r.last = got.ID
	return []redis.XMessage{got}, false, nil
}

// newer reports whether stream id a comes after b.
func newer(a, b string) bool {
	var am, as, bm, bs uint64
	if _, err := fmt.Sscanf(a, "%d-%d", &am, &as); err != nil {
		return true
	}
	if _, err := fmt.Sscanf(b, "%d-%d", &bm, &bs); err != nil {
		return true
	}
	return am > bm || (am == bm && as > bs)
}

func isBusyGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP") }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
