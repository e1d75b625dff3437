package gsthost

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/stats"
)

// dotSecrets are credentials with the characters GStreamer escapes, and one
// longer than the 80 characters a dump keeps of a value.
var dotSecrets = struct{ user, short, long, token string }{
	user:  "operator-7f3a",
	short: `pw"with\quote` + "-9c1e",
	long:  "Long-" + strings.Repeat("0123456789", 12),
	token: "tok-5d2b8e",
}

// refusedAddr returns a local address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// dotEscaped is sec as a dump's label holds it: escaped once as a string
// value, once more for the label.
func dotEscaped(sec string) string {
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return esc.Replace(esc.Replace(sec))
}

// assertNoDotSecret fails for every secret, or a 12-character start of one,
// found in dot, as is or escaped as in a label.
func assertNoDotSecret(t *testing.T, dot string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		for _, form := range []string{sec, dotEscaped(sec)} {
			assert.NotContains(t, dot, form[:min(12, len(form))], "the dump holds a credential")
		}
	}
}

// A real rtspsrc graph: the credential properties and the location's query
// values are blanked by structure alone, whatever the secrets are.
func TestCleanDotRTSPSrc(t *testing.T) {
	for _, pw := range []string{dotSecrets.short, dotSecrets.long} {
		p, err := gst.NewPipelineFromString("rtspsrc name=src location=\"rtsp://127.0.0.1:1/cam?token=" + dotSecrets.token + "&channel=1\" ! fakesink")
		require.NoError(t, err)
		keep(t, p)
		src, err := p.GetElementByName("src")
		require.NoError(t, err)
		require.NoError(t, src.Set("user-id", dotSecrets.user))
		require.NoError(t, src.Set("user-pw", pw))
		raw := p.DebugBinToDotData(gst.DebugGraphShowAll)
		// GStreamer writes them (the test can fail), a long one cut short.
		require.Contains(t, raw, dotEscaped(pw)[:12])
		require.Contains(t, raw, dotSecrets.token)

		clean := cleanDot(raw)
		assertNoDotSecret(t, clean, pw, dotSecrets.user, dotSecrets.token)
		assert.Contains(t, clean, `\nuser-pw=***`)
		assert.Contains(t, clean, `\nuser-id=***`)
		assert.Contains(t, clean, `\nlocation=\"rtsp://127.0.0.1:1/cam?token=***&channel=***\"`)
		assert.Equal(t, strings.Count(raw, "->"), strings.Count(clean, "->"), "the graph's links are kept")
		assert.Contains(t, clean, "GstRTSPSrc")
	}
}

func TestCleanDot(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"secrets and a URL",
			`label="GstRTSPSrc\nsrc\n[-]\nlocation=\"rtsp://u:p@cam:554/x?token=abc\"\nproxy-id=NULL\nproxy-pw=\"pp\"\nuser-pw=\"s\\\\e\\\"c\"\nlatency=0";`,
			`label="GstRTSPSrc\nsrc\n[-]\nlocation=\"rtsp://cam:554/x?token=***\"\nproxy-id=NULL\nproxy-pw=***\nuser-pw=***\nlatency=0";`},
		{"last property, cut long value",
			`label="GstRTSPSrc\nsrc\nuser-pw=\"aaaaaaaaaaaaaaaaaaa\\…"];`,
			`label="GstRTSPSrc\nsrc\nuser-pw=***"];`},
		{"URL cut inside the user info",
			`label="X\nlocation=\"rtsp://user:passwordpasswordpa…\nuser-id=\"u\"";`,
			`label="X\nlocation=\"rtsp://***…\nuser-id=***";`},
		{"URL cut inside the query",
			`label="X\nlocation=\"rtsp://cam/x?a=1&token=abcdefgh…";`,
			`label="X\nlocation=\"rtsp://cam/x?a=***&token=***…";`},
		{"an escaped backslash-n inside a value is no separator",
			`label="X\ndesc=\"a\\\\nuser-pw=\\\"kept\\\"\"\nuser-pw=\"x\"";`,
			`label="X\ndesc=\"a\\\\nuser-pw=\\\"kept\\\"\"\nuser-pw=***";`},
		{"caps and states untouched",
			`label="src_0\n[>][bfb]", taillabel="video/x-raw\l              format: BGR\l"`,
			`label="src_0\n[>][bfb]", taillabel="video/x-raw\l              format: BGR\l"`},
		{"other password-like properties",
			`label="X\nkey-password=\"k\"\nsrtp-passwd=\"k\"\nuser-agent=\"GStreamer\"";`,
			`label="X\nkey-password=***\nsrtp-passwd=***\nuser-agent=\"GStreamer\"";`},
	} {
		assert.Equal(t, tc.want, cleanDot(tc.in), tc.name)
	}
}

