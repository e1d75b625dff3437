package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/publish"
	"gstcapture/internal/testenv"
	"gstcapture/internal/validate"
)

const oneCamera = `
cameras:
  - id: cam1
    url: rtsp://192.168.1.10:554/Streaming/Channels/101
    codec: h264
`

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func load(t *testing.T, yml string, env ...string) (*Config, error) {
	t.Helper()
	return Load(writeFile(t, t.TempDir(), "gstcapture.yaml", yml), env)
}

func mustLoad(t *testing.T, yml string, env ...string) *Config {
	t.Helper()
	cfg, err := load(t, yml, env...)
	require.NoError(t, err)
	return cfg
}

// problems loads yml expecting validation problems and returns them.
func problems(t *testing.T, yml string, env ...string) Problems {
	t.Helper()
	_, err := load(t, yml, env...)
	require.Error(t, err)
	var ps *Problems
	require.True(t, errors.As(err, &ps), "want *Problems, got %T: %v", err, err)
	return *ps
}

// byPath is each problem's message by its path.
func (ps Problems) byPath() map[string]string {
	out := make(map[string]string, len(ps))
	for _, p := range ps {
		out[p.Path] = p.Msg
	}
	return out
}

// Variables of other tools that share the prefix are not settings.
func TestEnvOfOtherToolsIgnored(t *testing.T) {
	cfg := mustLoad(t, oneCamera, "GSTCAPTURE_SOAK=5m", "GSTCAPTURE_BENCH_N=4", "GSTCAPTURE_FAULT_WEDGE_TEARDOWN=cam1")
	assert.Equal(t, 10, cfg.Defaults.FPS)
}

func TestDefaults(t *testing.T) {
	cfg := mustLoad(t, oneCamera)
	assert.Equal(t, HTTP{Listen: ":8000", Auth: Auth{Mode: AuthToken, Metrics: "open"}}, cfg.HTTP)
	assert.Equal(t, Redis{URL: "redis://127.0.0.1:6379/0", Mode: "single", Stream: "frames:{camera_id}", CamerasKey: "gstcapture:cameras", Retention: 10 * time.Second, MaxLen: 0, MemoryBudget: 0, Batch: 16, Timeout: 2 * time.Second}, cfg.Redis)
	assert.Equal(t, Health{MinReady: 1, MaxFrozen: 3}, cfg.Health)
	assert.Equal(t, Shutdown{Timeout: 5 * time.Second}, cfg.Shutdown)
	assert.Equal(t, Log{Level: "info", Format: "json"}, cfg.Log)
	assert.Equal(t, Shm{Dir: "/dev/shm"}, cfg.Shm)
	want := Settings{
		FPS: 10, Format: frame.BGR, JPEGQuality: 85, Transport: "tcp", Latency: 200 * time.Millisecond,
		Reconnect: Reconnect{Initial: time.Second, Max: 30 * time.Second}, StallTimeout: 5 * time.Second,
		Decoder: "auto", Converter: "auto", RingSize: 32, Delivery: "redis", ShmSlots: 8,
		ConvertThreads: 1, DecoderThreads: 1, MaxWidth: 4096, MaxHeight: 4096,
		Validation: Validation{
			Black:   BlackCheck{Action: validate.Drop, MaxLuma: 16},
			Uniform: UniformCheck{Action: validate.Drop, MaxStddev: 2.0},
			Frozen:  FrozenCheck{Action: validate.Drop, After: 10 * time.Second},
			Size:    Check{Action: validate.Drop},
			Corrupt: Check{Action: validate.Drop},
		},
	}
	assert.Equal(t, want, cfg.Defaults)
	require.Len(t, cfg.Cameras, 1)
	cam := cfg.Cameras[0]
	assert.Equal(t, "cam1", cam.ID)
	assert.Equal(t, "h264", cam.Codec)
	assert.Equal(t, want, cam.Settings)
	assert.Equal(t, "rtsp://192.168.1.10:554/Streaming/Channels/101", cam.Location)
	assert.Empty(t, cam.User)
	assert.Empty(t, cam.Password)
}

func TestFileOverrides(t *testing.T) {
	cfg := mustLoad(t, `
http: {listen: "127.0.0.1:9000"}
redis: {url: "rediss://cache:6380/2", stream: "cam:{camera_id}:frames", retention: 3s, maxlen: 50, memory_budget: 2GiB, batch: 4, timeout: 500ms}
health: {min_ready: 0, max_frozen: 1}
shutdown: {timeout: 2s}
log: {level: debug, format: text}
defaults:
  fps: 25
  format: GRAY8
  width: 640
  height: 360
  transport: auto
  latency: 0s
  reconnect: {initial: 500ms, max: 1m}
  stall_timeout: 2s
  decoder: cpu
  ring_size: 4
  convert_threads: 0
  decoder_threads: 2
  validation:
    black: {action: pass, max_luma: 20}
    uniform: {action: off, max_stddev: 4.5}
    frozen: {after: 1m}
    size: {action: pass}
    corrupt: {action: off}
`+oneCamera)
	assert.Equal(t, HTTP{Listen: "127.0.0.1:9000", Auth: Auth{Mode: AuthToken, Metrics: "open"}}, cfg.HTTP)
	assert.Equal(t, Redis{URL: "rediss://cache:6380/2", Mode: "single", Stream: "cam:{camera_id}:frames", CamerasKey: "gstcapture:cameras", Retention: 3 * time.Second, MaxLen: 50, MemoryBudget: 2 << 30, Batch: 4, Timeout: 500 * time.Millisecond}, cfg.Redis)
	assert.Equal(t, Health{MinReady: 0, MaxFrozen: 1}, cfg.Health)
	assert.Equal(t, Shutdown{Timeout: 2 * time.Second}, cfg.Shutdown)
	assert.Equal(t, Log{Level: "debug", Format: "text"}, cfg.Log)
	d := cfg.Defaults
	assert.Equal(t, 25, d.FPS)
	assert.Equal(t, frame.GRAY8, d.Format)
	assert.Equal(t, [2]int{640, 360}, [2]int{d.Width, d.Height})
	assert.Equal(t, "auto", d.Transport)
	assert.Equal(t, time.Duration(0), d.Latency)
	assert.Equal(t, Reconnect{Initial: 500 * time.Millisecond, Max: time.Minute}, d.Reconnect)
	assert.Equal(t, 2*time.Second, d.StallTimeout)
	assert.Equal(t, "cpu", d.Decoder)
	assert.Equal(t, [3]int{4, 0, 2}, [3]int{d.RingSize, d.ConvertThreads, d.DecoderThreads})
	assert.Equal(t, BlackCheck{Action: validate.Pass, MaxLuma: 20}, d.Validation.Black)
	assert.Equal(t, UniformCheck{Action: validate.Off, MaxStddev: 4.5}, d.Validation.Uniform)
	// Only "after" was given: the action keeps its default.
	assert.Equal(t, FrozenCheck{Action: validate.Drop, After: time.Minute}, d.Validation.Frozen)
	assert.Equal(t, validate.Pass, d.Validation.Size.Action)
	assert.Equal(t, validate.Off, d.Validation.Corrupt.Action)
	assert.Equal(t, d, cfg.Cameras[0].Settings)
}

