package testenv

import (
	"os"
	"testing"

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
