// Package membudget bounds the frame memory of the process: it reads the
// container's memory limit, splits memory.budget between the Go heap
// (GOMEMLIMIT) and the cameras' frames, and sizes each camera's ring in
// bytes within its share. Pure logic, apart from reading cgroup files.
package membudget

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// AutoShare is the part of the container's memory limit that memory.budget
// auto takes: the rest is for what the budget does not count (GStreamer's
// libraries and the decoders' own reference frames, measured as the
// baseline in docs/performance.md), so the kernel's OOM killer stays away.
const AutoShare = 0.75

// GoShare is the part of the budget the Go heap gets as its soft limit
// (GOMEMLIMIT): snapshots, Redis buffers, traces. Frames are C memory
// (GStreamer buffers) and get the rest.
const GoShare = 0.25

// minGoLimit is the smallest GOMEMLIMIT the split sets.
const minGoLimit = 32 << 20

// Frames before the ring, per camera, at most: the appsink's max-buffers
// (2) and the hand-off queue to Go (appsink.c GC_QUEUE_CAP, 8).
const PreRingFrames = 2 + 8

// Limit is the container's memory limit as read from the cgroup files.
type Limit struct {
	Bytes  int64  // 0 = none found
	Source string // the file it came from, for logs and /health
}

// ContainerLimit finds the memory limit of the cgroup this process runs in:
// cgroup v2's memory.max (the smallest of its cgroup and every ancestor up
// to the mount's root, which is the container's own under a cgroup
// namespace) or v1's memory.limit_in_bytes. root is the cgroup mount
// ("/sys/fs/cgroup") and procCgroup the process's cgroup file
// ("/proc/self/cgroup"); tests pass a fake tree. No limit is not an error.
func ContainerLimit(root, procCgroup string) (Limit, error) {
	data, err := os.ReadFile(procCgroup)
	if err != nil {
		if os.IsNotExist(err) {
			return Limit{}, nil
		}
		return Limit{}, fmt.Errorf("memory limit: %w", err)
	}
	var best Limit
	consider := func(file string, unlimitedAbove int64) error {
		b, err := os.ReadFile(file)
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return fmt.Errorf("memory limit: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "max" || s == "" {
			return nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("memory limit: %s: not a byte count: %q", file, s)
		}
		if n >= unlimitedAbove {
			return nil // v1 writes "no limit" as a huge page-rounded number
		}
		if best.Bytes == 0 || n < best.Bytes {
			best = Limit{Bytes: n, Source: file}
		}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		p := path.Clean("/" + parts[2])
		switch {
		case parts[0] == "0" && parts[1] == "":
			// v2: the cgroup and its ancestors; under a cgroup namespace
			// the path is "/" and the mount's root is the container.
			for dir := p; ; dir = path.Dir(dir) {
				if err := consider(filepath.Join(root, dir, "memory.max"), 1<<62); err != nil {
					return Limit{}, err
				}
				if dir == "/" {
					break
				}
			}
		case hasController(parts[1], "memory"):
			for _, dir := range []string{p, "/"} {
				if err := consider(filepath.Join(root, "memory", dir, "memory.limit_in_bytes"), 1<<62); err != nil {
					return Limit{}, err
				}
			}
		}
	}
	return best, nil
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// Split is how a budget is shared out.
type Split struct {
	Budget    int64  // memory.budget in bytes; 0 = no bound
	Source    string // where Budget came from: "memory.budget", or the limit's file
	GoLimit   int64  // for GOMEMLIMIT; 0 = leave the runtime's default
	PerCamera int64  // frame bytes each camera may hold; 0 = no bound
}

// Plan splits budget (config.BudgetAuto = 0, config.BudgetNone < 0, or a
// size) for cameras cameras, given the container's limit.
func Plan(budget int64, limit Limit, cameras int) Split {
	var s Split
	switch {
	case budget > 0:
		s.Budget, s.Source = budget, "memory.budget"
	case budget == 0 && limit.Bytes > 0:
		s.Budget = int64(float64(limit.Bytes) * AutoShare)
		s.Source = fmt.Sprintf("%.0f%% of %s (%d bytes)", AutoShare*100, limit.Source, limit.Bytes)
	default:
		return s
	}
	s.GoLimit = max(int64(float64(s.Budget)*GoShare), minGoLimit)
	if cameras > 0 {
		s.PerCamera = max(s.Budget-s.GoLimit, 0) / int64(cameras)
	}
	return s
}

// Ring is one camera's ring sizing for a frame size.
type Ring struct {
	Bytes  int64 // the ring's byte limit (SetByteLimit); 0 = none
	Frames int   // frames of this size it holds: min(ring_size, Bytes/size)
	// Short is set when the share does not hold ring_size frames besides
	// the frames before the ring and one batch in flight.
	Short bool
}

// SizeRing fits a camera's ring into its share perCamera for frames of
// frameBytes: the share holds PreRingFrames, the batch in flight
// (batchFrames) and the ring; the ring keeps at least one frame.
// perCamera 0 means no bound: the ring holds ringSize frames.
func SizeRing(perCamera int64, frameBytes int, ringSize, batchFrames int) Ring {
	if perCamera <= 0 || frameBytes <= 0 {
		return Ring{Frames: ringSize}
	}
	sz := int64(frameBytes)
	room := perCamera - int64(PreRingFrames+batchFrames)*sz
	frames := int(max(room, 0) / sz)
	r := Ring{Frames: min(max(frames, 1), ringSize), Short: frames < ringSize}
	r.Bytes = int64(r.Frames) * sz
	return r
}

// SizeRingVarying is SizeRing for frames whose size varies around
// meanBytes (JPEG; frame.SizeEstimate): the same number of frames, but the
// byte limit is all the room the share leaves the ring, so that frames a
// little above the mean do not push a ring that fits ring_size below it,
// while a run of large frames still cannot take more than the share.
func SizeRingVarying(perCamera int64, meanBytes int, ringSize, batchFrames int) Ring {
	r := SizeRing(perCamera, meanBytes, ringSize, batchFrames)
	if r.Bytes > 0 {
		room := perCamera - int64(PreRingFrames+batchFrames)*int64(meanBytes)
		r.Bytes = max(r.Bytes, room)
	}
	return r
}
