package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// Files are the console's assets, by name under /console/ (index.html
// is the page at /).
func Files() fs.FS {
	sub, _ := fs.Sub(assets, "assets")
	return sub
}

// contentTypes are the types of the files the console ships.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// csp lets the page load only its own script and style, and pictures from
// the API as blobs: no inline script, so an error text or camera id that
// reached the page as HTML would still not run.
const csp = "default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Handler serves the page at / and its assets at /console/{file}; any
// other name is a 404. It needs no token: the page holds no data, and
// every call it makes asks for one.
func Handler() http.Handler {
	files := Files()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "index.html"
		if r.URL.Path != "/" {
			name = strings.TrimPrefix(r.URL.Path, "/console/")
		}
		typ, ok := contentTypes[path.Ext(name)]
		body, err := fs.ReadFile(files, name)
		if !ok || err != nil || strings.Contains(name, "/") {
			http.Error(w, "no such console file", http.StatusNotFound)
			return
		}
		h := w.Header()
		h.Set("Content-Type", typ)
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// A new binary may ship a new page: the browser asks each time.
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(body)
	})
}
