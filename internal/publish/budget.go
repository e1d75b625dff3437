package publish

import (
	"context"
	"log/slog"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Budget sizing constants.
const (
	// AutoShare is the share of Redis's maxmemory that memory_budget auto
	// gives the streams: the rest covers Redis's own use, client buffers
	// and allocator slack.
	AutoShare = 0.75
	// entryOverhead is what an entry costs besides its pixels: its other
	// fields, its stream node and the radix tree.
	entryOverhead = 512
	// inFlight frames per camera are kept out of the budget: the one Redis
	// is receiving and the one MAXLEN trims after the add.
	inFlight = 2
	// oomShrink is how much every camera's share shrinks after an OOM
	// reply; minFactor is as far as it goes.
	oomShrink   = 0.75
	minFactor   = 0.1
	shrinkEvery = time.Second
	regrowEvery = 5 * time.Minute
)

// EntryCost estimates what one entry of frameBytes pixels costs in
// Redis's used_memory: the pixel string rounded up to jemalloc's size class
// (classes are a quarter of the power of two below apart, so 720p BGR's
// 2,764,800 bytes take 3 MiB) plus entryOverhead.
func EntryCost(frameBytes int64) int64 {
	if frameBytes <= 0 {
		return entryOverhead
	}
	return allocClass(frameBytes) + entryOverhead
}

// allocClass rounds n up to jemalloc's size class: for n in (2^k, 2^(k+1)]
// the classes are 2^(k-2) apart. Below 4 KiB the spacing is finer, which
// the rounding to 2^(k-2) still covers from above.
func allocClass(n int64) int64 {
	if n <= 8 {
		return 8
	}
	k := 63 - bits.LeadingZeros64(uint64(n-1)) // 2^k < n <= 2^(k+1)
	step := int64(1) << max(k-2, 3)
	return (n + step - 1) / step * step
}

// Load is one camera's demand on the budget.
type Load struct {
	FPS        float64
	FrameBytes int64 // 0 until the camera's first frame
	// Cap bounds the camera's MAXLEN besides redis.maxlen; 0 = none. A
	// camera with delivery shm has shm_slots: older entries name lapped slots.
	Cap int64
}

// Limit is one camera's share: its stream's MAXLEN and the history that
// gives at the camera's fps.
type Limit struct {
	MaxLen    int64
	Retention time.Duration
	// Shortened is true when the budget, not redis.retention or
	// redis.maxlen, set MaxLen.
	Shortened bool
}

// Plan shares budget bytes (0 = unbounded) among the cameras: every camera
// gets the same history T = min(retention, available / Σ cost·fps), where
// available is budget·factor less inFlight entries per camera. MAXLEN is
// floor(T·fps), at least 1, and at most maxLen when that is > 0. A camera
// whose frame size is not known yet gets retention·fps and no share.
func Plan(loads map[string]Load, retention time.Duration, maxLen, budget int64, factor float64) map[string]Limit {
	t := retention.Seconds()
	shortened := false
	if budget > 0 {
		avail := float64(budget) * factor
		perSec := 0.0
		for _, l := range loads {
			if l.FrameBytes > 0 && l.FPS > 0 {
				c := float64(EntryCost(l.FrameBytes))
				avail -= inFlight * c
				perSec += c * l.FPS
			}
		}
		if perSec > 0 {
			if fit := max(avail, 0) / perSec; fit < t {
				t, shortened = fit, true
			}
		}
	}
	out := make(map[string]Limit, len(loads))
	for id, l := range loads {
		if l.FPS <= 0 {
			// Not registered with its fps (AddCamera): trimmed by maxLen
			// alone, outside the budget.
			out[id] = Limit{MaxLen: maxLen}
			continue
		}
		fps := l.FPS
		n := int64(math.Floor(t*fps + 1e-9))
		short := shortened && l.FrameBytes > 0
		if !short {
			n = int64(math.Ceil(retention.Seconds()*fps - 1e-9))
		}
		n = max(n, 1)
		if maxLen > 0 && n > maxLen {
			n, short = maxLen, false
		}
		if l.Cap > 0 && n > l.Cap {
			n, short = l.Cap, false
		}
		out[id] = Limit{MaxLen: n, Retention: time.Duration(float64(n) / fps * float64(time.Second)), Shortened: short}
	}
	return out
}

// Footprint is what the streams hold at their limits, in bytes.
func Footprint(loads map[string]Load, limits map[string]Limit) int64 {
	var sum int64
	for id, l := range loads {
		if l.FPS > 0 {
			sum += (limits[id].MaxLen + inFlight) * EntryCost(l.FrameBytes)
		}
	}
	return sum
}

// Retention is told one camera's stream limit whenever it changes, for
// health and metrics; the camera's counters implement it (*stats.Camera).
// Calls come with the budget's lock held and must not block.
type Retention interface {
	CameraID() string
	SetRetention(maxLen int64, retention time.Duration, shortened bool)
}

// budget keeps every camera's limit up to date as frame sizes, Redis's
// maxmemory and OOM replies come in. MaxLen is read on every round trip
// without a lock.
type budget struct {
	retention time.Duration
	maxLen    int64
	fixed     int64 // redis.memory_budget; 0 = auto
	log       *slog.Logger

	mu        sync.Mutex
	told      map[string]Retention // by camera id: AddCamera's
	loads     map[string]Load
	limits    map[string]Limit
	maxmemory int64 // Redis's, as last read; -1 before the first read
	factor    float64
	// fleet is this replica's part of the budget, by cameras (1 outside
	// a fleet): the replicas of a fleet share one Redis.
	fleet    float64
	warned   bool // the no-maxmemory footprint warning was given
	cur      map[string]*atomic.Int64
	said     map[string]Limit // the limit last logged per camera
	shrunkAt time.Time        // the last OOM shrink
}

func newBudget(retention time.Duration, maxLen, fixed int64, log *slog.Logger) *budget {
	if retention <= 0 {
		retention = 10 * time.Second
	}
	return &budget{retention: retention, maxLen: maxLen, fixed: fixed, log: log,
		loads: map[string]Load{}, limits: map[string]Limit{}, told: map[string]Retention{}, maxmemory: -1, factor: 1, fleet: 1, cur: map[string]*atomic.Int64{}, said: map[string]Limit{}}
}

// tell registers who is told camera id's limit; call it before add.
func (b *budget) tell(id string, r Retention) {
	b.mu.Lock()
	b.told[id] = r
	b.mu.Unlock()
}

// add registers a camera; before its first frame it gets retention·fps.
// fps 0 looks the camera up, registering it outside the budget if it is
// new. It returns the camera's MAXLEN, kept current.
func (b *budget) add(id string, fps float64) *atomic.Int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.cur[id]; ok {
		if l := b.loads[id]; fps > 0 && l.FPS != fps {
			l.FPS = fps
			b.loads[id] = l
			b.replan()
		}
		return c
	}
	c := &atomic.Int64{}
	b.cur[id] = c
	b.loads[id] = Load{FPS: fps}
	b.replan()
	return c
}

