package testenv

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRSSBytes(t *testing.T) {
	self, err := RSSBytes(0)
	require.NoError(t, err)
	byPid, err := RSSBytes(os.Getpid())
	require.NoError(t, err)
	assert.Greater(t, self, int64(1<<20), "a Go test binary is resident in more than 1 MB")
	assert.InDelta(t, self, byPid, float64(16<<20))
	_, err = RSSBytes(1 << 30) // no such process
	assert.Error(t, err)
}

func TestReadProc(t *testing.T) {
	// Burn a little CPU so that utime is above zero.
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	f, err := os.Open(os.Args[0])
	require.NoError(t, err)
	defer f.Close()

	p, err := ReadProc(os.Getpid())
	require.NoError(t, err)
	assert.Greater(t, p.RSS, int64(1<<20))
	assert.InDelta(t, float64(p.RSS)/(1<<20), p.RSSMB(), 1e-9)
	assert.Greater(t, p.Threads, 1, "the Go runtime runs several threads")
	assert.GreaterOrEqual(t, p.FDs, 4, "stdin, stdout, stderr and the opened file")
	// The descriptor ReadProc listed the directory with is closed by the
	// time it reads the links.
	assert.InDelta(t, p.FDs, sum(p.FDKinds), 1, "every descriptor has a kind: %v", p.FDKinds)
	assert.Positive(t, p.FDKinds[os.Args[0]], "the opened file is listed by its path: %v", p.FDKinds)
	assert.Positive(t, p.CPU, "utime + stime")
	assert.GreaterOrEqual(t, p.ChildCPU, time.Duration(0))
	assert.Contains(t, p.String(), "threads ")

	self, err := ReadProc(0)
	require.NoError(t, err)
	assert.Equal(t, p.Threads > 0, self.Threads > 0)
	_, err = ReadProc(1 << 30)
	assert.Error(t, err)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
