package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/go-viper/mapstructure/v2"

	"gstcapture/internal/frame"
)

// cameras decodes each entry of the file's cameras list over a copy of the
// validated defaults, validates the keys that entry sets, and resolves its
// location and credentials. An explicit empty list is valid: every camera
// may come from the camera API.
func (r *reader) cameras(v any, defaults Settings) []Camera {
	list, ok := v.([]any)
	switch {
	case v == nil:
		r.add("cameras", "no cameras configured; add at least one, or write cameras: [] to start without any and add them through the camera API")
		return nil
	case !ok:
		r.add("cameras", "must be a list of cameras, got %s", describe(v))
		return nil
	}
	firstByID := map[string]int{}
	out := make([]Camera, 0, len(list))
	for i, item := range list {
		base := fmt.Sprintf("cameras[%d]", i)
		entry, ok := item.(map[string]any)
		if !ok {
			r.add(base, "must be a mapping with id, url and codec, got %s", describe(item))
			continue
		}
		cam := r.camera(base, entry, defaults)
		if prev, dup := firstByID[cam.ID]; dup {
			r.add(join(base, "id"), "duplicate id %q (also cameras[%d])", cam.ID, prev)
		} else if cameraIDRe.MatchString(cam.ID) {
			firstByID[cam.ID] = i
		}
		cam.Source = SourceFile
		out = append(out, cam)
	}
	return out
}

// camera decodes one camera entry at base over defaults: the keys it sets
// are checked (what it inherits was checked at defaults), and its location
// and credentials resolved.
func (r *reader) camera(base string, item map[string]any, defaults Settings) Camera {
	before := len(r.probs)
	e := cameraEntry{Camera: Camera{Settings: defaults, Enabled: true}}
	var md mapstructure.Metadata
	dc := decoderConfig(&md)
	dc.Result = &e
	dec, err := mapstructure.NewDecoder(dc)
	if err != nil {
		panic(err) // only a Result of the wrong kind fails here
	}
	r.decodeProblems(dec.Decode(item), base, reflect.TypeFor[cameraEntry]())

	set := map[string]bool{}
	for _, k := range md.Keys {
		set[join(base, k)] = true
	}
	for p := range r.failed {
		set[p] = true
	}
	r.checkKeys(reflect.ValueOf(&e).Elem(), base, set)
	s := e.Settings
	if len(r.probs) == before && (s.Width != defaults.Width || s.Height != defaults.Height || s.Reconnect != defaults.Reconnect) {
		r.crossCheck(base, s)
	}
	if q := join(base, "jpeg_quality"); set[q] && !r.failed[q] && s.Format != frame.JPEG {
		// In defaults it may serve the cameras that set format JPEG; a
		// camera's own jpeg_quality with another format is a mistake.
		r.add(q, "applies only with format JPEG; this camera's format is %s (set format: JPEG, or remove jpeg_quality)", s.Format)
	}
	r.credentials(base, &e, set)
	return e.Camera
}

// ParseCamera decodes a camera entry sent to the camera API (the keys of a
// cameras[] entry, as JSON) over c's defaults, with the file's rules, and
// resolves ${VAR}, password_env and password_file as the file's cameras
// are. The API stores the entry as written, so it refuses a password
// written into the URL: only a reference to one is stored. Problem paths
// are the entry's own keys ("fps", "validation.black.max_luma").
func (c *Config) ParseCamera(id string, entry map[string]any) (Camera, Problems) {
	r := &reader{fromEnv: map[string]string{}, failed: map[string]bool{}, baseDir: c.baseDir, lookup: c.lookupEnv}
	item := make(map[string]any, len(entry)+1)
	for k, v := range entry {
		item[k] = v
	}
	if v, ok := entry["id"]; ok && v != id {
		r.add("id", "is %s, but the request is for camera %q: leave id out or make them agree", describe(v), id)
	}
	item["id"] = id
	if raw, ok := entry["url"].(string); ok && inlinePassword(raw) {
		r.add("url", "holds a password: the camera API never stores credentials in clear; write it as ${VAR} (rtsp://user:${CAM_PASSWORD}@host/...), or set password_env or password_file")
	}
	cam := r.camera("", item, c.Defaults)
	cam.Source = SourceAPI
	if len(r.probs) > 0 {
		r.probs.sort()
		return Camera{}, r.probs
	}
	return cam, nil
}

