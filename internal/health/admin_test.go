package health

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeAdmin records the calls of the camera API's writes.
type fakeAdmin struct {
	calls []string
	err   error
}

func (f *fakeAdmin) PutCamera(_ context.Context, id string, body []byte, dryRun bool) (bool, error) {
	if dryRun {
		f.calls = append(f.calls, "dry-run "+id)
		return id == "new", f.err
	}
	f.calls = append(f.calls, "put "+id+" "+string(body))
	return id == "new", f.err
}

func (f *fakeAdmin) DeleteCamera(_ context.Context, id string) error {
	f.calls = append(f.calls, "delete "+id)
	return f.err
}

func (f *fakeAdmin) RestartCamera(id string) error {
	f.calls = append(f.calls, "restart "+id)
	return f.err
}

func adminServer(admin CameraAdmin) *Server {
	api := &fakeAPI{redis: true}
	return NewServer(api, NewChecker(api, Options{}), ServerOptions{
		Metrics: http.NotFoundHandler(), Cameras: admin,
		Auth: NewAuth(map[string]string{readTok: "read", adminTok: "admin"}, false),
	})
}

func do(h http.Handler, method, path, token, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// The writes need an admin token: none is 401, read is 403, and neither
// reaches the CameraAdmin.
func TestCameraWritesNeedAdmin(t *testing.T) {
	admin := &fakeAdmin{}
	s := adminServer(admin)
	for _, rt := range [][2]string{{"PUT", "/api/v1/cameras/c1"}, {"DELETE", "/api/v1/cameras/c1"}, {"POST", "/api/v1/cameras/c1/restart"}} {
		assert.Equal(t, http.StatusUnauthorized, do(s, rt[0], rt[1], "", "{}").Code, rt)
		assert.Equal(t, http.StatusForbidden, do(s, rt[0], rt[1], readTok, "{}").Code, rt)
	}
	assert.Empty(t, admin.calls)
	assert.Equal(t, http.StatusOK, do(s, "GET", "/api/v1/cameras", readTok, "").Code, "reading still needs only read")

	assert.Equal(t, http.StatusOK, do(s, "PUT", "/api/v1/cameras/c1", adminTok, `{"a":1}`).Code, "replaced")
	rec := do(s, "PUT", "/api/v1/cameras/new", adminTok, `{}`)
	assert.Equal(t, http.StatusCreated, rec.Code)
	assert.JSONEq(t, `{"id": "new", "source": "api", "created": true}`, rec.Body.String())
	assert.Equal(t, http.StatusNoContent, do(s, "DELETE", "/api/v1/cameras/c1", adminTok, "").Code)
	assert.Equal(t, http.StatusAccepted, do(s, "POST", "/api/v1/cameras/c1/restart", adminTok, "").Code)
	assert.Equal(t, []string{`put c1 {"a":1}`, "put new {}", "delete c1", "restart c1"}, admin.calls)

	rec = do(s, "PUT", "/api/v1/cameras/new?dry_run=true", adminTok, `{}`)
	assert.Equal(t, http.StatusOK, rec.Code, "a dry run creates nothing: 200")
	assert.JSONEq(t, `{"id": "new", "source": "api", "created": true, "dry_run": true}`, rec.Body.String())
	assert.Equal(t, "dry-run new", admin.calls[len(admin.calls)-1])
	assert.Equal(t, http.StatusBadRequest, do(s, "PUT", "/api/v1/cameras/new?dry_run=maybe", adminTok, `{}`).Code)
	assert.Equal(t, http.StatusForbidden, do(s, "PUT", "/api/v1/cameras/new?dry_run=true", readTok, `{}`).Code, "a dry run needs admin too")
}

// A refusal answers with its status and every problem; a body over 64 KiB
// is 413 before the CameraAdmin sees it; without a CameraAdmin, 503.
func TestCameraWriteErrors(t *testing.T) {
	admin := &fakeAdmin{err: &CameraError{Status: http.StatusUnprocessableEntity, Message: "camera c1: 1 problem(s)",
		Problems: []Problem{{Path: "fps", Message: "must be between 1 and 120, got 500"}}}}
	s := adminServer(admin)
	rec := do(s, "PUT", "/api/v1/cameras/c1", adminTok, `{"fps": 500}`)
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code)
	var body struct {
		Error    string    `json:"error"`
		Problems []Problem `json:"problems"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, []Problem{{Path: "fps", Message: "must be between 1 and 120, got 500"}}, body.Problems)

	admin.err = &CameraError{Status: http.StatusConflict, Message: "in the file"}
	assert.Equal(t, http.StatusConflict, do(s, "DELETE", "/api/v1/cameras/c1", adminTok, "").Code)
	admin.err = assert.AnError
	assert.Equal(t, http.StatusInternalServerError, do(s, "POST", "/api/v1/cameras/c1/restart", adminTok, "").Code)

	admin.calls = nil
	rec = do(s, "PUT", "/api/v1/cameras/c1", adminTok, `{"url": "`+strings.Repeat("x", maxCameraBody)+`"}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	assert.Empty(t, admin.calls, "an oversized body is refused before it is parsed")

	none := adminServer(nil)
	assert.Equal(t, http.StatusServiceUnavailable, do(none, "PUT", "/api/v1/cameras/c1", adminTok, "{}").Code)
}

func (f *fakeAdmin) CameraEntry(_ context.Context, id string) (map[string]any, error) {
	f.calls = append(f.calls, "entry "+id)
	if f.err != nil {
		return nil, f.err
	}
	return map[string]any{"url": "rtsp://host/" + id, "fps": 5}, nil
}
