package health

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/stats"
)

// fakePages answers camera "cam1" only.
type fakePages struct{}

func (fakePages) Pipelines(id string) ([]stats.Pipeline, error) {
	if id != "cam1" {
		return nil, errors.New("unknown camera")
	}
	return []stats.Pipeline{{Launch: "rtspsrc name=src ! appsink name=sink"}}, nil
}

func (fakePages) History(id string) (stats.CameraHistory, error) {
	if id != "cam1" {
		return stats.CameraHistory{}, errors.New("unknown camera")
	}
	return stats.CameraHistory{ID: id, IntervalSeconds: 5, Points: []stats.HistoryPoint{{T: time.Unix(1, 0), FPS: 9.5}},
		States: []stats.Transition{{From: stats.StateStreaming, To: stats.StateStalled, Reason: "no frame for 3s"}}}, nil
}

func consoleServer(admin CameraAdmin) *Server {
	api := &fakeAPI{redis: true}
	return NewServer(api, NewChecker(api, Options{}), ServerOptions{
		Metrics: http.NotFoundHandler(), Cameras: admin, Pages: fakePages{},
		Console: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("console-page")) }),
		Auth:    NewAuth(map[string]string{readTok: "read", adminTok: "admin"}, false),
	})
}

// The session says the token's scope; a wrong token is refused there as
// everywhere, so the console's sign-in fails on it.
func TestSessionScope(t *testing.T) {
	s := consoleServer(&fakeAdmin{})
	for _, tc := range []struct {
		token, scope string
		code         int
	}{{readTok, "read", 200}, {adminTok, "admin", 200}, {"wrong", "", 401}, {"", "", 401}} {
		rec := do(s, "GET", "/api/v1/session", tc.token, "")
		require.Equal(t, tc.code, rec.Code, "token %q: %s", tc.token, rec.Body)
		if tc.code != 200 {
			assert.NotContains(t, rec.Body.String(), "wrong", "the answer never echoes the token")
			continue
		}
		var got struct {
			Scope string `json:"scope"`
			Auth  bool   `json:"auth"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
		assert.Equal(t, tc.scope, got.Scope)
		assert.True(t, got.Auth)
	}

	// Without auth (mode none) every caller may do everything.
	api := &fakeAPI{redis: true}
	open := NewServer(api, NewChecker(api, Options{}), ServerOptions{Metrics: http.NotFoundHandler()})
	rec := do(open, "GET", "/api/v1/session", "", "")
	require.Equal(t, 200, rec.Code)
	assert.JSONEq(t, `{"scope":"admin","auth":false}`, rec.Body.String())
}

// The page and its files need no token; the camera page's data needs
// read, the stored entry admin.
func TestConsoleRoutesAccess(t *testing.T) {
	admin := &fakeAdmin{}
	s := consoleServer(admin)
	assert.Equal(t, 200, do(s, "GET", "/", "", "").Code)
	assert.Equal(t, 200, do(s, "GET", "/console/app.js", "", "").Code)
	rec := do(s, "GET", "/nothing-here", "", "")
	assert.Equal(t, 404, rec.Code, "only / itself is the page")
	assert.NotContains(t, rec.Body.String(), "console-page")

	for _, path := range []string{"/api/v1/cameras/cam1/pipeline", "/api/v1/cameras/cam1/history"} {
		assert.Equal(t, 401, do(s, "GET", path, "", "").Code, path)
		rec := do(s, "GET", path, readTok, "")
		assert.Equal(t, 200, rec.Code, path)
		assert.Equal(t, 404, do(s, "GET", path[:len("/api/v1/cameras/")]+"nope"+path[len("/api/v1/cameras/cam1"):], readTok, "").Code, path)
	}
	rec = do(s, "GET", "/api/v1/cameras/cam1/history", readTok, "")
	assert.Contains(t, rec.Body.String(), `"reason": "no frame for 3s"`)
	rec = do(s, "GET", "/api/v1/cameras/cam1/pipeline", readTok, "")
	assert.JSONEq(t, `{"id":"cam1","pipelines":[{"codec":"","launch":"rtspsrc name=src ! appsink name=sink"}]}`, rec.Body.String())

	assert.Equal(t, 403, do(s, "GET", "/api/v1/cameras/cam1/entry", readTok, "").Code)
	assert.Empty(t, admin.calls, "a read token never reaches the entry")
	rec = do(s, "GET", "/api/v1/cameras/cam1/entry", adminTok, "")
	require.Equal(t, 200, rec.Code)
	assert.JSONEq(t, `{"id":"cam1","source":"api","entry":{"url":"rtsp://host/cam1","fps":5}}`, rec.Body.String())

	admin.err = &CameraError{Status: http.StatusConflict, Message: "configured in the file"}
	rec = do(s, "GET", "/api/v1/cameras/cam1/entry", adminTok, "")
	assert.Equal(t, 409, rec.Code)
	assert.Contains(t, rec.Body.String(), "configured in the file")
}
