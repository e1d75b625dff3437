package e2e

// The part of the harness the live-change tests (issue 14) add: the
// configuration file saved under a running service as an editor saves it,
// the reloads as /metrics and the log count them, the camera API's writes,
// and each stream's seq followed entry by entry.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// rewriteConfig saves content as the service's configuration file the way
// editors do: a new file next to it, renamed over it. It returns when the
// rename was done.
func (s *service) rewriteConfig(t testing.TB, content string) time.Time {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(s.Config), "."+filepath.Base(s.Config)+".swp")
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, s.Config), "rename the new configuration over %s", s.Config)
	return time.Now()
}

// liveYAML renders cfg and lets edit change the document before it is
// written: a key svcConfig does not have, a value it would not write.
func liveYAML(t testing.TB, cfg svcConfig, edit func(doc map[string]any)) string {
	t.Helper()
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(cfg.YAML(t)), &doc))
	edit(doc)
	b, err := yaml.Marshal(doc)
	require.NoError(t, err)
	return string(b)
}

// liveCamera is the document's cameras[i], for liveYAML's edit.
func liveCamera(doc map[string]any, i int) map[string]any {
	return doc["cameras"].([]any)[i].(map[string]any)
}

// mustConfig is /health's config section, which must be there.
func (r healthReport) mustConfig(t testing.TB) configStatus {
	t.Helper()
	require.NotNil(t, r.Config, "/health has no config section")
	return *r.Config
}

// problemPaths lists the paths of problems.
func problemPaths(problems []configProblem) []string {
	out := make([]string, len(problems))
	for i, p := range problems {
		out[i] = p.Path
	}
	return out
}

// reloads is rtsp_config_reloads_total by result.
func (m metrics) reloads() map[string]float64 { return m.sumBy("rtsp_config_reloads_total", "result") }

// reloadCount is rtsp_config_reloads_total{result=result} (0 without the
// series).
func (m metrics) reloadCount(result string) float64 {
	return max(m.value("rtsp_config_reloads_total", "result", result), 0)
}

