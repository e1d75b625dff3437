package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// cfOTLPSink is an OTLP/HTTP trace receiver that keeps every request body.
type cfOTLPSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
}

func cfStartOTLPSink(t testing.TB) *cfOTLPSink {
	s := &cfOTLPSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rd = zr
		}
		b, _ := io.ReadAll(rd)
		s.mu.Lock()
		s.bodies = append(s.bodies, b)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *cfOTLPSink) Endpoint() string { return s.srv.URL + "/v1/traces" }

func (s *cfOTLPSink) All() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Join(s.bodies, []byte{'\n'})
}

// cfSecret returns a long random password: finding it by chance in any
// output (pixel data included) is practically impossible.
func cfSecret(t testing.TB, prefix string) string {
	b := make([]byte, 18)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return prefix + hex.EncodeToString(b)
}

// cfLeakForms are the ways a credential could show up: as is, and as the
// value of a Basic Authorization header (base64 of user:password).
func cfLeakForms(user string, passwords ...string) map[string]string {
	forms := map[string]string{}
	for _, pw := range passwords {
		forms[pw] = "password " + pw[:6] + "…"
		forms[base64.StdEncoding.EncodeToString([]byte(user+":"+pw))] = "Basic auth of " + pw[:6] + "…"
	}
	return forms
}

// cfFindLeaks describes every form found in data, with its surroundings
// (the secret itself masked).
func cfFindLeaks(data []byte, forms map[string]string) []string {
	var found []string
	for form, name := range forms {
		if i := bytes.Index(data, []byte(form)); i >= 0 {
			lo, hi := max(0, i-200), min(len(data), i+len(form)+50)
			found = append(found, fmt.Sprintf("the %s (%d times), near: %q", name, bytes.Count(data, []byte(form)),
				bytes.ReplaceAll(data[lo:hi], []byte(form), []byte("<SECRET>"))))
		}
	}
	return found
}

// cfAssertNoLeak fails for every form found in what.
func cfAssertNoLeak(t *testing.T, what string, data []byte, forms map[string]string) {
	t.Helper()
	for _, f := range cfFindLeaks(data, forms) {
		t.Errorf("%s contains %s", what, f)
	}
}

