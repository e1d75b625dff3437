package e2e

// gstcapture's JSON log as the tests read it: its lines, the state changes
// of a camera, and the final accounting logged per camera at exit.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// logLine is one line of the JSON log: the fields tests read by name, and
// the line itself for the rest (decode).
type logLine struct {
	Time     time.Time `json:"time"`
	Level    string    `json:"level"`
	Msg      string    `json:"msg"`
	CameraID string    `json:"camera_id"`
	State    string    `json:"state"`
	Reason   string    `json:"reason"`
	Error    string    `json:"error"`
	Flushed  *int64    `json:"flushed_frames"`
	Stored   *int64    `json:"stored_anyway"`
	raw      []byte
}

// parseLog returns every JSON line of a process's output (other lines,
// GStreamer's own before the logger is set up, are skipped).
func parseLog(out string) []logLine {
	var res []logLine
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if !bytes.HasPrefix(sc.Bytes(), []byte("{")) {
			continue
		}
		var l logLine
		// A field of another type than the one named here (a numeric
		// "error" attribute, say) leaves that field empty, not the line.
		var typeErr *json.UnmarshalTypeError
		if err := json.Unmarshal(sc.Bytes(), &l); err == nil || errors.As(err, &typeErr) {
			l.raw = append([]byte(nil), sc.Bytes()...)
			res = append(res, l)
		}
	}
	return res
}

// decode unmarshals the whole line into v.
func (l logLine) decode(t testing.TB, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(l.raw, v), "log line %s", l.raw)
}

// logged returns the lines of out with message msg, of camera cam unless
// cam is empty.
func logged(out, msg, cam string) []logLine {
	var res []logLine
	for _, l := range parseLog(out) {
		if l.Msg == msg && (cam == "" || l.CameraID == cam) {
			res = append(res, l)
		}
	}
	return res
}

// stateChanges returns cam's "camera state changed" lines.
func stateChanges(out, cam string) []logLine { return logged(out, "camera state changed", cam) }

// accounting is one "final accounting" line that gstcapture logs per
// camera when it stops.
type accounting struct {
	Level        string            `json:"level"`
	CameraID     string            `json:"camera_id"`
	Captured     uint64            `json:"captured"`
	Published    uint64            `json:"published"`
	DroppedTotal uint64            `json:"dropped_total"`
	Dropped      map[string]uint64 `json:"dropped"`
	LeftInRing   uint64            `json:"left_in_ring"`
	Unconfirmed  uint64            `json:"unconfirmed"`
	UnconfDrop   uint64            `json:"unconfirmed_dropped"`
	Balanced     bool              `json:"balanced"`
}

// finalAccounting returns the final accounting per camera id, failing
// when a configured camera has none.
func finalAccounting(t testing.TB, out string, ids ...string) map[string]accounting {
	t.Helper()
	res := map[string]accounting{}
	for _, l := range logged(out, "final accounting", "") {
		var a accounting
		l.decode(t, &a)
		res[a.CameraID] = a
	}
	for _, id := range ids {
		require.Contains(t, res, id, "no final accounting line for camera %s in:\n%s", id, tail(out, 3000))
	}
	return res
}

// checkIdentity checks captured = published + dropped (by reason) + left
// in the ring, exactly, from the final numbers, and that nothing is left
// unsettled.
func checkIdentity(t testing.TB, a accounting) {
	t.Helper()
	var sum uint64
	for _, n := range a.Dropped {
		sum += n
	}
	require.Equal(t, a.DroppedTotal, sum, "%s: dropped_total is the sum of the reasons %v", a.CameraID, a.Dropped)
	require.Equal(t, a.Captured, a.Published+sum+a.LeftInRing,
		"%s: captured %d != published %d + dropped %d %v + left in ring %d",
		a.CameraID, a.Captured, a.Published, sum, a.Dropped, a.LeftInRing)
	require.Zero(t, a.Unconfirmed, "%s: frames left unsettled at exit", a.CameraID)
	require.True(t, a.Balanced, "%s: the service itself reports an unbalanced account", a.CameraID)
	require.Equal(t, "INFO", a.Level, "%s: final accounting logged as %s", a.CameraID, a.Level)
}
