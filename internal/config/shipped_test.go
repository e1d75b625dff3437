package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repoFile reads a file relative to the module root.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", rel))
	require.NoError(t, err)
	return string(b)
}

func TestShippedExampleValidates(t *testing.T) {
	const secretPath = "/run/secrets/parking2_password"
	body := repoFile(t, "configs/cameras.yaml")
	require.Contains(t, body, secretPath)
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "parking2.pw", "file-secret\n")
	p := writeFile(t, dir, "cameras.yaml", strings.Replace(body, secretPath, pwFile, 1))

	cfg, err := Load(p, []string{"ENTRANCE_PASSWORD=entrance-secret", "LOADING_DOCK_PASSWORD=dock-secret"})
	require.NoError(t, err)
	require.Len(t, cfg.Cameras, 3)

	// The example documents the defaults: loading it changes nothing.
	defaults := mustLoad(t, oneCamera)
	assert.Equal(t, defaults.Defaults, cfg.Defaults)
	assert.Equal(t, defaults.Redis, cfg.Redis)
	assert.Equal(t, defaults.HTTP, cfg.HTTP)
	assert.Equal(t, defaults.Health, cfg.Health)
	assert.Equal(t, defaults.Shutdown, cfg.Shutdown)
	assert.Equal(t, defaults.Log, cfg.Log)

	e, d, pk := cfg.Cameras[0], cfg.Cameras[1], cfg.Cameras[2]
	assert.Equal(t, [3]string{"entrance", "admin", "entrance-secret"}, [3]string{e.ID, e.User, e.Password})
	assert.Equal(t, "rtsp://192.168.1.10:554/Streaming/Channels/101", e.Location)
	assert.Equal(t, [3]string{"loading_dock", "viewer", "dock-secret"}, [3]string{d.ID, d.User, d.Password})
	assert.Equal(t, "rtsp://192.168.1.11:554/cam/realmonitor?channel=1&subtype=0", d.Location)
	assert.Equal(t, 5, d.Settings.FPS)
	assert.Equal(t, 30*time.Second, d.Settings.Validation.Frozen.After)
	assert.Equal(t, [3]string{"parking-2", "operator", "file-secret"}, [3]string{pk.ID, pk.User, pk.Password})
	assert.Equal(t, "rtsps://cams.example.net:322/parking2", pk.Location)
}

func TestShippedDemoValidates(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "configs", "demo.yaml"), []string{
		"CAMSIM_ADDR=127.0.0.1:8554",
		"GSTCAPTURE_REDIS__URL=redis://127.0.0.1:16379/0",
	})
	require.NoError(t, err)
	require.Len(t, cfg.Cameras, 4)
	for i, cam := range cfg.Cameras {
		n := string(rune('1' + i))
		assert.Equal(t, "cam"+n, cam.ID)
		assert.Equal(t, "h264", cam.Codec)
		assert.Equal(t, "rtsp://127.0.0.1:8554/cam"+n, cam.Location)
	}
	assert.Equal(t, "redis://127.0.0.1:16379/0", cfg.Redis.URL)

	_, err = Load(filepath.Join("..", "..", "configs", "demo.yaml"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cameras[0].url: environment variable CAMSIM_ADDR is not set")
}

// The example and the reference must mention every key, so neither falls
// behind the schema.
func TestShippedDocsCoverEveryKey(t *testing.T) {
	example := repoFile(t, "configs/cameras.yaml")
	doc := repoFile(t, "docs/configuration.md")
	for _, key := range Keys() {
		leaf := key[strings.LastIndex(key, ".")+1:]
		assert.Regexp(t, regexp.MustCompile(`(?m)\b`+regexp.QuoteMeta(leaf)+`:`), example, "configs/cameras.yaml lacks %s", key)
		assert.Contains(t, doc, "`"+key+"`", "docs/configuration.md lacks %s", key)
		assert.Contains(t, doc, EnvName(key), "docs/configuration.md lacks %s", EnvName(key))
	}
	for _, key := range CameraKeys {
		assert.Regexp(t, regexp.MustCompile(`(?m)\b`+key+`:`), example, "configs/cameras.yaml lacks cameras[].%s", key)
		assert.Contains(t, doc, "`"+key+"`", "docs/configuration.md lacks cameras[].%s", key)
	}
}
