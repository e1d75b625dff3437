package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Proc is what /proc says of a process: the figures leak checks and
// measurements compare over time.
type Proc struct {
	RSS     int64          // resident set size (VmRSS), bytes
	Threads int            // Threads
	FDs     int            // open file descriptors
	FDKinds map[string]int // "socket", "pipe", "anon_inode:[eventfd]", "/path" ...
	CPU     time.Duration  // user + system time (utime + stime)
	// ChildCPU is the user + system time of its children that it waited
	// for (cutime + cstime).
	ChildCPU time.Duration
}

// RSSMB is RSS in MiB.
func (p Proc) RSSMB() float64 { return float64(p.RSS) / (1 << 20) }

func (p Proc) String() string {
	return fmt.Sprintf("threads %d, fds %d %v, RSS %.1f MB", p.Threads, p.FDs, p.FDKinds, p.RSSMB())
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times (100 on Linux).
const clockTick = 10 * time.Millisecond

// ReadProc reads /proc/<pid> (this process when pid is 0): status, fd and
// stat. It fails once the process is gone.
func ReadProc(pid int) (Proc, error) {
	dir := procDir(pid)
	var p Proc
	status, err := readStatus(dir)
	if err != nil {
		return p, err
	}
	p.RSS, p.Threads = status.rss, status.threads

	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return p, err
	}
	p.FDs = len(fds)
	p.FDKinds = map[string]int{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		kind, _, _ := strings.Cut(target, ":[") // socket:[123] -> socket
		if strings.HasPrefix(target, "anon_inode:") {
			kind = target
		}
		p.FDKinds[kind]++
	}

	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return p, err
	}
	// The fields after the parenthesised command name (which may hold
	// spaces) start at field 3; utime, stime, cutime, cstime are 14 to 17.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return p, fmt.Errorf("%s/stat: %d fields", dir, len(f)+2)
	}
	var ticks [4]int64
	for i := range ticks {
		if ticks[i], err = strconv.ParseInt(f[11+i], 10, 64); err != nil {
			return p, fmt.Errorf("%s/stat: field %d: %w", dir, 14+i, err)
		}
	}
	p.CPU = time.Duration(ticks[0]+ticks[1]) * clockTick
	p.ChildCPU = time.Duration(ticks[2]+ticks[3]) * clockTick
	return p, nil
}

// RSSBytes returns the resident set size (VmRSS) of process pid, or of
// this process when pid is 0. It reads only /proc/<pid>/status, so a loop
// can call it often.
func RSSBytes(pid int) (int64, error) {
	st, err := readStatus(procDir(pid))
	return st.rss, err
}

func procDir(pid int) string {
	if pid == 0 {
		return "/proc/self"
	}
	return "/proc/" + strconv.Itoa(pid)
}

type procStatus struct {
	rss     int64
	threads int
}

func readStatus(dir string) (procStatus, error) {
	path := filepath.Join(dir, "status")
	var st procStatus
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	var haveRSS, haveThreads bool
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return st, fmt.Errorf("%s: VmRSS %q: %w", path, f[1], err)
			}
			st.rss, haveRSS = kb<<10, true
		case "Threads:":
			if st.threads, err = strconv.Atoi(f[1]); err != nil {
				return st, fmt.Errorf("%s: Threads %q: %w", path, f[1], err)
			}
			haveThreads = true
		}
	}
	switch {
	case !haveRSS:
		return st, fmt.Errorf("%s: no VmRSS line", path)
	case !haveThreads:
		return st, fmt.Errorf("%s: no Threads line", path)
	}
	return st, nil
}