func TestEmptySectionKeepsDefaults(t *testing.T) {
	cfg := mustLoad(t, "http:\nredis:\ndefaults:\n  validation:\n"+oneCamera)
	assert.Equal(t, ":8000", cfg.HTTP.Listen)
	assert.Equal(t, "redis://127.0.0.1:6379/0", cfg.Redis.URL)
	assert.Equal(t, validate.Drop, cfg.Defaults.Validation.Black.Action)
}

func TestCameraOverridesMerged(t *testing.T) {
	cfg := mustLoad(t, `
defaults:
  fps: 10
  reconnect: {initial: 2s, max: 20s}
  validation:
    black: {action: drop, max_luma: 20}
cameras:
  - id: a
    url: rtsp://10.0.0.1/a
    codec: h264
  - id: b
    url: rtsp://10.0.0.2/b
    codec: h265
    fps: 5
    format: NV12
    width: 320
    height: 240
    transport: udp
    decoder: gpu
    reconnect: {max: 5s}
    validation:
      black: {action: pass}
      frozen: {after: 3s}
`)
	require.Len(t, cfg.Cameras, 2)
	a, b := cfg.Cameras[0].Settings, cfg.Cameras[1].Settings
	assert.Equal(t, cfg.Defaults, a)
	assert.Equal(t, 10, a.FPS)

	assert.Equal(t, "h265", cfg.Cameras[1].Codec)
	assert.Equal(t, 5, b.FPS)
	assert.Equal(t, frame.NV12, b.Format)
	assert.Equal(t, [2]int{320, 240}, [2]int{b.Width, b.Height})
	assert.Equal(t, "udp", b.Transport)
	assert.Equal(t, "gpu", b.Decoder)
	// Nested overrides merge key by key with the defaults.
	assert.Equal(t, Reconnect{Initial: 2 * time.Second, Max: 5 * time.Second}, b.Reconnect)
	assert.Equal(t, BlackCheck{Action: validate.Pass, MaxLuma: 20}, b.Validation.Black)
	assert.Equal(t, FrozenCheck{Action: validate.Drop, After: 3 * time.Second}, b.Validation.Frozen)
	assert.Equal(t, a.Validation.Uniform, b.Validation.Uniform)
	assert.Equal(t, a.StallTimeout, b.StallTimeout)
	// The defaults themselves are untouched by a camera's overrides.
	assert.Equal(t, 10, cfg.Defaults.FPS)
	assert.Equal(t, validate.Drop, cfg.Defaults.Validation.Black.Action)
}

// format JPEG and jpeg_quality: the quality in defaults serves the cameras
// that choose JPEG; a camera that sets it with another format is told.
func TestJPEGQuality(t *testing.T) {
	cfg := mustLoad(t, `
defaults:
  jpeg_quality: 70
cameras:
  - {id: a, url: rtsp://10.0.0.1/a, codec: h264}
  - {id: b, url: rtsp://10.0.0.2/b, codec: h264, format: JPEG}
  - {id: c, url: rtsp://10.0.0.3/c, codec: h264, format: JPEG, jpeg_quality: 95}
`)
	a, b, c := cfg.Cameras[0].Settings, cfg.Cameras[1].Settings, cfg.Cameras[2].Settings
	assert.Equal(t, [2]any{frame.BGR, 70}, [2]any{a.Format, a.JPEGQuality})
	assert.Equal(t, [2]any{frame.JPEG, 70}, [2]any{b.Format, b.JPEGQuality})
	assert.Equal(t, [2]any{frame.JPEG, 95}, [2]any{c.Format, c.JPEGQuality})

	ps := problems(t, `
defaults:
  jpeg_quality: 0
cameras:
  - {id: a, url: rtsp://10.0.0.1/a, codec: h264, jpeg_quality: 90}
  - {id: b, url: rtsp://10.0.0.2/b, codec: h264, format: JPEG, jpeg_quality: 101}
  - {id: c, url: rtsp://10.0.0.3/c, codec: h264, format: jpeg}
`)
	assert.Equal(t, map[string]string{
		"defaults.jpeg_quality":   "must be between 1 and 100, got 0",
		"cameras[0].jpeg_quality": "applies only with format JPEG; this camera's format is BGR (set format: JPEG, or remove jpeg_quality)",
		"cameras[1].jpeg_quality": "must be between 1 and 100, got 101",
		"cameras[2].format":       `unknown format "jpeg" (want one of BGR, RGB, I420, NV12, GRAY8, JPEG)`,
	}, ps.byPath())

	// The camera API's entries follow the same rule, at their own keys.
	cfg = mustLoad(t, oneCamera)
	_, probs := cfg.ParseCamera("cam9", map[string]any{"url": "rtsp://10.0.0.9/s", "codec": "h264", "format": "GRAY8", "jpeg_quality": 50.0})
	assert.Equal(t, map[string]string{"jpeg_quality": "applies only with format JPEG; this camera's format is GRAY8 (set format: JPEG, or remove jpeg_quality)"}, probs.byPath())
	cam, probs := cfg.ParseCamera("cam9", map[string]any{"url": "rtsp://10.0.0.9/s", "codec": "h264", "format": "JPEG", "jpeg_quality": 50.0})
	require.Empty(t, probs)
	assert.Equal(t, 50, cam.Settings.JPEGQuality)
	// From the environment, for every camera.
	cfg = mustLoad(t, oneCamera, "GSTCAPTURE_DEFAULTS__FORMAT=JPEG", "GSTCAPTURE_DEFAULTS__JPEG_QUALITY=60")
	assert.Equal(t, [2]any{frame.JPEG, 60}, [2]any{cfg.Cameras[0].Settings.Format, cfg.Cameras[0].Settings.JPEGQuality})
}

