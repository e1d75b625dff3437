package health

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gstcapture/internal/frame"
	"gstcapture/internal/stats"
)

// Route is one HTTP route the server registers ("GET", "/api/v1/cameras/{id}");
// docs/openapi.yaml must describe exactly these (a test checks both ways).
type Route struct{ Method, Path string }

// Server is the HTTP handler; it remembers the routes it registered.
type Server struct {
	mux    *http.ServeMux
	routes []Route
	auth   *Auth
	snaps  *snapCache
}

// ForgetCamera drops what the server keeps of a removed camera (its cached
// snapshot); stats.Registry.OnRemove calls it.
func (s *Server) ForgetCamera(id string) { s.snaps.forget(id) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Routes returns every registered route.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// handle registers a route behind the access its path asks for.
func (s *Server) handle(pattern string, h func(http.ResponseWriter, *http.Request)) {
	method, path, _ := strings.Cut(pattern, " ")
	// "/{$}" is the mux's way to say "/ and nothing under it".
	s.routes = append(s.routes, Route{method, strings.TrimSuffix(path, "{$}")})
	s.mux.HandleFunc(pattern, s.auth.wrap(s.auth.access(method, path), h))
}

// API is what the camera endpoints need beyond Source.
type API interface {
	Source
	// Snapshot returns a copy of the newest valid frame (waiting up to wait
	// for a fresh one), nil before the first; an error for an unknown id.
	Snapshot(ctx context.Context, id string, wait time.Duration) (*frame.Picture, error)
}

// CameraAdmin changes the camera set (PUT, DELETE and the restart of
// /api/v1/cameras/{id}). A refusal is a *CameraError, which says the
// status to answer with; any other error is a 500.
type CameraAdmin interface {
	// PutCamera creates or replaces camera id from body (a JSON object
	// with the keys of a cameras[] entry) and reports whether it created
	// it; with dryRun it only checks the entry and reports whether it would.
	PutCamera(ctx context.Context, id string, body []byte, dryRun bool) (created bool, err error)
	DeleteCamera(ctx context.Context, id string) error
	RestartCamera(id string) error
	// CameraEntry returns the camera API's stored entry of camera id (the
	// console's edit form); a camera of the file is refused (409).
	CameraEntry(ctx context.Context, id string) (map[string]any, error)
}

// CameraPages answers the console's camera page (*capture.Service); an
// unknown id is an error.
type CameraPages interface {
	// Pipelines returns the camera's rendered launch strings, redacted.
	Pipelines(id string) ([]stats.Pipeline, error)
	// History returns the last minutes of fps, latency p99 and drops, and
	// the newest state changes.
	History(id string) (stats.CameraHistory, error)
}

// CameraError is a CameraAdmin's refusal: the HTTP status, the message and,
// for an invalid entry (422), every problem with its path.
type CameraError struct {
	Status   int
	Message  string
	Problems []Problem
}

func (e *CameraError) Error() string { return e.Message }

// maxCameraBody bounds a camera entry: a real one is well under 4 KiB.
const maxCameraBody = 64 << 10

// ServerOptions are the handlers health does not own.
type ServerOptions struct {
	// Cameras changes cameras through the API; nil answers 503 there.
	Cameras CameraAdmin
	Metrics http.Handler
	OpenAPI []byte
	// Auth guards every route but the probes, the API description and
	// (unless it says otherwise) /metrics; nil lets everything in.
	Auth *Auth
	// SnapshotEncoders bounds the JPEG encodes at a time (default 2); a
	// snapshot that needs another one answers 429.
	SnapshotEncoders int
	// Fleet answers GET /api/v1/fleet; nil: this process is no replica of
	// a fleet (fleet.enabled false).
	Fleet FleetView
	// Pages answers a camera's pipeline and history; nil: 404 there.
	Pages CameraPages
	// Console serves the operator console at / and /console/{file}
	// (console.Handler); nil: 404 there.
	Console http.Handler
}

// FleetView is the fleet this replica belongs to (*fleet.Fleet).
type FleetView interface {
	Status(ctx context.Context) (FleetStatus, error)
}

// FleetStatus is GET /api/v1/fleet.
type FleetStatus struct {
	Enabled      bool           `json:"enabled"`
	ReplicaID    string         `json:"replica_id"`
	LeaseSeconds float64        `json:"lease_seconds"`
	Replicas     []FleetReplica `json:"replicas"`
	Cameras      []FleetCamera  `json:"cameras"`
}

// FleetReplica is a live replica, as of this replica's newest heartbeat.
type FleetReplica struct {
	ID            string    `json:"id"`
	Cameras       []string  `json:"cameras"`
	MaxCameras    int       `json:"max_cameras"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	Self          bool      `json:"self"`
}

// FleetCamera is a camera's lease, read from Redis for the answer.
type FleetCamera struct {
	ID              string  `json:"id"`
	Owner           string  `json:"owner"` // "" = no replica holds it
	Epoch           uint64  `json:"epoch"`
	LeaseTTLSeconds float64 `json:"lease_ttl_seconds"`
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
	s.snaps = snaps
	mux := s
	c.Register(s.handle)
	mux.handle("GET /metrics", o.Metrics.ServeHTTP)
	mux.handle("GET /openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(o.OpenAPI)
	})
	console := o.Console
	if console == nil {
		console = http.NotFoundHandler()
	}
	mux.handle("GET /{$}", console.ServeHTTP)
	mux.handle("GET /console/{file}", console.ServeHTTP)
	mux.handle("GET /api/v1/session", func(w http.ResponseWriter, r *http.Request) {
		scope := "admin"
		if s.auth.Enabled() {
			if got, _, _ := s.auth.scopeOf(r); got < Admin {
				scope = "read"
			}
		}
		WriteJSON(w, http.StatusOK, map[string]any{"scope": scope, "auth": s.auth.Enabled()})
	})
	mux.handle("GET /api/v1/cameras/{id}/pipeline", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		var p []stats.Pipeline
		err := errors.New("no pipelines here")
		if o.Pages != nil {
			p, err = o.Pages.Pipelines(id)
		}
		if err != nil {
			notFound(w, "unknown camera "+strconv.Quote(id))
			return
		}
		WriteJSON(w, http.StatusOK, map[string]any{"id": id, "pipelines": p})
	})
	mux.handle("GET /api/v1/cameras/{id}/history", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		var h stats.CameraHistory
		err := errors.New("no history here")
		if o.Pages != nil {
			h, err = o.Pages.History(id)
		}
		if err != nil {
			notFound(w, "unknown camera "+strconv.Quote(id))
			return
		}
		WriteJSON(w, http.StatusOK, h)
	})
	mux.handle("GET /api/v1/cameras/{id}/entry", func(w http.ResponseWriter, r *http.Request) {
		if o.Cameras == nil {
			writeCameraError(w, nil)
			return
		}
		id := r.PathValue("id")
		entry, err := o.Cameras.CameraEntry(r.Context(), id)
		if err != nil {
			writeCameraError(w, err)
			return
		}
		WriteJSON(w, http.StatusOK, map[string]any{"id": id, "source": "api", "entry": entry})
	})
	mux.handle("GET /api/v1/fleet", func(w http.ResponseWriter, r *http.Request) {
		if o.Fleet == nil {
			WriteJSON(w, http.StatusOK, FleetStatus{Replicas: []FleetReplica{}, Cameras: []FleetCamera{}})
			return
		}
		st, err := o.Fleet.Status(r.Context())
		if err != nil {
			WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		WriteJSON(w, http.StatusOK, st)
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
	mux.handle("PUT /api/v1/cameras/{id}", func(w http.ResponseWriter, r *http.Request) {
		if o.Cameras == nil {
			writeCameraError(w, nil)
			return
		}
		entry, cerr := readEntry(w, r)
		if cerr != nil {
			writeCameraError(w, cerr)
			return
		}
		id := r.PathValue("id")
		dryRun, err := strconv.ParseBool(cmp.Or(r.URL.Query().Get("dry_run"), "false"))
		if err != nil {
			writeCameraError(w, &CameraError{Status: http.StatusBadRequest, Message: "dry_run must be true or false"})
			return
		}
		created, err := o.Cameras.PutCamera(r.Context(), id, entry, dryRun)
		if err != nil {
			writeCameraError(w, err)
			return
		}
		if dryRun {
			// Checked only: nothing was stored or started.
			WriteJSON(w, http.StatusOK, map[string]any{"id": id, "source": "api", "created": created, "dry_run": true})
			return
		}
		code := http.StatusOK
		if created {
			code = http.StatusCreated
		}
		WriteJSON(w, code, map[string]any{"id": id, "source": "api", "created": created})
	})
	mux.handle("DELETE /api/v1/cameras/{id}", func(w http.ResponseWriter, r *http.Request) {
		if o.Cameras == nil {
			writeCameraError(w, nil)
			return
		}
		if err := o.Cameras.DeleteCamera(r.Context(), r.PathValue("id")); err != nil {
			writeCameraError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.handle("POST /api/v1/cameras/{id}/restart", func(w http.ResponseWriter, r *http.Request) {
		if o.Cameras == nil {
			writeCameraError(w, nil)
			return
		}
		if err := o.Cameras.RestartCamera(r.PathValue("id")); err != nil {
			writeCameraError(w, err)
			return
		}
		WriteJSON(w, http.StatusAccepted, map[string]string{"status": "restarting"})
	})
	return s
}

// readEntry reads a request body of at most maxCameraBody.
func readEntry(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCameraBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &CameraError{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("the camera entry is over %d bytes", maxCameraBody)}
	case err != nil:
		return nil, &CameraError{Status: http.StatusBadRequest, Message: "cannot read the body: " + err.Error()}
	}
	return body, nil
}

// writeCameraError answers a CameraAdmin's error; nil means there is no
// CameraAdmin.
func writeCameraError(w http.ResponseWriter, err error) {
	var ce *CameraError
	switch {
	case err == nil:
		WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "this server does not change cameras"})
	case errors.As(err, &ce):
		body := map[string]any{"error": ce.Message}
		if len(ce.Problems) > 0 {
			body["problems"] = ce.Problems
		}
		WriteJSON(w, ce.Status, body)
	default:
		WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
}

func notFound(w http.ResponseWriter, msg string) {
	WriteJSON(w, http.StatusNotFound, map[string]string{"error": msg})
}