// TestCamFaultCredentialsNeverLeak runs cameras with known credentials
// through the camera faults (kill and restart, stall, disconnect, EOS, wrong
// password, wrong path after a successful login, unresolvable name, refused
// connection) with debug logging, trace export and GST_DEBUG_DUMP_DOT_DIR,
// then searches every output for either password, as is and as a Basic
// Authorization value: gstcapture's log, /health, /healthz, /readyz,
// /api/v1/cameras (list and each camera), /metrics, every field of every
// Redis entry (pixel data included), the exported traces, every DOT dump
// the failing pipelines left (operators copy those off the machine), and
// `gstcapture render` / `validate`.
func TestCamFaultCredentialsNeverLeak(t *testing.T) {
	const user = "operator"
	pw, wrong := cfSecret(t, "Cam-"), cfSecret(t, "Wrong-")
	forms := cfLeakForms(user, pw, wrong)
	// Token-style camera URLs: a ${VAR} in the query and in the path.
	queryToken, pathToken := cfSecret(t, "Qtok-"), cfSecret(t, "Ptok-")
	forms[queryToken] = "query token " + queryToken[:6] + "…"
	forms[pathToken] = "path token " + pathToken[:6] + "…"
	// The search works (the test can fail).
	probe := []byte("xx" + base64.StdEncoding.EncodeToString([]byte(user+":"+wrong)) + "yy")
	require.Len(t, cfFindLeaks(probe, forms), 1, "the search does not find a planted Basic auth value")

	rd := testenv.StartRedis(t)
	rc := openFrames(t, rd)
	sim := startCamsim(t, cfSim(camsimOpts{Control: true, Cameras: 2, User: user, Password: pw}))
	otlp := cfStartOTLPSink(t)
	refused := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cams := []camCfg{
		{ID: "secure", URL: "rtsp://" + user + ":${CF_CAM_PASSWORD}@" + sim.Addr + "/cam1"},
		{ID: "wrongpw", URL: "rtsp://" + user + ":${CF_WRONG_PASSWORD}@" + sim.Addr + "/cam2"},
		{ID: "badpath", URL: "rtsp://" + user + ":${CF_CAM_PASSWORD}@" + sim.Addr + "/no-such-camera"},
		{ID: "nodns", URL: "rtsp://" + user + ":${CF_CAM_PASSWORD}@camera.invalid:8554/cam1"},
		{ID: "refused", URL: "rtsp://" + user + ":${CF_CAM_PASSWORD}@" + refused + "/cam1"},
		// The camera wants a password: unauthorized, with the query token in
		// every request.
		{ID: "querytoken", URL: "rtsp://" + sim.Addr + "/cam1?token=${CF_QUERY_TOKEN}"},
		// Logged in, then 404 for a path that holds the token.
		{ID: "pathtoken", URL: "rtsp://" + user + ":${CF_CAM_PASSWORD}@" + sim.Addr + "/t/${CF_PATH_TOKEN}/cam1"},
	}
	cfg := cfConfig(rd.URL, cams...)
	cfg.LogLevel = "debug"
	dotDir := t.TempDir()
	env := []string{"CF_CAM_PASSWORD=" + pw, "CF_WRONG_PASSWORD=" + wrong, "CF_QUERY_TOKEN=" + queryToken, "CF_PATH_TOKEN=" + pathToken,
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" + otlp.Endpoint()}
	svc := startService(t, cfg, append(env, "GST_DEBUG_DUMP_DOT_DIR="+dotDir)...)

	rc.WaitFirst("secure")
	svc.waitState(t, "wrongpw", "unauthorized", 20*time.Second)
	svc.waitState(t, "badpath", "error", 20*time.Second)
	svc.waitState(t, "querytoken", "unauthorized", 20*time.Second)
	svc.waitState(t, "pathtoken", "error", 20*time.Second)

	// The faults, each followed by recovery.
	sim.Do(1, "stall")
	svc.waitState(t, "secure", "stalled", cfStallTimeout+cfSlack+2*time.Second)
	sim.Do(1, "resume")
	for _, action := range []string{"disconnect", "eos"} {
		tFault := time.Now()
		sim.Do(1, action)
		rc.WaitEntry("secure", tFault.Add(500*time.Millisecond), 20*time.Second, "secure after "+action)
	}
	sim.Kill()
	time.Sleep(2 * time.Second) // refused reconnects with the credentials set
	sim.Start()
	rc.WaitEntry("secure", sim.Ready, 20*time.Second, "secure after camsim restart")
	svc.waitState(t, "wrongpw", "unauthorized", 20*time.Second)
	time.Sleep(2 * time.Second) // a couple of trace exports

	outputs := map[string][]byte{}
	for _, path := range []string{"/health", "/healthz", "/readyz", "/api/v1/cameras", "/metrics", "/openapi.yaml"} {
		_, outputs["GET "+path] = httpGet(t, svc.HTTP+path)
	}
	for _, c := range cams {
		_, outputs["GET /api/v1/cameras/"+c.ID] = httpGet(t, svc.HTTP+"/api/v1/cameras/"+c.ID)
	}

	// Every field of every entry of every key in Redis, raw on purpose: a
	// secret in a field the Go client does not know must show too.
	ctx := ctxT(t, time.Minute)
	keys, err := rc.Keys(ctx, "*").Result()
	require.NoError(t, err)
	entries := 0
	for _, key := range keys {
		typ := rc.Type(ctx, key).Val()
		var buf bytes.Buffer
		buf.WriteString(key + "\n")
		switch typ {
		case "stream":
			msgs, err := rc.XRange(ctx, key, "-", "+").Result()
			require.NoError(t, err, "XRANGE %s", key)
			for _, m := range msgs {
				entries++
				buf.WriteString(m.ID + "\n")
				for k, v := range m.Values {
					fmt.Fprintf(&buf, "%s=%v\n", k, v)
				}
			}
		default:
			dump, err := rc.Dump(ctx, key).Result()
			require.NoError(t, err, "DUMP %s", key)
			buf.WriteString(dump)
		}
		outputs["redis "+typ+" "+key] = buf.Bytes()
	}
	require.Greater(t, entries, 10, "too few Redis entries to mean anything")

	// render and validate, with the same environment.
	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "config.yaml", cfg.YAML(t))
	for _, args := range [][]string{{"render", "--config", cfgPath}, {"render", "--config", cfgPath, "--camera", "secure"}, {"validate", "--config", cfgPath}} {
		cmd := exec.Command(binary(t, "gstcapture"), args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "gstcapture %s: %s", strings.Join(args, " "), out)
		outputs["gstcapture "+strings.ReplaceAll(strings.Join(args, " "), cfgPath, "FILE")] = out
	}
	require.Contains(t, string(outputs["gstcapture render --config FILE"]), "rtspsrc", "render printed no pipeline")

	svc.Stop(15 * time.Second) // the shutdown lines count too
	log := []byte(svc.Output())
	outputs["gstcapture log (stdout+stderr)"] = log
	traces := otlp.All()
	outputs["exported traces (OTLP)"] = traces
	require.True(t, bytes.Contains(traces, []byte("frame.capture")), "no frame span was exported: the trace check would be empty")

	// Every DOT dump: the failing cameras' pipelines (wrong password,
	// unreachable) each left at least one, with rtspsrc's credential
	// properties in it.
	dumps, err := os.ReadDir(dotDir)
	require.NoError(t, err)
	require.NotEmpty(t, dumps, "no DOT dump was written: the dump check would be empty")
	withCredentials := 0
	for _, d := range dumps {
		b, err := os.ReadFile(filepath.Join(dotDir, d.Name()))
		require.NoError(t, err)
		outputs["DOT dump "+d.Name()] = b
		if bytes.Contains(b, []byte("GstRTSPSrc")) && bytes.Contains(b, []byte(`\nuser-pw=`)) {
			withCredentials++
		}
		info, err := d.Info()
		require.NoError(t, err)
		assert.Zero(t, info.Mode().Perm()&0o007, "DOT dump %s is readable by others: %s", d.Name(), info.Mode())
	}
	require.NotZero(t, withCredentials, "no DOT dump shows rtspsrc's user-pw property: the dump check would prove little")
	for _, id := range []string{"wrongpw", "refused"} {
		found, _ := filepath.Glob(filepath.Join(dotDir, "*-gstcapture-"+id+"-error.dot"))
		assert.NotEmpty(t, found, "no DOT dump of camera %s's failing pipeline", id)
	}

	// The faults really happened (otherwise the search proves little).
	for _, st := range []string{"stalled", "disconnected", "unauthorized", "error"} {
		assert.True(t, bytes.Contains(log, []byte(`"state":"`+st+`"`)), "the log never shows state %s", st)
	}
	for what, data := range outputs {
		cfAssertNoLeak(t, what, data, forms)
	}
	var sizes []string
	for what, data := range outputs {
		sizes = append(sizes, fmt.Sprintf("%s %d B", what, len(data)))
	}
	t.Logf("searched %d outputs (%d Redis entries, %d OTLP requests, %d DOT dumps) for 2 passwords in 2 forms and 2 URL tokens: %s",
		len(outputs), entries, len(otlp.bodies), len(dumps), strings.Join(sizes, "; "))
}