// remove forgets camera id; the others' shares grow into its room.
func (b *budget) remove(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.cur[id]; !ok {
		return
	}
	delete(b.cur, id)
	delete(b.loads, id)
	delete(b.limits, id)
	delete(b.told, id)
	delete(b.said, id)
	b.replan()
}

// resize records camera id's frame size.
func (b *budget) resize(id string, frameBytes int64) {
	b.update(id, func(l *Load) { l.FrameBytes = frameBytes })
}

// setCap records camera id's own MAXLEN cap (Load.Cap; 0 = none).
func (b *budget) setCap(id string, n int64) { b.update(id, func(l *Load) { l.Cap = n }) }

// update changes camera id's load with set and re-plans when it changed.
func (b *budget) update(id string, set func(*Load)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.loads[id]
	if !ok {
		return
	}
	old := l
	set(&l)
	if l == old {
		return
	}
	b.loads[id] = l
	b.replan()
}

// setMaxmemory records Redis's maxmemory (0 = none) and reports whether it
// changed; a change starts the shares over from the full budget.
func (b *budget) setMaxmemory(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n == b.maxmemory {
		return false
	}
	b.maxmemory, b.factor = n, 1
	b.replan()
	return true
}

// shrink narrows every camera's share after an OOM reply and reports
// whether it did. Replies within shrinkEvery of a shrink are one event:
// cameras refused together should not shrink the shares once each.
func (b *budget) shrink(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.factor <= minFactor || b.bytes() == 0 || now.Sub(b.shrunkAt) < shrinkEvery {
		// At the floor, just shrunk, or nothing to shrink: Redis is full
		// without a budget (no maxmemory and none configured).
		return false
	}
	b.factor = max(b.factor*oomShrink, minFactor)
	b.shrunkAt = now
	b.replan()
	return true
}

// regrow undoes one shrink after regrowEvery without one, so a passing
// spike (another tenant's burst) does not shorten the history for good;
// if the room is still taken, the next OOM reply shrinks it again.
func (b *budget) regrow(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.factor >= 1 || now.Sub(b.shrunkAt) < regrowEvery {
		return
	}
	b.factor = min(1, b.factor/oomShrink)
	b.shrunkAt = now
	b.replan()
}

// bytes is the budget in force: memory_budget, or AutoShare of maxmemory;
// a memory_budget above that share of a known maxmemory cannot be had, so
// the share bounds it too.
func (b *budget) bytes() int64 {
	share := int64(0)
	if b.maxmemory > 0 {
		share = int64(float64(b.maxmemory) * AutoShare)
	}
	total := share
	switch {
	case b.fixed > 0 && share > 0:
		total = min(b.fixed, share)
	case b.fixed > 0:
		total = b.fixed
	}
	return int64(float64(total) * b.fleet)
}

// setFleet sets this replica's part of the budget (0 < f <= 1).
func (b *budget) setFleet(f float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f <= 0 || f > 1 || f == b.fleet {
		return
	}
	b.fleet = f
	b.replan()
}

