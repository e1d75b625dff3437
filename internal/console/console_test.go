package console

import (
	"image/png"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func serve(path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

// The page is served with its policy, and every file it names is served.
func TestPageAndItsFiles(t *testing.T) {
	rec := serve("/")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	assert.Contains(t, rec.Header().Get("Content-Security-Policy"), "script-src 'self'")
	assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))

	refs := regexp.MustCompile(`(?:src|href)="(/console/[^"]+)"`).FindAllStringSubmatch(rec.Body.String(), -1)
	require.GreaterOrEqual(t, len(refs), 2, "the page loads its script and style")
	for _, m := range refs {
		r := serve(m[1])
		assert.Equal(t, http.StatusOK, r.Code, m[1])
	}
	assert.Contains(t, serve("/console/app.js").Header().Get("Content-Type"), "text/javascript")
	assert.Contains(t, serve("/console/app.css").Header().Get("Content-Type"), "text/css")
}

// Nothing but the shipped files: no listing, no other path, no file of
// another type.
func TestOnlyTheFiles(t *testing.T) {
	for _, p := range []string{"/console/", "/console/nope.js", "/console/../console.go", "/console/assets", "/console/%2e%2e/doc.go"} {
		assert.Equal(t, http.StatusNotFound, serve(p).Code, p)
	}
	names, err := fs.Glob(Files(), "*")
	require.NoError(t, err)
	for _, n := range names {
		_, typed := contentTypes[n[len(n)-len(".js"):]]
		if !typed {
			_, typed = contentTypes[n[len(n)-len(".css"):]]
		}
		if !typed {
			_, typed = contentTypes[n[len(n)-len(".html"):]]
		}
		assert.True(t, typed, "%s has a content type", n)
	}
}

// The script never writes the token anywhere but sessionStorage and the
// Authorization header: not into a URL, not into localStorage.
func TestTokenStaysOutOfURLs(t *testing.T) {
	js, err := fs.ReadFile(Files(), "app.js")
	require.NoError(t, err)
	assert.NotContains(t, string(js), "localStorage")
	assert.NotRegexp(t, `[?&](token|access_token)=`, string(js))
	assert.Contains(t, string(js), "sessionStorage")
	assert.Contains(t, string(js), "Authorization")
}

// docs/console.md shows screenshots the browser test wrote (bin/console-*.png,
// copied there): each one it names is a PNG in docs/.
func TestDocsShowScreenshots(t *testing.T) {
	doc, err := os.ReadFile("../../docs/console.md")
	require.NoError(t, err)
	shots := regexp.MustCompile(`!\[[^\]]*\]\(([^)]+\.png)\)`).FindAllStringSubmatch(string(doc), -1)
	require.NotEmpty(t, shots, "docs/console.md shows a screenshot")
	for _, m := range shots {
		f, err := os.Open(filepath.Join("../../docs", m[1]))
		require.NoError(t, err, "docs/console.md shows %s", m[1])
		_, err = png.DecodeConfig(f)
		f.Close()
		assert.NoError(t, err, "%s is a PNG", m[1])
	}
}