// lookupEnv reads the environment Load was given.
func (c *Config) lookupEnv(name string) (string, bool) {
	v, ok := c.env[name]
	return v, ok
}

// inlinePassword reports whether a camera URL's user-info holds a password
// written out, rather than only ${VAR} references.
func inlinePassword(raw string) bool {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return false
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return false
	}
	_, pass, hasPass := strings.Cut(rest[:at], ":")
	return hasPass && varRefRe.ReplaceAllString(pass, "") != ""
}

// varRefRe matches one ${NAME}.
var varRefRe = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

// credentials resolves the camera URL and password sources into Location,
// User and Password. No message here may quote the URL or a password.
func (r *reader) credentials(base string, e *cameraEntry, set map[string]bool) {
	pw, pwConfigured := r.passwordSource(base, e, set)
	if strings.TrimSpace(e.URL) == "" {
		return // reported as required
	}
	urlPath := join(base, "url")
	cu, missing, err := parseCameraURL(e.URL, r.lookup)
	for _, name := range missing {
		r.add(urlPath, "environment variable %s is not set (used as ${%s})", name, name)
	}
	if err != nil {
		r.add(urlPath, "%s", err)
	}
	if err != nil || len(missing) > 0 {
		return
	}
	cam := &e.Camera
	cam.Location = cu.loc.String()
	cam.User, cam.Password, cam.urlVars = cu.user, cu.password, cu.vars
	switch {
	case !pwConfigured:
	case cu.hasPassword:
		r.add(urlPath, "has a password and password_env/password_file is also set; keep one")
	case cu.user == "":
		r.add(urlPath, "needs a user name to go with password_env/password_file (rtsp://USER@host/...)")
	default:
		cam.Password = pw
	}
}

// passwordSource reads password_env or password_file. configured reports
// whether the entry has either key, even when reading it failed.
func (r *reader) passwordSource(base string, e *cameraEntry, set map[string]bool) (pw string, configured bool) {
	envPath, filePath := join(base, "password_env"), join(base, "password_file")
	hasEnv, hasFile := set[envPath], set[filePath]
	switch {
	case hasEnv && hasFile:
		r.add(envPath, "set password_env or password_file, not both")
	case r.failed[envPath] || r.failed[filePath]:
	case hasEnv:
		name := e.PasswordEnv
		switch v, ok := r.lookup(name); {
		case !envNameRe.MatchString(name):
			r.add(envPath, "%q is not an environment variable name", name)
		case !ok:
			r.add(envPath, "environment variable %s is not set", name)
		case v == "":
			r.add(envPath, "environment variable %s is empty", name)
		default:
			return v, true
		}
	case hasFile:
		v, err := readPasswordFile(r.baseDir, e.PasswordFile)
		switch {
		case err != nil:
			r.add(filePath, "cannot read: %v", err)
		case v == "":
			r.add(filePath, "%s is empty", e.PasswordFile)
		default:
			return v, true
		}
	default:
		return "", false
	}
	return "", true
}

// DecodeEntry decodes a camera entry written as JSON (the camera API's
// body, and what Redis keeps of it): one object. Its whole numbers arrive
// as float64 and decode into integer settings as YAML's do (decodeHook).
func DecodeEntry(data []byte) (map[string]any, error) {
	var entry map[string]any
	if err := json.Unmarshal(data, &entry); err != nil {
		return nil, err
	}
	if entry == nil {
		return nil, errors.New("got null")
	}
	return entry, nil
}