func TestEnvOverrideBeatsFile(t *testing.T) {
	cfg := mustLoad(t, `
redis: {url: "redis://file:6379/0"}
http: {listen: ":7000"}
defaults: {stall_timeout: 9s, fps: 7}
cameras:
  - id: a
    url: rtsp://10.0.0.1/a
    codec: h264
  - id: b
    url: rtsp://10.0.0.2/b
    codec: h264
    stall_timeout: 4s
`,
		"GSTCAPTURE_REDIS__URL=redis://env:6379/1",
		"GSTCAPTURE_HTTP__LISTEN=:9100",
		"GSTCAPTURE_DEFAULTS__STALL_TIMEOUT=3s",
		"GSTCAPTURE_DEFAULTS__VALIDATION__BLACK__MAX_LUMA=30",
		"GSTCAPTURE_REDIS__MAXLEN=77",
		"GSTCAPTURE_DEFAULTS__VALIDATION__UNIFORM__MAX_STDDEV=1.5",
		"GSTCAPTURE_LOG__LEVEL=", // empty counts as unset
		"GSTCAPTURE_FLEET__ENABLED=true",
		"GSTCAPTURE_CONFIG=/etc/gstcapture.yaml",
		"UNRELATED=1",
	)
	assert.Equal(t, "redis://env:6379/1", cfg.Redis.URL)
	assert.Equal(t, ":9100", cfg.HTTP.Listen)
	assert.Equal(t, int64(77), cfg.Redis.MaxLen)
	assert.True(t, cfg.Fleet.Enabled, "a boolean from the environment is text")
	assert.Equal(t, "info", cfg.Log.Level)
	assert.Equal(t, 3*time.Second, cfg.Defaults.StallTimeout)
	assert.Equal(t, 7, cfg.Defaults.FPS, "keys the environment does not set keep the file's value")
	assert.Equal(t, 30, cfg.Defaults.Validation.Black.MaxLuma)
	assert.Equal(t, 1.5, cfg.Defaults.Validation.Uniform.MaxStddev)
	assert.Equal(t, 3*time.Second, cfg.Cameras[0].Settings.StallTimeout)
	assert.Equal(t, 4*time.Second, cfg.Cameras[1].Settings.StallTimeout, "a camera's own override still wins over defaults")
}

func TestEnvLastEntryWins(t *testing.T) {
	cfg := mustLoad(t, oneCamera, "GSTCAPTURE_DEFAULTS__FPS=3", "GSTCAPTURE_DEFAULTS__FPS=4")
	assert.Equal(t, 4, cfg.Defaults.FPS)
}

func TestLoadWithoutFile(t *testing.T) {
	_, err := Load("", nil)
	var ps *Problems
	require.ErrorAs(t, err, &ps)
	assert.Equal(t, Problems{{"cameras", "no cameras configured; add at least one, or write cameras: [] to start without any and add them through the camera API"}}, *ps)
}

func TestVarExpansion(t *testing.T) {
	cfg := mustLoad(t, `
cameras:
  - id: cam1
    url: rtsp://admin:${CAM1_PASSWORD}@192.168.1.10:554/Streaming/Channels/101?transportmode=unicast
    codec: h264
  - id: cam2
    url: rtsp://${CAM2_USER}:pre%40${CAM2_PASSWORD}@${CAMSIM_ADDR}/cam2
    codec: h264
`,
		"CAM1_PASSWORD=p@ss:w/rd#1?%20",
		"CAM2_USER=viewer",
		"CAM2_PASSWORD=x",
		"CAMSIM_ADDR=127.0.0.1:8554",
	)
	c1, c2 := cfg.Cameras[0], cfg.Cameras[1]
	assert.Equal(t, "admin", c1.User)
	assert.Equal(t, "p@ss:w/rd#1?%20", c1.Password, "values from the environment are used verbatim")
	assert.Equal(t, "rtsp://192.168.1.10:554/Streaming/Channels/101?transportmode=unicast", c1.Location)
	assert.Equal(t, "viewer", c2.User)
	assert.Equal(t, "pre@x", c2.Password, "literal user-info text is percent-decoded")
	assert.Equal(t, "rtsp://127.0.0.1:8554/cam2", c2.Location)
}

func TestURLUserInfo(t *testing.T) {
	cfg := mustLoad(t, `
cameras:
  - id: a
    url: rtsp://admin:p%2Fw@10.0.0.1/a
    codec: h264
  - id: b
    url: rtsps://op:un@esc@aped@cam.example:322/live
    codec: h264
`)
	assert.Equal(t, [2]string{"admin", "p/w"}, [2]string{cfg.Cameras[0].User, cfg.Cameras[0].Password})
	assert.Equal(t, "rtsp://10.0.0.1/a", cfg.Cameras[0].Location)
	assert.Equal(t, [2]string{"op", "un@esc@aped"}, [2]string{cfg.Cameras[1].User, cfg.Cameras[1].Password})
	assert.Equal(t, "rtsps://cam.example:322/live", cfg.Cameras[1].Location)
}

func TestPasswordEnv(t *testing.T) {
	cfg := mustLoad(t, `
cameras:
  - id: a
    url: rtsp://admin@10.0.0.1/a
    codec: h264
    password_env: CAM_A_PW
`, "CAM_A_PW=s3cret")
	assert.Equal(t, "admin", cfg.Cameras[0].User)
	assert.Equal(t, "s3cret", cfg.Cameras[0].Password)
	assert.Equal(t, "rtsp://10.0.0.1/a", cfg.Cameras[0].Location)
}

func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "cam-a.pw", "fr0m-file\n")
	abs := writeFile(t, dir, "cam-b.pw", "other\r\n")
	cfgPath := writeFile(t, dir, "gstcapture.yaml", `
cameras:
  - id: a
    url: rtsp://admin@10.0.0.1/a
    codec: h264
    password_file: cam-a.pw
  - id: b
    url: rtsp://admin@10.0.0.2/b
    codec: h264
    password_file: `+abs+`
`)
	cfg, err := Load(cfgPath, nil)
	require.NoError(t, err)
	assert.Equal(t, "fr0m-file", cfg.Cameras[0].Password, "relative to the config file; trailing newline dropped")
	assert.Equal(t, "other", cfg.Cameras[1].Password)
	// Each password also in its HTTP Basic form, base64("user:password").
	assert.ElementsMatch(t, []string{"fr0m-file", "YWRtaW46ZnIwbS1maWxl", "other", "YWRtaW46b3RoZXI="}, cfg.Secrets())
}

func TestSecretsIncludeRedisPassword(t *testing.T) {
	cfg := mustLoad(t, `redis: {url: "redis://:rpw@127.0.0.1:6379/0"}`+oneCamera)
	assert.Equal(t, []string{"rpw"}, cfg.Secrets())
}

// publish.StreamKey expands redis.stream; the default template is its own.
func TestStreamKey(t *testing.T) {
	c := Camera{ID: "cam1"}
	assert.Equal(t, publish.DefaultStream, mustLoad(t, oneCamera).Redis.Stream)
	assert.Equal(t, "frames:cam1", publish.StreamKey("frames:{camera_id}", c.ID))
	assert.Equal(t, "x:cam1:cam1", publish.StreamKey("x:{camera_id}:{camera_id}", c.ID))
	assert.Equal(t, "shared", publish.StreamKey("shared", c.ID))
}

// userCam is cam with a user name in the URL.
func userCam(extra string) string {
	return "cameras:\n  - id: cam1\n    url: rtsp://admin@10.0.0.1/a\n    codec: h264\n" + extra
}

// cam wraps one camera entry's extra lines into a full file.
func cam(extra string) string {
	return "cameras:\n  - id: cam1\n    url: rtsp://10.0.0.1/a\n    codec: h264\n" + extra
}

