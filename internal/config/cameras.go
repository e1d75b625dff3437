package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
)

// cameras decodes each entry of the file's cameras list over a copy of the
// validated defaults, validates the keys that entry sets, and resolves its
// location and credentials.
func (r *reader) cameras(v any, defaults Settings) []Camera {
	list, ok := v.([]any)
	switch {
	case v == nil || ok && len(list) == 0:
		r.add("cameras", "no cameras configured; add at least one")
		return nil
	case !ok:
		r.add("cameras", "must be a list of cameras, got %s", describe(v))
		return nil
	}
	firstByID := map[string]int{}
	out := make([]Camera, 0, len(list))
	for i, item := range list {
		base := fmt.Sprintf("cameras[%d]", i)
		if _, ok := item.(map[string]any); !ok {
			r.add(base, "must be a mapping with id, url and codec, got %s", describe(item))
			continue
		}
		before := len(r.probs)
		e := cameraEntry{Camera: Camera{Settings: defaults}}
		var md mapstructure.Metadata
		dc := decoderConfig(&md)
		dc.Result = &e
		dec, err := mapstructure.NewDecoder(dc)
		if err != nil {
			panic(err) // only a Result of the wrong kind fails here
		}
		r.decodeProblems(dec.Decode(item), base, reflect.TypeFor[cameraEntry]())

		// Only what this entry sets is checked here: what it inherits was
		// checked, and reported, at defaults.
		set := map[string]bool{}
		for _, k := range md.Keys {
			set[join(base, k)] = true
		}
		for p := range r.failed {
			set[p] = true
		}
		r.checkKeys(reflect.ValueOf(&e).Elem(), base, set)
		if prev, dup := firstByID[e.ID]; dup {
			r.add(join(base, "id"), "duplicate id %q (also cameras[%d])", e.ID, prev)
		} else if cameraIDRe.MatchString(e.ID) {
			firstByID[e.ID] = i
		}
		s := e.Settings
		if len(r.probs) == before && (s.Width != defaults.Width || s.Height != defaults.Height || s.Reconnect != defaults.Reconnect) {
			r.crossCheck(base, s)
		}
		r.credentials(base, &e, set)
		out = append(out, e.Camera)
	}
	return out
}

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
