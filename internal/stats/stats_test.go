package stats

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReasonSet(t *testing.T) {
	var s ReasonSet
	assert.True(t, s.Empty())
	assert.Equal(t, "", s.String())
	s = s.Add(DropFrozen).Add(DropBlack)
	assert.True(t, s.Has(DropBlack))
	assert.False(t, s.Has(DropUniform))
	assert.Equal(t, "black,frozen", s.String(), "label order, not insertion order")
	assert.Equal(t, "corrupt,ring_overflow", ReasonSet(0).Add(DropRingOverflow).Add(DropCorrupt).String())
	assert.Zero(t, testing.AllocsPerRun(10, func() { _ = s.String() }), "validation sets come from a table")
}

func TestValidationReasons(t *testing.T) {
	var names []string
	for _, r := range ValidationReasons() {
		names = append(names, r.String())
	}
	assert.Equal(t, []string{"black", "uniform", "frozen", "size", "corrupt"}, names)
}

// Flagged frames are counted per rule and reported next to the drops, but
// they are kept, so they stay out of the accounting identity.
func TestFlaggedInSnapshot(t *testing.T) {
	c := NewCamera("cam-1")
	c.Flag(ReasonSet(0).Add(DropBlack))
	c.Flag(ReasonSet(0).Add(DropBlack).Add(DropCorrupt))
	assert.EqualValues(t, 2, c.Flagged(DropBlack))
	assert.EqualValues(t, 1, c.Flagged(DropCorrupt))
	assert.Zero(t, c.Flagged(DropRingOverflow))
	assert.Zero(t, c.DroppedTotal())

	raw, err := json.Marshal(c.Snapshot(time.Now()))
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(raw, &got))
	assert.Equal(t, map[string]any{"black": 2.0, "corrupt": 1.0}, got["frames_flagged"])

	raw, err = json.Marshal(NewCamera("cam-2").Snapshot(time.Now()))
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"frames_flagged":{}`)
}