// Bytes returns the budget in force (0 = unbounded).
func (b *budget) Bytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes()
}

func (b *budget) replan() {
	total := b.bytes()
	limits := Plan(b.loads, b.retention, b.maxLen, total, b.factor)
	// Logged once the shares are settled, that is once every camera's frame
	// size is known: the first cameras to connect would otherwise log a
	// share that the next ones halve a second later.
	settled := b.allSized()
	for id, l := range limits {
		b.cur[id].Store(l.MaxLen)
		if old, seen := b.limits[id]; !seen || old != l {
			if r := b.told[id]; r != nil {
				r.SetRetention(l.MaxLen, l.Retention, l.Shortened)
			}
		}
		if !settled {
			continue
		}
		said := b.said[id]
		switch {
		case l.Shortened && (!said.Shortened || said.MaxLen != l.MaxLen):
			b.log.Warn("redis retention shortened: the configured history does not fit redis.memory_budget",
				"camera_id", id, "configured", b.retention.String(), "effective", l.Retention.Round(time.Millisecond).String(),
				"maxlen", l.MaxLen, "budget_bytes", total, "share", b.factor)
		case !l.Shortened && said.Shortened:
			b.log.Info("redis retention restored", "camera_id", id, "effective", l.Retention.Round(time.Millisecond).String(), "maxlen", l.MaxLen)
		}
		b.said[id] = l
	}
	b.limits = limits
	if total == 0 && b.maxmemory == 0 && !b.warned && b.allSized() {
		b.warned = true
		b.log.Warn("redis has no maxmemory: nothing bounds its memory but redis.retention and redis.maxlen; "+
			"set maxmemory (or redis.memory_budget) to the projected footprint and some room",
			"projected_bytes", Footprint(b.loads, limits), "retention", b.retention)
	}
}

func (b *budget) allSized() bool {
	for _, l := range b.loads {
		if l.FrameBytes == 0 {
			return false
		}
	}
	return len(b.loads) > 0
}

// memoryEvery is how often WatchMemory re-reads Redis's maxmemory.
const memoryEvery = 30 * time.Second

// WatchMemory reads Redis's maxmemory and eviction policy now and every
// memoryEvery until ctx is done, re-planning the shares when maxmemory
// changes. A Redis that does not answer is retried on the next tick; until
// the first answer the streams are trimmed by retention alone.
func (p *Publisher) WatchMemory(ctx context.Context) {
	t := time.NewTicker(memoryEvery)
	defer t.Stop()
	for {
		p.readMemory(ctx)
		p.budget.regrow(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Publisher) readMemory(parent context.Context) {
	ctx, cancel := context.WithTimeout(parent, p.opts.Timeout)
	defer cancel()
	maxmemory, policy, err := redisMemory(ctx, p.client)
	if err != nil {
		p.log.Debug("redis INFO memory failed; shares unchanged", "err", err)
		return
	}
	if prev, _ := p.policyWarned.Load().(string); prev != policy {
		p.policyWarned.Store(policy)
		if strings.HasPrefix(policy, "allkeys-") {
			p.log.Warn("redis evicts any key when full (maxmemory-policy "+policy+"): frame streams vanish under consumers "+
				"instead of being trimmed; use noeviction (or a volatile-* policy) and let redis.memory_budget bound the streams",
				"maxmemory_policy", policy)
		}
	}
	changed := p.budget.setMaxmemory(maxmemory)
	if b := p.budget; changed && b.fixed > 0 && maxmemory > 0 && float64(b.fixed) > float64(maxmemory)*AutoShare {
		p.log.Warn("redis.memory_budget is more than 75% of Redis's maxmemory, which Redis would refuse (redis_oom): using 75% of maxmemory",
			"memory_budget", b.fixed, "maxmemory", maxmemory, "budget_bytes", b.Bytes())
	}
}

// redisMemory returns Redis's maxmemory (0 = none) and maxmemory-policy.
// For a cluster it is the sum over the masters, 0 if any has none.
func redisMemory(ctx context.Context, c redis.UniversalClient) (int64, string, error) {
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return 0, "", err
		}
		n, pol := parseMemoryInfo(info)
		return n, pol, nil
	}
	var mu sync.Mutex
	var sum int64
	var policy string
	unbounded := false
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		info, err := m.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		n, pol := parseMemoryInfo(info)
		mu.Lock()
		defer mu.Unlock()
		sum += n
		unbounded = unbounded || n == 0
		policy = pol
		return nil
	})
	if unbounded {
		sum = 0
	}
	return sum, policy, err
}

// parseMemoryInfo reads maxmemory and maxmemory_policy from INFO memory.
func parseMemoryInfo(info string) (maxmemory int64, policy string) {
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "maxmemory":
			maxmemory, _ = strconv.ParseInt(v, 10, 64)
		case "maxmemory_policy":
			policy = v
		}
	}
	return maxmemory, policy
}
