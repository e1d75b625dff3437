package health

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gstcapture/internal/frame"
)

// Route is one HTTP route the server registers ("GET", "/api/v1/cameras/{id}");
// docs/openapi.yaml must describe exactly these (a test checks both ways).
type Route struct{ Method, Path string }

// Server is the HTTP handler; it remembers the routes it registered.
type Server struct {
	mux    *http.ServeMux
	routes []Route
	auth   *Auth
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Routes returns every registered route.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// handle registers a route behind the access its path asks for.
func (s *Server) handle(pattern string, h func(http.ResponseWriter, *http.Request)) {
	method, path, _ := strings.Cut(pattern, " ")
	s.routes = append(s.routes, Route{method, path})
	s.mux.HandleFunc(pattern, s.auth.wrap(s.auth.access(path), h))
}

// API is what the camera endpoints need beyond Source.
type API interface {
	Source
	// Snapshot returns a copy of the newest valid frame (waiting up to wait
	// for a fresh one), nil before the first; an error for an unknown id.
	Snapshot(ctx context.Context, id string, wait time.Duration) (*frame.Picture, error)
}

// ServerOptions are the handlers health does not own.
type ServerOptions struct {
	Metrics http.Handler
	OpenAPI []byte
	// Auth guards every route but the probes, the API description and
	// (unless it says otherwise) /metrics; nil lets everything in.
	Auth *Auth
	// SnapshotEncoders bounds the JPEG encodes at a time (default 2); a
	// snapshot that needs another one answers 429.
	SnapshotEncoders int
}

// snapshotWait bounds how long a snapshot request waits for a fresh frame.
const snapshotWait = 2 * time.Second

// NewServer returns the service's HTTP handler.
func NewServer(api API, c *Checker, o ServerOptions) *Server {
	s := &Server{mux: http.NewServeMux(), auth: o.Auth}
	if o.SnapshotEncoders <= 0 {
		o.SnapshotEncoders = 2
	}
	snaps := newSnapCache(o.SnapshotEncoders)
	mux := s
	c.Register(s.handle)
	mux.handle("GET /metrics", o.Metrics.ServeHTTP)
	mux.handle("GET /openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(o.OpenAPI)
	})
	mux.handle("GET /api/v1/cameras", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]any{"cameras": api.Snapshots(time.Now())})
	})
	mux.handle("GET /api/v1/cameras/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		for _, s := range api.Snapshots(time.Now()) {
			if s.ID == id {
				WriteJSON(w, http.StatusOK, s)
				return
			}
		}
		notFound(w, "unknown camera "+strconv.Quote(id))
	})
	mux.handle("GET /api/v1/cameras/{id}/snapshot.jpg", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		pic, err := api.Snapshot(r.Context(), id, snapshotWait)
		if err != nil {
			notFound(w, "unknown camera "+strconv.Quote(id))
			return
		}
		if pic == nil {
			notFound(w, "camera "+strconv.Quote(id)+" has not delivered a valid frame yet")
			return
		}
		img, busy, err := snaps.get(pic, 85)
		switch {
		case busy:
			w.Header().Set("Retry-After", "1")
			WriteJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many snapshots being encoded; retry in a second"})
			return
		case err != nil:
			WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		// A snapshot is of now: no cache keeps a camera's picture.
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Last-Modified", pic.At.UTC().Format(http.TimeFormat))
		w.Header().Set("X-Frame-Seq", strconv.FormatUint(pic.Seq, 10))
		_, _ = w.Write(img)
	})
	return s
}

func notFound(w http.ResponseWriter, msg string) {
	WriteJSON(w, http.StatusNotFound, map[string]string{"error": msg})
}