// waitReloads waits until rtsp_config_reloads_total counts n reloads (of
// any result) and returns /health as it is then.
func (s *service) waitReloads(t testing.TB, n int, within time.Duration) healthReport {
	t.Helper()
	var last map[string]float64
	deadline := time.Now().Add(within)
	for {
		if m, ok := s.tryMetrics(); ok {
			last = m.reloads()
			total := 0.0
			for _, v := range last {
				total += v
			}
			if total >= float64(n) {
				return s.health(t)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service did not count %d configuration reloads within %s: rtsp_config_reloads_total %v; output:\n%s",
				n, within, last, tail(s.Output(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLogged waits for a log line with message msg logged at or after
// since, and returns the first.
func (s *service) waitLogged(t testing.TB, msg string, since time.Time, within time.Duration) logLine {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, l := range logged(s.Output(), msg, "") {
			if !l.Time.Before(since) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q after %s within %s; output:\n%s", msg, since.Format(time.RFC3339Nano), within, tail(s.Output(), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// loggedSince is logged, only the lines logged at or after since.
func loggedSince(out, msg string, since time.Time) []logLine {
	var res []logLine
	for _, l := range logged(out, msg, "") {
		if !l.Time.Before(since) {
			res = append(res, l)
		}
	}
	return res
}

// cameraFamilies names the metric families that have a series of camera id.
func (m metrics) cameraFamilies(id string) []string {
	var out []string
	for name := range m.fams {
		if len(m.series(name, false, "camera_id", id)) > 0 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// apiDo sends a request to the service with token ("" for none) and
// body (nil, a string sent as it is, or a value sent as JSON); it returns
// the status and the body.
func (s *service) apiDo(t testing.TB, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(t, err)
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.HTTP+path, r)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := rawHTTP.Do(req)
	require.NoError(t, err, "%s %s", method, path)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "%s %s: read the body", method, path)
	return resp.StatusCode, b
}

// admin is apiDo with the admin token.
func (s *service) admin(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	return s.apiDo(t, method, path, e2eAdminToken, body)
}

// apiCamera is GET /api/v1/cameras/{id}: the status, and the camera when
// it is 200.
func (s *service) apiCamera(t testing.TB, id string) (int, cameraStatus) {
	t.Helper()
	var c cameraStatus
	code, body := httpGet(t, s.HTTP+"/api/v1/cameras/"+id)
	if code == http.StatusOK {
		require.NoError(t, json.Unmarshal(body, &c), "GET /api/v1/cameras/%s: %s", id, body)
	}
	return code, c
}

// apiCameraIDs lists the ids GET /api/v1/cameras answers with.
func (s *service) apiCameraIDs(t testing.TB) []string {
	t.Helper()
	var list struct {
		Cameras []cameraStatus `json:"cameras"`
	}
	require.Equal(t, http.StatusOK, s.getJSON(t, "/api/v1/cameras", &list))
	ids := make([]string, len(list.Cameras))
	for i, c := range list.Cameras {
		ids[i] = c.ID
	}
	return ids
}

// apiError is the camera API's answer to a refused request.
type apiError struct {
	Error    string          `json:"error"`
	Problems []configProblem `json:"problems"`
}

func decodeAPIError(t testing.TB, body []byte) apiError {
	t.Helper()
	var e apiError
	require.NoError(t, json.Unmarshal(body, &e), "error body %s", body)
	return e
}

// entryTime is the time Redis added the entry with stream id id.
func entryTime(t testing.TB, id string) time.Time {
	t.Helper()
	ms, _, _ := strings.Cut(id, "-")
	v, err := strconv.ParseInt(ms, 10, 64)
	require.NoError(t, err, "stream entry id %q", id)
	return time.UnixMilli(v)
}

// entrySeqs returns the seq of each entry of cam's stream.
func entrySeqs(t testing.TB, cam string, msgs []redis.XMessage) []uint64 {
	t.Helper()
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = parseEntry(t, cam, m).Seq
	}
	return out
}

// seqGaps describes each step of seqs that is not +1.
func seqGaps(seqs []uint64) []string {
	var out []string
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			out = append(out, fmt.Sprintf("seq %d followed by %d", seqs[i-1], seqs[i]))
		}
	}
	return out
}

// maxEntryGap is the longest time between two consecutive entries of msgs.
func maxEntryGap(t testing.TB, msgs []redis.XMessage) time.Duration {
	t.Helper()
	var gap time.Duration
	for i := 1; i < len(msgs); i++ {
		gap = max(gap, entryTime(t, msgs[i].ID).Sub(entryTime(t, msgs[i-1].ID)))
	}
	return gap
}

// entryRate is cam's entries per second added in [from, to).
func entryRate(rc *redisFrames, cam string, from, to time.Time) float64 {
	return float64(rc.CountBetween(cam, from, to)) / to.Sub(from).Seconds()
}

// seqScript returns, for up to ARGV[2] entries of a stream from ARGV[1]
// on, each entry's id and seq: the followers read no pixels.
var seqScript = redis.NewScript(`
local r = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local out = {}
for _, e in ipairs(r) do
  local seq = ''
  local f = e[2]
  for j = 1, #f, 2 do
    if f[j] == 'seq' then seq = f[j + 1] end
  end
  out[#out + 1] = e[1]
  out[#out + 1] = seq
end
return out
`)

// seqFollower reads cameras' streams as they grow, checking that each
// entry's seq is the previous one's + 1. Poll it more often than the
// streams' retention trims them.
type seqFollower struct {
	rc      *redisFrames
	cams    []string
	next    map[string]string // XRANGE start of the next poll
	last    map[string]uint64
	Entries map[string]int
	Gaps    map[string][]string
}

// followSeqs follows cams from their entries added at from on.
func followSeqs(rc *redisFrames, from time.Time, cams ...string) *seqFollower {
	f := &seqFollower{rc: rc, cams: cams, next: map[string]string{}, last: map[string]uint64{},
		Entries: map[string]int{}, Gaps: map[string][]string{}}
	for _, cam := range cams {
		f.next[cam] = strconv.FormatInt(from.UnixMilli(), 10)
	}
	return f
}

// Poll reads what was added since the last poll.
func (f *seqFollower) Poll() {
	t := f.rc.t
	t.Helper()
	for _, cam := range f.cams {
		for {
			res, err := seqScript.Run(f.rc.ctx(), f.rc.Client, []string{streamKey(cam)}, f.next[cam], 500).StringSlice()
			require.NoError(t, err, "read the seqs of %s", streamKey(cam))
			for i := 0; i+1 < len(res); i += 2 {
				seq, err := strconv.ParseUint(res[i+1], 10, 64)
				require.NoError(t, err, "seq of %s entry %s", cam, res[i])
				if prev, ok := f.last[cam]; ok && seq != prev+1 {
					f.Gaps[cam] = append(f.Gaps[cam], fmt.Sprintf("seq %d followed by %d (entry %s)", prev, seq, res[i]))
				}
				f.last[cam] = seq
				f.Entries[cam]++
				f.next[cam] = "(" + res[i]
			}
			if len(res) < 2*500 {
				break
			}
		}
	}
}

// median is the median of xs (0 for none).
func median[T cmp.Ordered](xs []T) T {
	var zero T
	if len(xs) == 0 {
		return zero
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