func TestDotFileName(t *testing.T) {
	assert.Equal(t, "1.02.03.000000004-gstcapture-cam1-error.dot",
		dotFileName(time.Hour+2*time.Minute+3*time.Second+4, "gstcapture-cam1-error"))
	assert.Equal(t, "0.00.00.500000000-a_b.dot", dotFileName(500*time.Millisecond, "a/b"))
}

// dumpDot writes one file with GStreamer's naming, mode 0600, cleaned and
// redacted, and nothing else.
func TestDumpDotFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GST_DEBUG_DUMP_DOT_DIR", dir)
	redact := func(s string) string { return strings.ReplaceAll(s, dotSecrets.token, "***") }
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := NewSupervisor(Spec{CameraID: "cam1", User: dotSecrets.user, Password: dotSecrets.long}, stats.NewCamera("cam1"),
		nil, log, redact, Hooks{})
	p, err := gst.NewPipelineFromString("rtspsrc name=src location=rtsp://127.0.0.1:1/" + dotSecrets.token + " ! fakesink")
	require.NoError(t, err)
	keep(t, p)
	_, err = s.findSource(p)
	require.NoError(t, err)

	s.dumpDot(&guard{what: "pipeline"}, p, "error")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "one file, no temporary left")
	name := entries[0].Name()
	assert.Regexp(t, regexp.MustCompile(`^\d+\.\d\d\.\d\d\.\d{9}-gstcapture-cam1-error\.dot$`), name)
	info, err := entries[0].Info()
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	b, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	dot := string(b)
	assert.True(t, strings.HasPrefix(dot, "digraph pipeline {"), "a DOT graph")
	assert.Contains(t, dot, `\nuser-pw=***`)
	assertNoDotSecret(t, dot, dotSecrets.long, dotSecrets.user, dotSecrets.token)
}

// A pipeline error makes the supervisor dump the graph, without the
// camera's credentials even with no redactor at all.
func TestSupervisorErrorDotDump(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GST_DEBUG_DUMP_DOT_DIR", dir)
	spec := Spec{
		CameraID:         "dotcam",
		Launch:           fmt.Sprintf("rtspsrc name=src location=\"rtsp://%s/cam?token=%s\" ! appsink name=sink", refusedAddr(t), dotSecrets.token),
		User:             dotSecrets.user,
		Password:         dotSecrets.short,
		StallTimeout:     2 * time.Second,
		ReconnectInitial: time.Second,
		ReconnectMax:     time.Second,
	}
	cam, _, frozen, _, _ := runSupervisor(t, spec, Hooks{})
	var dumps []string
	require.Eventually(t, func() bool {
		dumps, _ = filepath.Glob(filepath.Join(dir, "*-gstcapture-dotcam-error.dot"))
		return len(dumps) > 0
	}, 10*time.Second, 20*time.Millisecond, "no DOT dump after a pipeline error")
	b, err := os.ReadFile(dumps[0])
	require.NoError(t, err)
	assert.Contains(t, string(b), "GstRTSPSrc")
	assertNoDotSecret(t, string(b), dotSecrets.short, dotSecrets.user, dotSecrets.token)
	assert.Zero(t, frozen.Load())
	assert.Zero(t, cam.Frozen())
}
