package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An API entry is checked with the file's rules, over the file's
// defaults, and its problems carry the entry's own keys as paths.
func TestParseCameraUsesTheFileRules(t *testing.T) {
	cfg := mustLoad(t, "defaults: {fps: 7}\n"+oneCamera)
	cam, probs := cfg.ParseCamera("cam9", map[string]any{"url": "rtsp://10.0.0.9/s", "codec": "h264", "width": 640.0, "height": 360.0})
	require.Empty(t, probs)
	assert.Equal(t, "cam9", cam.ID)
	assert.Equal(t, SourceAPI, cam.Source)
	assert.True(t, cam.Enabled, "enabled unless it says otherwise")
	assert.Equal(t, 7, cam.Settings.FPS, "defaults.fps inherited")
	assert.Equal(t, 640, cam.Settings.Width, "a JSON number decodes into an int setting")

	_, probs = cfg.ParseCamera("cam9", map[string]any{"url": "rtsp://10.0.0.9/s", "codec": "h264", "fps": 500.0, "bogus": 1.0,
		"validation": map[string]any{"black": map[string]any{"max_luma": 300.0}}})
	paths := map[string]string{}
	for _, p := range probs {
		paths[p.Path] = p.Msg
	}
	assert.Contains(t, paths, "fps")
	assert.Contains(t, paths, "bogus")
	assert.Contains(t, paths, "validation.black.max_luma")

	_, probs = cfg.ParseCamera("cam9", map[string]any{"id": "other", "url": "rtsp://10.0.0.9/s", "codec": "h264"})
	require.Len(t, probs, 1)
	assert.Equal(t, "id", probs[0].Path)

	_, probs = cfg.ParseCamera("bad id!", map[string]any{"url": "rtsp://10.0.0.9/s", "codec": "h264"})
	require.Len(t, probs, 1)
	assert.Equal(t, "id", probs[0].Path)
}

// The API stores an entry as written, so a password written into the URL
// is refused, and the message does not quote it; a reference is accepted
// and resolved from the environment Load was given.
func TestParseCameraRefusesInlinePasswords(t *testing.T) {
	dir := t.TempDir()
	cfgFile := writeFile(t, dir, "c.yaml", oneCamera)
	writeFile(t, dir, "pw", "from-file\n")
	cfg, err := Load(cfgFile, []string{"CAM_PW=s3cr3t-env"})
	require.NoError(t, err)

	for _, url := range []string{"rtsp://admin:hunter22@10.0.0.9/s", "rtsp://admin:pre${CAM_PW}@10.0.0.9/s"} {
		_, probs := cfg.ParseCamera("c", map[string]any{"url": url, "codec": "h264"})
		require.NotEmpty(t, probs, url)
		assert.Equal(t, "url", probs[0].Path)
		assert.Contains(t, probs[0].Msg, "never stores credentials in clear")
		assert.NotContains(t, probs.Error(), "hunter22")
	}
	cam, probs := cfg.ParseCamera("c", map[string]any{"url": "rtsp://admin:${CAM_PW}@10.0.0.9/s", "codec": "h264"})
	require.Empty(t, probs)
	assert.Equal(t, "s3cr3t-env", cam.Password)
	assert.Equal(t, "rtsp://10.0.0.9/s", cam.Location)

	cam, probs = cfg.ParseCamera("c", map[string]any{"url": "rtsp://admin@10.0.0.9/s", "codec": "h264", "password_file": "pw"})
	require.Empty(t, probs)
	assert.Equal(t, "from-file", cam.Password, "password_file relative to the config file's directory")

	_, probs = cfg.ParseCamera("c", map[string]any{"url": "rtsp://admin@10.0.0.9/s", "codec": "h264", "password_env": "NOPE"})
	require.Len(t, probs, 1)
	assert.Equal(t, "password_env", probs[0].Path)
}

func TestInlinePassword(t *testing.T) {
	for url, want := range map[string]bool{
		"rtsp://h/x":                  false,
		"rtsp://u@h/x":                false,
		"rtsp://u:p@h/x":              true,
		"rtsp://u:${P}@h/x":           false,
		"rtsp://${U}:${P}@h/x":        false,
		"rtsp://u:${P}x@h/x":          true,
		"rtsp://u:@h/x":               false,
		"rtsp://h/x?token=${T}":       false,
		"rtsp://u:p%40ss@h:554/x?a=b": true,
	} {
		assert.Equal(t, want, inlinePassword(url), url)
	}
}

func TestDecodeEntry(t *testing.T) {
	e, err := DecodeEntry([]byte(`{"url": "rtsp://h/x", "fps": 5}`))
	require.NoError(t, err)
	assert.Equal(t, 5.0, e["fps"])
	for _, bad := range []string{``, `null`, `[1]`, `{"a": 1} {"b": 2}`, `{"a":`} {
		_, err := DecodeEntry([]byte(bad))
		assert.Error(t, err, bad)
	}
}

// A reload applies cameras, defaults, health, log.level, shutdown and the
// tokens; any other change is reported and the running value kept.
func TestReloadedKeepsWhatNeedsARestart(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(file, []byte(oneCamera), 0o600))
	running, err := Load(file, nil)
	require.NoError(t, err)

	edited := "redis: {url: 'redis://other:6379/0', retention: 3s}\nhttp: {listen: ':9000'}\nlog: {level: debug, format: text}\n" +
		"defaults: {fps: 3}\nhealth: {min_ready: 0}\nshutdown: {timeout: 9s}\n" + oneCamera +
		"  - {id: cam2, url: 'rtsp://10.0.0.2/s', codec: h265, enabled: false}\n"
	require.NoError(t, os.WriteFile(file, []byte(edited), 0o600))
	loaded, err := Load(file, nil)
	require.NoError(t, err)

	assert.Equal(t, []string{"http.listen", "log.format", "redis.retention", "redis.url"}, RestartNeeded(running, loaded))
	next := running.Reloaded(loaded)
	assert.Equal(t, running.Redis, next.Redis, "redis keeps its running values")
	assert.Equal(t, running.HTTP.Listen, next.HTTP.Listen)
	assert.Equal(t, "json", next.Log.Format)
	assert.Equal(t, "debug", next.Log.Level)
	assert.Equal(t, 3, next.Defaults.FPS)
	assert.Equal(t, 0, next.Health.MinReady)
	assert.Equal(t, 9*time.Second, next.Shutdown.Timeout)
	require.Len(t, next.Cameras, 2)
	assert.False(t, next.Cameras[1].Enabled)
	assert.Equal(t, SourceFile, next.Cameras[1].Source)
	assert.Empty(t, RestartNeeded(running, running))
}

func TestEmptyCameraListIsValid(t *testing.T) {
	cfg := mustLoad(t, "cameras: []\n")
	assert.Empty(t, cfg.Cameras)
}

func TestSecretSetRedactsWhatWasAdded(t *testing.T) {
	var s SecretSet
	assert.Equal(t, "pw=abc", s.Redact("pw=abc"))
	s.Add("abc")
	s.Add("abc", "xyz")
	assert.Equal(t, "pw=*** and ***", s.Redact("pw=abc and xyz"))
}
