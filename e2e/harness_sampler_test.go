package e2e

// The service over time: /health and /proc (testenv.ReadProc) sampled from
// a background goroutine, which never fails the test, and read at chosen
// moments, which does.

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// readProc reads the service's /proc figures, failing the test when it
// cannot.
func readProc(t testing.TB, p *proc) testenv.Proc {
	t.Helper()
	st, err := testenv.ReadProc(p.Pid())
	require.NoError(t, err, "read /proc/%d", p.Pid())
	require.NotZero(t, st.Threads, "no Threads in /proc/%d/status", p.Pid())
	require.NotZero(t, st.RSS, "no VmRSS in /proc/%d/status", p.Pid())
	return st
}

// sample is one look at the service.
type sample struct {
	At         time.Time
	Redis      string // /health redis
	Frozen     int64  // /health frozen_pipelines
	Cams       map[string]cameraStatus
	Proc       testenv.Proc // zero once the process is gone
	Goroutines int          // go_goroutines from /metrics, when the sampler reads it
}

// sampler polls the service every period until stopped.
type sampler struct {
	mu      sync.Mutex
	samples []sample
	stop    chan struct{}
	done    chan struct{}
}

// startSampler samples /health and /proc every period; with goroutines
// also go_goroutines from /metrics.
func startSampler(t testing.TB, svc *service, period time.Duration, goroutines bool) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			if h, ok := svc.tryHealth(); ok {
				x := sample{At: time.Now(), Redis: h.Redis, Frozen: h.Frozen, Cams: h.byID()}
				if p, err := testenv.ReadProc(svc.Pid()); err == nil {
					x.Proc = p
				}
				if goroutines {
					x.Goroutines = svc.goroutines()
				}
				s.mu.Lock()
				s.samples = append(s.samples, x)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(s.Stop)
	return s
}

// goroutines reads go_goroutines from /metrics (0 when it cannot).
func (s *service) goroutines() int {
	m, ok := s.tryMetrics()
	if !ok {
		return 0
	}
	return int(max(m.value("go_goroutines"), 0))
}

// Stop ends sampling (idempotent).
func (s *sampler) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// Between returns the samples taken in [from, to].
func (s *sampler) Between(from, to time.Time) []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sample
	for _, x := range s.samples {
		if !x.At.Before(from) && !x.At.After(to) {
			out = append(out, x)
		}
	}
	return out
}

// All returns every sample so far.
func (s *sampler) All() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.samples...)
}

// peakRSSMB is the largest RSS of samples, in MiB.
func peakRSSMB(samples []sample) float64 {
	peak := 0.0
	for _, s := range samples {
		peak = math.Max(peak, s.Proc.RSSMB())
	}
	return peak
}

// captureRate is cam's frames_captured per second between the first and
// last of samples (NaN with fewer than two).
func captureRate(samples []sample, cam string) float64 {
	if len(samples) < 2 {
		return math.NaN()
	}
	a, b := samples[0], samples[len(samples)-1]
	dt := b.At.Sub(a.At).Seconds()
	if dt <= 0 {
		return math.NaN()
	}
	return float64(b.Cams[cam].Captured-a.Cams[cam].Captured) / dt
}