func TestValidationProblems(t *testing.T) {
	cases := []struct {
		name string
		yml  string
		env  []string
		want []string // "path: message fragment"
	}{
		{"unknown top-level key", "cameraz: []\n" + oneCamera, nil,
			[]string{"cameraz: unknown key (did you mean cameras?)"}},
		{"unknown defaults key", "defaults: {stall_timout: 3s}\n" + oneCamera, nil,
			[]string{"defaults.stall_timout: unknown key (did you mean stall_timeout?)"}},
		{"unknown nested key", "defaults: {validation: {black: {max_lumaa: 3}}}\n" + oneCamera, nil,
			[]string{"defaults.validation.black.max_lumaa: unknown key (did you mean max_luma?)"}},
		{"unknown camera key", cam("    pasword_env: X\n"), nil,
			[]string{"cameras[0].pasword_env: unknown key (did you mean password_env?)"}},
		{"upper-case key", "defaults: {FPS: 3}\n" + oneCamera, nil,
			[]string{"defaults.FPS: unknown key (did you mean fps?)"}},
		{"unknown key without suggestion", "redis: {zzzzzz: 1}\n" + oneCamera, nil,
			[]string{"redis.zzzzzz: unknown key"}},
		{"bad duration", "defaults: {latency: 2 seconds}\n" + oneCamera, nil,
			[]string{`defaults.latency: invalid duration "2 seconds"`}},
		{"duration without unit", "redis: {timeout: 2}\n" + oneCamera, nil,
			[]string{"redis.timeout: invalid duration 2"}},
		{"bad enum transport", "defaults: {transport: tpc}\n" + oneCamera, nil,
			[]string{`defaults.transport: must be one of tcp, udp, auto, got "tpc"`}},
		{"bad enum decoder", cam("    decoder: nvidia\n"), nil,
			[]string{`cameras[0].decoder: must be one of auto, gpu, cpu, got "nvidia"`}},
		{"bad action", "defaults: {validation: {frozen: {action: skip}}}\n" + oneCamera, nil,
			[]string{`defaults.validation.frozen.action: unknown validation action "skip" (want drop, pass or off)`}},
		{"bad log level and format", "log: {level: verbose, format: xml}\n" + oneCamera, nil,
			[]string{"log.level: must be one of debug, info, warn, error", "log.format: must be one of json, text"}},
		{"bad format", "defaults: {format: YUY2}\n" + oneCamera, nil,
			[]string{`defaults.format: unknown format "YUY2"`}},
		{"bad codec", "cameras:\n  - {id: a, url: rtsp://h/a, codec: vp8}\n", nil,
			[]string{`cameras[0].codec: must be one of h264, h265, auto, got "vp8"`}},
		{"codec is lower case", "cameras:\n  - {id: a, url: rtsp://h/a, codec: AUTO}\n", nil,
			[]string{`cameras[0].codec: must be one of h264, h265, auto, got "AUTO"`}},
		{"missing codec", "cameras:\n  - {id: a, url: rtsp://h/a}\n", nil,
			[]string{"cameras[0].codec: required"}},
		{"fps zero", "defaults: {fps: 0}\n" + oneCamera, nil,
			[]string{"defaults.fps: must be between 1 and 120, got 0"}},
		{"fps too high per camera", cam("    fps: 121\n"), nil,
			[]string{"cameras[0].fps: must be between 1 and 120, got 121"}},
		{"fps not a number", cam("    fps: fast\n"), nil,
			[]string{`cameras[0].fps: must be an integer, got "fast"`}},
		{"width without height", "defaults: {width: 640}\n" + oneCamera, nil,
			[]string{"defaults.width: width 640 and height 0: set both or neither"}},
		{"camera height without width", cam("    height: 480\n"), nil,
			[]string{"cameras[0].width: width 0 and height 480: set both or neither"}},
		{"negative width", cam("    width: -1\n    height: 10\n"), nil,
			[]string{"cameras[0].width: must be between 0 and 8192, got -1"}},
		{"reconnect initial zero", "defaults: {reconnect: {initial: 0s}}\n" + oneCamera, nil,
			[]string{"defaults.reconnect.initial: must be > 0s and <= 5s, got 0s"}},
		{"reconnect initial too long", "defaults: {reconnect: {initial: 6s}}\n" + oneCamera, nil,
			[]string{"defaults.reconnect.initial: must be > 0s and <= 5s, got 6s"}},
		{"reconnect max below initial", cam("    reconnect: {initial: 4s, max: 2s}\n"), nil,
			[]string{"cameras[0].reconnect.max: must be >= reconnect.initial (4s), got 2s"}},
		{"stall timeout too short", "defaults: {stall_timeout: 500ms}\n" + oneCamera, nil,
			[]string{"defaults.stall_timeout: must be between 1s and 10m0s, got 500ms"}},
		{"ring size zero", "defaults: {ring_size: 0}\n" + oneCamera, nil,
			[]string{"defaults.ring_size: must be between 1 and 100000, got 0"}},
		{"negative threads", "defaults: {convert_threads: -1, decoder_threads: -2}\n" + oneCamera, nil,
			[]string{"defaults.convert_threads: must be between 0 and 256, got -1", "defaults.decoder_threads: must be between 0 and 256, got -2"}},
		{"unknown converter", cam("    converter: swscale\n"), nil,
			[]string{"cameras[0].converter: must be one of auto, videoconvert, got \"swscale\""}},
		{"max luma out of range", "defaults: {validation: {black: {max_luma: 300}}}\n" + oneCamera, nil,
			[]string{"defaults.validation.black.max_luma: must be between 0 and 255, got 300"}},
		{"negative stddev", "defaults: {validation: {uniform: {max_stddev: -1}}}\n" + oneCamera, nil,
			[]string{"defaults.validation.uniform.max_stddev: must be between 0 and 128, got -1"}},
		{"section not a mapping", "redis: localhost\n" + oneCamera, nil,
			[]string{`redis: must be a mapping, got "localhost"`}},
		{"duplicate ids", `
cameras:
  - {id: cam1, url: rtsp://h/1, codec: h264}
  - {id: cam2, url: rtsp://h/2, codec: h264}
  - {id: cam3, url: rtsp://h/3, codec: h264}
  - {id: cam1, url: rtsp://h/4, codec: h264}
`, nil, []string{`cameras[3].id: duplicate id "cam1" (also cameras[0])`}},
		{"missing id and url", "cameras:\n  - {codec: h264}\n", nil,
			[]string{"cameras[0].id: required", "cameras[0].url: required"}},
		{"bad id", "cameras:\n  - {id: 'cam 1', url: rtsp://h/1, codec: h264}\n", nil,
			[]string{`cameras[0].id: "cam 1" must be 1-64 characters`}},
		{"id too long", "cameras:\n  - {id: " + strings.Repeat("a", 65) + ", url: rtsp://h/1, codec: h264}\n", nil,
			[]string{"cameras[0].id: "}},
		{"url scheme", "cameras:\n  - {id: a, url: http://h/1, codec: h264}\n", nil,
			[]string{"cameras[0].url: scheme must be rtsp or rtsps"}},
		{"url without scheme", "cameras:\n  - {id: a, url: 192.168.1.10/x, codec: h264}\n", nil,
			[]string{"cameras[0].url: must be an absolute URL"}},
		{"url without host", "cameras:\n  - {id: a, url: 'rtsp:///stream', codec: h264}\n", nil,
			[]string{"cameras[0].url: has no host"}},
		{"url bad port", "cameras:\n  - {id: a, url: 'rtsp://h:port/x', codec: h264}\n", nil,
			[]string{`cameras[0].url: cannot parse: invalid port ":port" after host`}},
		{"url port out of range", "cameras:\n  - {id: a, url: 'rtsp://h:70000/x', codec: h264}\n", nil,
			[]string{"cameras[0].url: port must be 1-65535"}},
		{"unset var", "cameras:\n  - {id: a, url: 'rtsp://admin:${CAM1_PASSWORD}@h/x', codec: h264}\n", nil,
			[]string{"cameras[0].url: environment variable CAM1_PASSWORD is not set"}},
		{"two unset vars", "cameras:\n  - {id: a, url: 'rtsp://${U}:${P}@${HOST}/x', codec: h264}\n", []string{"U=x"},
			[]string{"cameras[0].url: environment variable P is not set", "cameras[0].url: environment variable HOST is not set"}},
		{"malformed var", "cameras:\n  - {id: a, url: 'rtsp://h/${BAD-NAME}', codec: h264}\n", nil,
			[]string{"cameras[0].url: malformed ${...}"}},
		{"unterminated var", "cameras:\n  - {id: a, url: 'rtsp://h/${X', codec: h264}\n", nil,
			[]string{"cameras[0].url: malformed ${...}"}},
		{"password_env unset", userCam("    password_env: NOPE\n"), nil,
			[]string{"cameras[0].password_env: environment variable NOPE is not set"}},
		{"password_env bad name", userCam("    password_env: 'a b'\n"), nil,
			[]string{`cameras[0].password_env: "a b" is not an environment variable name`}},
		{"password_file unreadable", userCam("    password_file: /nonexistent/cam.pw\n"), nil,
			[]string{"cameras[0].password_file: cannot read: open /nonexistent/cam.pw: no such file or directory"}},
		{"password_env and password_file", userCam("    password_env: A\n    password_file: b\n"), []string{"A=x"},
			[]string{"cameras[0].password_env: set password_env or password_file, not both"}},
		{"password_env without user", cam("    password_env: A\n"), []string{"A=x"},
			[]string{"cameras[0].url: needs a user name"}},
		{"password_env unset and no user", cam("    password_env: A\n"), nil,
			[]string{"cameras[0].password_env: environment variable A is not set", "cameras[0].url: needs a user name"}},
		{"password in url and password_file", "cameras:\n  - {id: a, url: 'rtsp://u:p@h/x', codec: h264, password_file: /nonexistent}\n", nil,
			[]string{"cameras[0].password_file: cannot read", "cameras[0].url: has a password and password_env/password_file is also set"}},
		{"empty file", "", nil,
			[]string{"cameras: no cameras configured"}},
		{"cameras not a list", "cameras: {id: a}\n", nil,
			[]string{"cameras: must be a list of cameras, got a mapping"}},
		{"camera not a mapping", "cameras:\n  - rtsp://h/x\n", nil,
			[]string{`cameras[0]: must be a mapping with id, url and codec, got "rtsp://h/x"`}},
		{"redis url scheme", "redis: {url: 'http://h:6379'}\n" + oneCamera, nil,
			[]string{"redis.url: scheme must be redis, rediss or unix"}},
		{"redis url no host", "redis: {url: 'redis://'}\n" + oneCamera, nil,
			[]string{"redis.url: has no host"}},
		{"redis url unparsable", "redis: {url: 'redis://h:xx'}\n" + oneCamera, nil,
			[]string{"redis.url: cannot parse as a URL"}},
		{"redis unix without path", "redis: {url: 'unix://'}\n" + oneCamera, nil,
			[]string{"redis.url: has no socket path"}},
		{"stream template empty", "redis: {stream: ''}\n" + oneCamera, nil,
			[]string{"redis.stream: must not be empty"}},
		{"redis numbers", "redis: {maxlen: -1, batch: 0, timeout: 0s}\n" + oneCamera, nil,
			[]string{"redis.maxlen: must be >= 0, got -1", "redis.batch: must be between 1 and 1000, got 0", "redis.timeout: must be between 1ms and 1m0s, got 0s"}},
		{"http listen", "http: {listen: '8000'}\n" + oneCamera, nil,
			[]string{"http.listen: must be host:port"}},
		{"max_frozen zero", "health: {max_frozen: 0}\n" + oneCamera, nil,
			[]string{"health.max_frozen: must be >= 1, got 0"}},
		{"env unknown key", oneCamera, []string{"GSTCAPTURE_REDIS__URLL=redis://h"},
			[]string{`GSTCAPTURE_REDIS__URLL: unknown setting "redis.urll" (did you mean GSTCAPTURE_REDIS__URL?)`}},
		{"env single underscore between levels", oneCamera, []string{"GSTCAPTURE_REDIS_URL=redis://h"},
			[]string{`GSTCAPTURE_REDIS_URL: unknown setting "redis_url"`}},
		{"env cameras", oneCamera, []string{"GSTCAPTURE_CAMERAS__0__FPS=3"},
			[]string{"GSTCAPTURE_CAMERAS__0__FPS: cameras can only be set in the file"}},
		{"env bad value names its variable", oneCamera, []string{"GSTCAPTURE_DEFAULTS__STALL_TIMEOUT=3 s"},
			[]string{`defaults.stall_timeout: invalid duration "3 s" (use a unit: 200ms, 5s, 1m) (set by GSTCAPTURE_DEFAULTS__STALL_TIMEOUT)`}},
		{"env bad boolean", oneCamera, []string{"GSTCAPTURE_FLEET__ENABLED=yes"},
			[]string{`fleet.enabled: must be true or false, got "yes" (set by GSTCAPTURE_FLEET__ENABLED)`}},
		{"file boolean of another type", "fleet: {enabled: 3}\n" + oneCamera, nil,
			[]string{"fleet.enabled: must be true or false, got"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := problems(t, tc.yml, tc.env...)
			text := ps.Error()
			for _, w := range tc.want {
				assert.Contains(t, text, w)
			}
			assert.Len(t, ps, len(tc.want), "exactly the expected problems:\n%s", text)
		})
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	ps := problems(t, `
http: {listen: nope}
redis: {url: "ftp://x", stream: ""}
log: {level: loud}
defaults:
  fps: 0
  latency: soon
  stall_timout: 3s
cameras:
  - {id: cam1, url: "http://h/x", codec: h264}
  - {id: cam1, url: "rtsp://h/${MISSING}", codec: h266, width: 10}
`)
	paths := map[string]bool{}
	for _, p := range ps {
		paths[p.Path] = true
	}
	for _, want := range []string{"http.listen", "redis.url", "redis.stream", "log.level", "defaults.fps", "defaults.latency", "defaults.stall_timout", "cameras[0].url", "cameras[1].id", "cameras[1].url", "cameras[1].codec"} {
		assert.True(t, paths[want], "missing a problem at %s in:\n%s", want, ps.Error())
	}
	assert.Len(t, strings.Split(ps.Error(), "\n"), len(ps), "one line per problem")
}

// Load returns *Problems; errors.As finds it with a Problems target too,
// as cmd/gstcapture asks.
func TestProblemsAsValue(t *testing.T) {
	_, err := load(t, "defaults: {fps: 0}\n"+oneCamera)
	var ps Problems
	require.ErrorAs(t, err, &ps)
	assert.Equal(t, []string{"defaults.fps: must be between 1 and 120, got 0"}, problemStrings(ps))
}

// Validation actions are validate.Action's own spelling: any case.
func TestActionCase(t *testing.T) {
	cfg := mustLoad(t, cam("    validation: {black: {action: Pass}, size: {action: ' OFF '}}\n"))
	v := cfg.Cameras[0].Settings.Validation
	assert.Equal(t, [3]validate.Action{validate.Pass, validate.Off, validate.Drop}, [3]validate.Action{v.Black.Action, v.Size.Action, v.Corrupt.Action})
}

// A camera inherits defaults.tls_ca_file resolved against the config's
// directory, once.
func TestDefaultsTLSCAFileInherited(t *testing.T) {
	dir := t.TempDir()
	caPEM, err := os.ReadFile(testenv.NewCA(t, t.TempDir()).CAFile)
	require.NoError(t, err)
	writeFile(t, dir, "ca.pem", string(caPEM))
	cfg, err := Load(writeFile(t, dir, "c.yaml", "defaults: {tls_ca_file: ca.pem}\n"+oneCamera), nil)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "ca.pem"), cfg.Defaults.TLSCAFile)
	assert.Equal(t, cfg.Defaults, cfg.Cameras[0].Settings)
}

func TestYAMLSyntaxErrorNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "broken.yaml", "http:\n  listen: \":8000\"\n\tcameras: []\n")
	_, err := Load(p, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), p)
	assert.Contains(t, err.Error(), "line 3")
	var ps *Problems
	assert.False(t, errors.As(err, &ps))

	_, err = Load(filepath.Join(dir, "missing.yaml"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing.yaml")
}

func TestPasswordNeverInProblems(t *testing.T) {
	const pw = "Sup3r-Secr3t"
	cases := []struct {
		name string
		yml  string
		env  []string
	}{
		{"bad scheme", "cameras:\n  - {id: a, url: 'http://admin:" + pw + "@h/x', codec: h264}\n", nil},
		{"bad port", "cameras:\n  - {id: a, url: 'rtsp://admin:" + pw + "@h:99999999999/x', codec: h264}\n", nil},
		{"bad port word", "cameras:\n  - {id: a, url: 'rtsp://admin:" + pw + "@h:abc/x', codec: h264}\n", nil},
		{"slash in password", "cameras:\n  - {id: a, url: 'rtsp://admin:" + pw + "/x@h/x', codec: h264}\n", nil},
		{"hash in password", "cameras:\n  - {id: a, url: 'rtsp://admin:" + pw + "#x@h/x', codec: h264}\n", nil},
		{"slash in password, numeric", "cameras:\n  - {id: a, url: 'rtsp://admin:12/" + pw + "@h/x', codec: h264}\n", nil},
		{"bad percent-encoding", "cameras:\n  - {id: a, url: 'rtsp://admin:" + pw + "%zz@h/x', codec: h264}\n", nil},
		{"password and password_env", "cameras:\n  - {id: a, url: 'rtsp://admin:" + pw + "@h/x', codec: h264, password_env: P}\n", []string{"P=" + pw}},
		{"expanded password, bad host", "cameras:\n  - {id: a, url: 'rtsp://admin:${P}@h:xx/x', codec: h264}\n", []string{"P=" + pw}},
		{"expanded password, other problems", "cameras:\n  - {id: a, url: 'rtsp://admin:${P}@h/x', codec: h265, fps: 0, format: bgr}\n", []string{"P=" + pw}},
		{"env password, unknown key", "cameras:\n  - {id: a, url: 'rtsp://admin@h/x', codec: h264, password_env: P, fsp: 3}\n", []string{"P=" + pw}},
		{"redis password", "redis: {url: 'ftp://u:" + pw + "@h'}\n" + oneCamera, nil},
		{"camera written as a bare URL", "cameras:\n  - rtsp://admin:" + pw + "@h/x\n", nil},
		{"URL in an enum", "cameras:\n  - {id: a, url: 'rtsp://h/x', codec: 'rtsp://admin:" + pw + "@h/x'}\n", nil},
		{"redis password bad port", "redis: {url: 'redis://u:" + pw + "@h:port'}\n" + oneCamera, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := problems(t, tc.yml, tc.env...)
			assert.NotContains(t, ps.Error(), pw)
			assert.NotContains(t, ps.Error(), "Secr3t")
			for _, p := range ps {
				assert.NotContains(t, p.Path+p.Msg, pw)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	cases := []struct {
		in      string
		secrets []string
		want    string
	}{
		{"nothing here", nil, "nothing here"},
		{"rtsp://admin:pw@10.0.0.1:554/x failed", nil, "rtsp://10.0.0.1:554/x failed"},
		{`location="rtsps://u:p@ss@h/x" other@mail`, nil, `location="rtsps://h/x" other@mail`},
		{"redis://:pw@127.0.0.1:6379/0 down", nil, "redis://127.0.0.1:6379/0 down"},
		{"rtsp://h/path@x keeps path", nil, "rtsp://h/path@x keeps path"},
		{"two rtsp://a:b@h1/x and rtsp://c:d@h2/y", nil, "two rtsp://h1/x and rtsp://h2/y"},
		{"auth failed for s3cret", []string{"s3cret"}, "auth failed for ***"},
		{"escaped p%40ss and p@ss", []string{"p@ss"}, "escaped *** and ***"},
		{"empty secret ignored", []string{""}, "empty secret ignored"},
		{"longer first: abcdef abc", []string{"abc", "abcdef"}, "longer first: *** ***"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, Redact(tc.in, tc.secrets...), tc.in)
	}
}

func TestEnvName(t *testing.T) {
	assert.Equal(t, "GSTCAPTURE_DEFAULTS__STALL_TIMEOUT", EnvName("defaults.stall_timeout"))
	assert.Equal(t, "GSTCAPTURE_REDIS__URL", EnvName("redis.url"))
	assert.Contains(t, Keys(), "defaults.validation.frozen.after")
}

// codec: auto is accepted per camera and kept as written: the codec comes
// from the camera's SDP at run time.
func TestCodecAuto(t *testing.T) {
	cfg := mustLoad(t, "cameras:\n  - {id: a, url: rtsp://h/a, codec: auto}\n  - {id: b, url: rtsp://h/b, codec: h265}\n")
	require.Len(t, cfg.Cameras, 2)
	assert.Equal(t, CodecAuto, cfg.Cameras[0].Codec)
	assert.Equal(t, "h265", cfg.Cameras[1].Codec)
}

// A ${VAR} anywhere in a camera URL but the host is a secret: token-style
// cameras carry their credential in the path or query.
func TestURLVarsAreSecrets(t *testing.T) {
	cases := []struct {
		name, url  string
		env        []string
		location   string   // Camera.Location
		withVars   string   // Camera.LocationWithVars
		secrets    []string // Config.Secrets
		notSecrets []string // values that must stay visible
	}{
		{
			name:     "token in the query",
			url:      "rtsp://cam.example/stream?token=${CAM1_TOKEN}",
			env:      []string{"CAM1_TOKEN=t0k3n-abc"},
			location: "rtsp://cam.example/stream?token=t0k3n-abc",
			withVars: "rtsp://cam.example/stream?token=${CAM1_TOKEN}",
			secrets:  []string{"t0k3n-abc"},
		},
		{
			name:     "token in the path",
			url:      "rtsp://cam.example:8554/${CAM1_KEY}/live",
			env:      []string{"CAM1_KEY=k3y-path"},
			location: "rtsp://cam.example:8554/k3y-path/live",
			withVars: "rtsp://cam.example:8554/${CAM1_KEY}/live",
			secrets:  []string{"k3y-path"},
		},
		{
			name:       "host stays visible, path value is secret",
			url:        "rtsp://${ADDR}/${P}",
			env:        []string{"ADDR=10.1.2.3:554", "P=s3cret-p4th"},
			location:   "rtsp://10.1.2.3:554/s3cret-p4th",
			withVars:   "rtsp://10.1.2.3:554/${P}",
			secrets:    []string{"s3cret-p4th"},
			notSecrets: []string{"10.1.2.3:554"},
		},
		{
			name:     "user and password from the environment",
			url:      "rtsp://${U}:${PW}@cam.example/x",
			env:      []string{"U=us3r-name", "PW=pa55word"},
			location: "rtsp://cam.example/x",
			withVars: "rtsp://cam.example/x",
			secrets:  []string{"us3r-name", "pa55word", "dXMzci1uYW1lOnBhNTV3b3Jk"},
		},
		{
			name:     "value re-encoded in the path",
			url:      "rtsp://cam.example/a/${T}",
			env:      []string{"T=to ken/x"},
			location: "rtsp://cam.example/a/to%20ken/x",
			withVars: "rtsp://cam.example/a/${T}",
			secrets:  []string{"to ken/x"},
		},
		{
			name:     "value decoded because the path is re-encoded",
			url:      "rtsp://cam.example/a b/${T}",
			env:      []string{"T=%41tok"},
			location: "rtsp://cam.example/a%20b/Atok",
			withVars: "rtsp://cam.example/a%20b/${T}",
			secrets:  []string{"%41tok", "Atok"},
		},
		{
			name:     "value containing another value",
			url:      "rtsp://cam.example/${A}?t=${B}",
			env:      []string{"A=abcdef", "B=abc"},
			location: "rtsp://cam.example/abcdef?t=abc",
			withVars: "rtsp://cam.example/${A}?t=${B}",
			secrets:  []string{"abcdef", "abc"},
		},
		{
			name:     "empty value",
			url:      "rtsp://cam.example/live?token=${EMPTY}",
			env:      []string{"EMPTY="},
			location: "rtsp://cam.example/live?token=",
			withVars: "rtsp://cam.example/live?token=",
			secrets:  nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustLoad(t, "cameras:\n  - {id: a, url: '"+tc.url+"', codec: h264}\n", tc.env...)
			c := cfg.Cameras[0]
			assert.Equal(t, tc.location, c.Location)
			assert.Equal(t, tc.withVars, c.LocationWithVars())
			assert.ElementsMatch(t, tc.secrets, cfg.Secrets())

			logged := Redact("connect to "+c.Location+" failed", cfg.Secrets()...)
			for _, sec := range tc.secrets {
				assert.NotContains(t, logged, sec)
			}
			for _, v := range tc.notSecrets {
				assert.Contains(t, logged, v)
			}
		})
	}
}

func TestRedactURLEncodedForms(t *testing.T) {
	cases := []struct {
		in, secret, want string
	}{
		{"rtsp://h/a/b%20c/x", "a/b c", "rtsp://h/***/x"},     // url.URL path escaping keeps '/'
		{"rtsp://h/x#fr%20ag", "fr ag", "rtsp://h/x#***"},     // fragment escaping
		{"rtsp://h/x?t=a+b%2Fc", "a b/c", "rtsp://h/x?t=***"}, // QueryEscape
		{"rtsp://h/a%2Fb%20c/x", "a/b c", "rtsp://h/***/x"},   // PathEscape
		{"rtsp://h/x?t=a b/c&y=1", "a b/c", "rtsp://h/x?t=***&y=1"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, Redact(tc.in, tc.secret), tc.in)
	}
}

// redis.maxlen 0 means no entry cap besides redis.retention; below 0 is a
// problem naming the path, also when the environment set it.
func TestMaxLen(t *testing.T) {
	cases := []struct {
		name string
		yml  string
		env  []string
		want int64
		prob string // "" = loads
	}{
		{"default: no cap besides retention", oneCamera, nil, 0, ""},
		{"zero is no trimming", "redis: {maxlen: 0}\n" + oneCamera, nil, 0, ""},
		{"zero from the environment", oneCamera, []string{"GSTCAPTURE_REDIS__MAXLEN=0"}, 0, ""},
		{"positive", "redis: {maxlen: 5}\n" + oneCamera, nil, 5, ""},
		{"negative", "redis: {maxlen: -1}\n" + oneCamera, nil, 0, "redis.maxlen: must be >= 0, got -1"},
		{"negative from the environment", oneCamera, []string{"GSTCAPTURE_REDIS__MAXLEN=-5"}, 0,
			"redis.maxlen: must be >= 0, got -5 (set by GSTCAPTURE_REDIS__MAXLEN)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prob != "" {
				assert.Equal(t, []string{tc.prob}, problemStrings(problems(t, tc.yml, tc.env...)))
				return
			}
			assert.Equal(t, tc.want, mustLoad(t, tc.yml, tc.env...).Redis.MaxLen)
		})
	}
}

func problemStrings(ps Problems) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// redis.memory_budget is auto (0) or a size with a unit; anything else, or
// less than 1MiB, is a problem naming the path and the value.
func TestMemoryBudget(t *testing.T) {
	cases := []struct {
		val  string
		want int64
		prob string
	}{
		{"auto", 0, ""},
		{"AUTO", 0, ""},
		{"2GiB", 2 << 30, ""},
		{"512MiB", 512 << 20, ""},
		{"1.5GB", 1610612736, ""},
		{"300mb", 300 << 20, ""},
		{"300m", 300000000, ""},
		{"1048576", 1 << 20, ""},
		{"lots", 0, `redis.memory_budget: must be auto or a size such as 2GiB, 512MiB or 1.5GB, got "lots"`},
		{"-1GiB", 0, `redis.memory_budget: must be auto or a size such as 2GiB, 512MiB or 1.5GB, got "-1GiB"`},
		{"100KiB", 0, `redis.memory_budget: must be at least 1MiB, got "100KiB" (102400 bytes)`},
	}
	for _, tc := range cases {
		t.Run(tc.val, func(t *testing.T) {
			yml := "redis: {memory_budget: \"" + tc.val + "\"}\n" + oneCamera
			if tc.prob != "" {
				assert.Equal(t, []string{tc.prob}, problemStrings(problems(t, yml)))
				return
			}
			assert.Equal(t, tc.want, mustLoad(t, yml).Redis.MemoryBudget)
		})
	}
	assert.Equal(t, []string{"redis.retention: must be between 100ms and 1h0m0s, got 10ms"},
		problemStrings(problems(t, "redis: {retention: 10ms}\n"+oneCamera)))
}

// memory.budget is auto, none or a size of at least 64MiB; anything else is
// a problem naming the path and the value.
func TestProcessMemoryBudget(t *testing.T) {
	cases := []struct {
		val  string
		want int64
		prob string
	}{
		{"auto", BudgetAuto, ""},
		{"none", BudgetNone, ""},
		{"None", BudgetNone, ""},
		{"1GiB", 1 << 30, ""},
		{"1152MiB", 1152 << 20, ""},
		{"lots", 0, `memory.budget: must be auto, none or a size such as 2GiB, 512MiB or 1.5GB, got "lots"`},
		{"32MiB", 0, `memory.budget: must be at least 64MiB, got "32MiB" (33554432 bytes)`},
	}
	for _, tc := range cases {
		t.Run(tc.val, func(t *testing.T) {
			yml := "memory: {budget: \"" + tc.val + "\"}\n" + oneCamera
			if tc.prob != "" {
				assert.Equal(t, []string{tc.prob}, problemStrings(problems(t, yml)))
				return
			}
			assert.Equal(t, tc.want, mustLoad(t, yml).Memory.Budget)
		})
	}
	assert.Equal(t, BudgetAuto, mustLoad(t, oneCamera).Memory.Budget, "the default")
	assert.Equal(t, []string{"memory.limit: unknown key"},
		problemStrings(problems(t, "memory: {limit: 1GiB}\n"+oneCamera)))
}

// http.auth.tokens_file: "<scope> <token>" lines, relative to the config's
// directory; every problem names the file and line and never the token;
// the tokens are secrets (Redact).
func TestAuthTokens(t *testing.T) {
	dir := t.TempDir()
	good := "# gstcapture API tokens\nread  0123456789abcdef0123\n\nadmin fedcba9876543210fedc\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokens"), []byte(good), 0o600))
	cfgPath := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("http: {auth: {tokens_file: tokens, metrics: read}}\n"+oneCamera), 0o600))
	cfg, err := Load(cfgPath, nil)
	require.NoError(t, err)
	assert.Equal(t, []Token{{ScopeRead, "0123456789abcdef0123"}, {ScopeAdmin, "fedcba9876543210fedc"}}, cfg.HTTP.Auth.Tokens)
	assert.Equal(t, ScopeRead, cfg.HTTP.Auth.Metrics)
	assert.Contains(t, cfg.Secrets(), "fedcba9876543210fedc")

	bad := "read short\nwrite 0123456789abcdef0123\nread 0123456789abcdef0123 extra\nadmin fedcba9876543210fedc\nread fedcba9876543210fedc\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokens"), []byte(bad), 0o600))
	_, err = Load(cfgPath, nil)
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		"http.auth.tokens_file: tokens line 1: token is 5 characters, want at least 16",
		`http.auth.tokens_file: tokens line 2: scope must be read or admin, got "write"`,
		"http.auth.tokens_file: tokens line 3: want \"<scope> <token>\" (scope read or admin), got 3 fields",
		"http.auth.tokens_file: tokens line 5: the same token as line 4",
	} {
		assert.Contains(t, msg, want)
	}
	for _, tok := range []string{"short", "0123456789abcdef0123", "fedcba9876543210fedc"} {
		assert.NotContains(t, msg, tok, "a problem never quotes a token")
	}
	assert.Equal(t, []string{`http.auth.mode: must be one of token, none, got "basic"`},
		problemStrings(problems(t, "http: {auth: {mode: basic}}\n"+oneCamera)))
}

