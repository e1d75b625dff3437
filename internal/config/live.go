package config

import (
	"reflect"
	"slices"
	"strings"
)

// liveKeys are the settings a reload applies to the running service (a key
// or a section); every other key keeps its running value until a restart
// (RestartNeeded). cameras is live too: the service diffs it per camera.
var liveKeys = []string{"defaults", "health", "log.level", "shutdown", "http.auth.tokens_file"}

// IsLive reports whether a reload applies the setting at path.
func IsLive(path string) bool {
	for _, k := range liveKeys {
		if path == k || strings.HasPrefix(path, k+".") {
			return true
		}
	}
	return false
}

// RestartNeeded returns the settings (sorted paths) whose value in loaded
// differs from running and that a reload cannot apply.
func RestartNeeded(running, loaded *Config) []string {
	a, b := leaves(running), leaves(loaded)
	var out []string
	for path, v := range a {
		if !IsLive(path) && !reflect.DeepEqual(v, b[path]) {
			out = append(out, path)
		}
	}
	slices.Sort(out)
	return out
}

// leaves maps every key of cfg that is not a section to its value.
func leaves(cfg *Config) map[string]any {
	out := map[string]any{}
	eachKey(reflect.ValueOf(*cfg), "", func(path string, f reflect.StructField, fv reflect.Value) bool {
		if !isSection(f.Type) {
			out[path] = fv.Interface()
		}
		return true
	})
	return out
}

// Reloaded returns the configuration to run after a reload of loaded: the
// running settings, with the live ones (liveKeys, the cameras, the API
// tokens and the environment ParseCamera reads) taken from loaded.
func (c *Config) Reloaded(loaded *Config) *Config {
	next := *c
	next.Defaults, next.Health, next.Shutdown = loaded.Defaults, loaded.Health, loaded.Shutdown
	next.Log.Level = loaded.Log.Level
	next.HTTP.Auth.TokensFile, next.HTTP.Auth.Tokens = loaded.HTTP.Auth.TokensFile, loaded.HTTP.Auth.Tokens
	next.Cameras = loaded.Cameras
	next.env = loaded.env
	return &next
}
