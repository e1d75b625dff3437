package health

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"

	"gstcapture/internal/stats"
)

const (
	readTok  = "read-0123456789abcdef"
	adminTok = "admin-0123456789abcdef"
)

func authServer(auth *Auth) *Server {
	api := &fakeAPI{redis: true, cams: []stats.Snapshot{{ID: "a", State: stats.StateStreaming}}}
	c := NewChecker(api, Options{MinReady: 1, MaxFrozen: 2})
	return NewServer(api, c, ServerOptions{Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}),
		OpenAPI: []byte("openapi: 3.0.3\n"), Auth: auth})
}

func getAs(h http.Handler, path, authz string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", path, nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	h.ServeHTTP(rec, req)
	return rec
}

// Probes, the API description and /metrics stay open; /health, the camera
// API and snapshots need a bearer token of scope read (admin implies it);
// a missing or wrong token gets 401 with a Bearer challenge that never
// echoes it.
func TestAuthScopes(t *testing.T) {
	s := authServer(NewAuth(map[string]string{readTok: "read", adminTok: "admin"}, false))
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.yaml"} {
		assert.Equal(t, 200, getAs(s, p, "").Code, "%s is open", p)
	}
	for _, p := range []string{"/health", "/api/v1/cameras", "/api/v1/cameras/a", "/api/v1/cameras/a/snapshot.jpg"} {
		rec := getAs(s, p, "")
		assert.Equal(t, 401, rec.Code, "%s without a token", p)
		assert.Equal(t, `Bearer realm="gstcapture"`, rec.Header().Get("WWW-Authenticate"), p)

		rec = getAs(s, p, "Bearer wrong-0123456789abcdef")
		assert.Equal(t, 401, rec.Code, "%s with a wrong token", p)
		assert.Equal(t, `Bearer realm="gstcapture", error="invalid_token"`, rec.Header().Get("WWW-Authenticate"), p)
		assert.NotContains(t, rec.Body.String(), "wrong-0123456789abcdef")

		rec = getAs(s, p, "Basic "+readTok)
		assert.Equal(t, 401, rec.Code, "%s: only Bearer", p)
		assert.Equal(t, `Bearer realm="gstcapture"`, rec.Header().Get("WWW-Authenticate"), "%s: another scheme gets a plain challenge", p)
		assert.Equal(t, 401, getAs(s, p, "Bearer "+readTok[:len(readTok)-1]).Code, "%s: a prefix of a token", p)
		assert.NotEqual(t, 401, getAs(s, p, "Bearer "+readTok).Code, "%s with the read token", p)
		assert.NotEqual(t, 401, getAs(s, p, "bearer "+adminTok).Code, "%s with the admin token (scheme case-insensitive)", p)
	}
	assert.Equal(t, 200, getAs(s, "/health", "Bearer "+readTok).Code)

	// http.auth.metrics: read closes /metrics too.
	s = authServer(NewAuth(map[string]string{readTok: "read"}, true))
	assert.Equal(t, 401, getAs(s, "/metrics", "").Code)
	assert.Equal(t, 200, getAs(s, "/metrics", "Bearer "+readTok).Code)
	assert.Equal(t, 200, getAs(s, "/healthz", "").Code)
}

// Mode token without tokens: the protected routes answer 401 and say how
// to configure them; mode none (nil Auth) lets everything in.
func TestAuthWithoutTokens(t *testing.T) {
	s := authServer(NewAuth(nil, false))
	rec := getAs(s, "/health", "Bearer anything-at-all-123")
	assert.Equal(t, 401, rec.Code)
	assert.Contains(t, rec.Body.String(), "http.auth.tokens_file")
	assert.Equal(t, 200, getAs(s, "/readyz", "").Code)

	s = authServer(nil)
	assert.Equal(t, 200, getAs(s, "/health", "").Code)
	assert.Equal(t, 200, getAs(s, "/api/v1/cameras", "").Code)
}

func TestAdminScope(t *testing.T) {
	a := NewAuth(map[string]string{readTok: "read", adminTok: "admin"}, false)
	h := a.wrap(Admin, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	rec := getAs(h, "/x", "Bearer "+readTok)
	assert.Equal(t, 403, rec.Code, "read is not admin")
	assert.Contains(t, rec.Header().Get("WWW-Authenticate"), `error="insufficient_scope"`)
	assert.Equal(t, 204, getAs(h, "/x", "Bearer "+adminTok).Code)
	assert.Equal(t, 401, getAs(h, "/x", "").Code)
}