// tls_ca_file: resolved against the config's directory, checked at load
// (readable, PEM certificates only); a problem names the camera's key.
func TestTLSCAFile(t *testing.T) {
	dir := t.TempDir()
	caPEM, err := os.ReadFile(testenv.NewCA(t, t.TempDir()).CAFile)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "pki"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pki", "ca.pem"), caPEM, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "key.pem"), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "empty.pem"), []byte("not pem\n"), 0o644))
	load := func(cam string) (*Config, error) {
		p := filepath.Join(dir, "c.yaml")
		require.NoError(t, os.WriteFile(p, []byte("cameras:\n  - {id: c1, url: \"rtsps://cam.example:322/s\", codec: h264"+cam+"}\n"), 0o600))
		return Load(p, nil)
	}
	cfg, err := load(", tls_ca_file: pki/ca.pem")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "pki", "ca.pem"), cfg.Cameras[0].Settings.TLSCAFile, "relative to the config file")
	cfg, err = load("")
	require.NoError(t, err)
	assert.Empty(t, cfg.Cameras[0].Settings.TLSCAFile, "default: the system's trust store")

	for name, want := range map[string]string{
		"key.pem":     `cameras[0].tls_ca_file: key.pem: a "PRIVATE KEY" block; want only CERTIFICATE blocks (the CA's certificates, never a key)`,
		"empty.pem":   `cameras[0].tls_ca_file: empty.pem: no PEM certificate in the file`,
		"missing.pem": `cameras[0].tls_ca_file: cannot read: open ` + filepath.Join(dir, "missing.pem") + `: no such file or directory`,
	} {
		_, err := load(", tls_ca_file: " + name)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), want, name)
	}
}

// Choices reads a setting's accepted values from its declaration.
func TestChoices(t *testing.T) {
	assert.Equal(t, []string{"auto", "videoconvert"}, Choices("converter"))
	assert.Contains(t, Choices("transport"), "tcp")
	assert.Nil(t, Choices("fps"), "a number has no fixed set")
	assert.Nil(t, Choices("no_such_key"))
}
