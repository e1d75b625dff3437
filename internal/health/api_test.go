package health

import (
	"context"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"gstcapture/internal/frame"
	"gstcapture/internal/stats"
)

// fakeAPI is a pure-logic stand-in for the running service.
type fakeAPI struct {
	cams   []stats.Snapshot
	redis  bool
	full   bool
	frozen int64
	pic    *frame.Picture
}

func (f *fakeAPI) Snapshots(time.Time) []stats.Snapshot { return f.cams }
func (f *fakeAPI) RedisHealthy() bool                   { return f.redis }
func (f *fakeAPI) RedisFull() bool                      { return f.full }
func (f *fakeAPI) Frozen() int64                        { return f.frozen }
func (f *fakeAPI) Memory() stats.Memory                 { return stats.Memory{} }
func (f *fakeAPI) Snapshot(_ context.Context, id string, _ time.Duration) (*frame.Picture, error) {
	for _, c := range f.cams {
		if c.ID == id {
			return f.pic, nil
		}
	}
	return nil, assert.AnError
}

func newTestServer(api *fakeAPI) *Server {
	c := NewChecker(api, Options{MinReady: 1, MaxFrozen: 2})
	return NewServer(api, c, ServerOptions{Metrics: http.NotFoundHandler(), OpenAPI: []byte("openapi: 3.0.3\n")})
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

// Every route the server registers is in docs/openapi.yaml, and every path
// there is registered.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	raw, err := os.ReadFile("../../docs/openapi.yaml")
	require.NoError(t, err)
	var spec struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &spec))
	require.True(t, strings.HasPrefix(spec.OpenAPI, "3."))
	var inSpec, registered []string
	for path, ops := range spec.Paths {
		for method := range ops {
			inSpec = append(inSpec, strings.ToUpper(method)+" "+path)
		}
	}
	for _, r := range newTestServer(&fakeAPI{}).Routes() {
		registered = append(registered, r.Method+" "+r.Path)
	}
	sort.Strings(inSpec)
	sort.Strings(registered)
	assert.Equal(t, inSpec, registered)
}

func TestProbes(t *testing.T) {
	api := &fakeAPI{redis: true, cams: []stats.Snapshot{{ID: "a", State: stats.StateStreaming}, {ID: "b", State: stats.StateError}}}
	s := newTestServer(api)
	assert.Equal(t, 200, get(t, s, "/healthz").Code)
	assert.Equal(t, 200, get(t, s, "/readyz").Code)
	rec := get(t, s, "/health")
	assert.Equal(t, 200, rec.Code)
	assert.Contains(t, rec.Body.String(), `"status": "degraded"`)

	api.redis = false
	rec = get(t, s, "/readyz")
	assert.Equal(t, 503, rec.Code)
	assert.Contains(t, rec.Body.String(), "redis unreachable")
	assert.Equal(t, 200, get(t, s, "/healthz").Code, "Redis down is not a reason to restart")

	api.redis, api.full = true, true
	rec = get(t, s, "/readyz")
	assert.Equal(t, 503, rec.Code)
	assert.Contains(t, rec.Body.String(), "redis full")
	assert.Contains(t, get(t, s, "/health").Body.String(), `"redis": "full"`)
	assert.Equal(t, 200, get(t, s, "/healthz").Code, "a full Redis is not a reason to restart")
	api.full = false

	api.cams[0].State = stats.StateStalled
	rec = get(t, s, "/readyz")
	assert.Equal(t, 503, rec.Code)
	assert.Contains(t, rec.Body.String(), "0 cameras streaming")

	api.frozen = 3
	rec = get(t, s, "/healthz")
	assert.Equal(t, 503, rec.Code)
	assert.Contains(t, rec.Body.String(), "frozen")
	assert.Contains(t, get(t, s, "/health").Body.String(), `"status": "unhealthy"`)
}

func TestCameraAPI(t *testing.T) {
	api := &fakeAPI{redis: true, cams: []stats.Snapshot{{ID: "cam1", State: stats.StateStreaming}}}
	s := newTestServer(api)
	assert.Equal(t, 200, get(t, s, "/api/v1/cameras").Code)
	assert.Equal(t, 200, get(t, s, "/api/v1/cameras/cam1").Code)
	assert.Equal(t, 404, get(t, s, "/api/v1/cameras/nope").Code)
	assert.Equal(t, 404, get(t, s, "/api/v1/cameras/nope/snapshot.jpg").Code)
	rec := get(t, s, "/api/v1/cameras/cam1/snapshot.jpg")
	assert.Equal(t, 404, rec.Code, "no frame yet")
	assert.Contains(t, rec.Body.String(), "not delivered a valid frame yet")

	stride, size, _ := frame.Layout(frame.BGR, 64, 48)
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	api.pic = &frame.Picture{CameraID: "cam1", Seq: 7, Width: 64, Height: 48, Stride: stride, Format: frame.BGR, Data: data}
	rec = get(t, s, "/api/v1/cameras/cam1/snapshot.jpg")
	require.Equal(t, 200, rec.Code)
	assert.Equal(t, "image/jpeg", rec.Header().Get("Content-Type"))
	assert.Equal(t, "7", rec.Header().Get("X-Frame-Seq"))
	img, err := jpeg.Decode(rec.Body)
	require.NoError(t, err)
	assert.Equal(t, 64, img.Bounds().Dx())
}

// Every emitted format becomes a JPEG of the right size, and colours keep
// their channel order.
func TestEncodeJPEGFormats(t *testing.T) {
	for _, f := range frame.Formats {
		if f.Compressed() {
			continue // TestEncodeJPEGOfAJPEG
		}
		stride, size, err := frame.Layout(f, 33, 21)
		require.NoError(t, err)
		data := make([]byte, size)
		if f == frame.BGR {
			for y := 0; y < 21; y++ {
				for x := 0; x < 33; x++ {
					data[y*stride+3*x+2] = 255 // red in BGR
				}
			}
		}
		out, err := EncodeJPEG(&frame.Picture{Width: 33, Height: 21, Stride: stride, Format: f, Data: data}, 90)
		require.NoError(t, err, "%s", f)
		img, err := jpeg.Decode(strings.NewReader(string(out)))
		require.NoError(t, err, "%s", f)
		assert.Equal(t, 33, img.Bounds().Dx(), "%s", f)
		if f == frame.BGR {
			r, g, b, _ := img.At(10, 10).RGBA()
			assert.Greater(t, r>>8, uint32(200))
			assert.Less(t, g>>8, uint32(60))
			assert.Less(t, b>>8, uint32(60))
		}
	}
	_, err := EncodeJPEG(&frame.Picture{Width: 33, Height: 21, Format: frame.BGR, Data: make([]byte, 10)}, 90)
	assert.Error(t, err)
}

// A JPEG frame's snapshot is its own bytes: not decoded, not encoded again.
func TestEncodeJPEGOfAJPEG(t *testing.T) {
	jpegBytes := []byte{0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9}
	out, err := EncodeJPEG(&frame.Picture{Width: 33, Height: 21, Format: frame.JPEG, Data: jpegBytes}, 90)
	require.NoError(t, err)
	assert.Equal(t, jpegBytes, out)
}