// TestCamFaultCredentialsNeverLeakGSTDebug repeats the log search with
// GStreamer's own RTSP logging turned up (GST_DEBUG=rtspsrc:6), as an
// operator chasing a camera problem would: gstcapture forwards GStreamer's
// log into its own, and rtspsrc dumps the RTSP requests behind every failed
// response, Authorization header included. Cameras: a wrong password, and
// the right password on a path the camera does not serve (the login works,
// then 404).
func TestCamFaultCredentialsNeverLeakGSTDebug(t *testing.T) {
	const user = "operator"
	pw, wrong := cfSecret(t, "Cam-"), cfSecret(t, "Wrong-")
	forms := cfLeakForms(user, pw, wrong)
	rd := testenv.StartRedis(t)
	sim := startCamsim(t, cfSim(camsimOpts{User: user, Password: pw}))
	cams := []camCfg{
		{ID: "wrongpw", URL: "rtsp://" + user + ":${CF_WRONG_PASSWORD}@" + sim.Addr + "/cam1"},
		{ID: "badpath", URL: "rtsp://" + user + ":${CF_CAM_PASSWORD}@" + sim.Addr + "/no-such-camera"},
	}
	svc := startService(t, cfConfig(rd.URL, cams...),
		"CF_CAM_PASSWORD="+pw, "CF_WRONG_PASSWORD="+wrong, "GST_DEBUG=rtspsrc:6,rtspconnection:6")
	svc.waitState(t, "wrongpw", "unauthorized", 20*time.Second)
	svc.waitState(t, "badpath", "error", 20*time.Second)
	time.Sleep(3 * time.Second) // a few retries each
	svc.Stop(15 * time.Second)
	log := []byte(svc.Output())
	require.True(t, bytes.Contains(log, []byte(`"component":"gstreamer"`)), "GStreamer's log was not forwarded: GST_DEBUG had no effect")
	t.Logf("searched %d B of log for 2 passwords in 2 forms", len(log))
	cfAssertNoLeak(t, "gstcapture log with GST_DEBUG=rtspsrc:6", log, forms)
}
