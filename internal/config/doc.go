// Package config loads and validates gstcapture's configuration: built-in
// defaults, then the YAML file, then GSTCAPTURE_* environment overrides
// (koanf does the layering), then one validation pass that reports every
// problem at once, each with its path.
//
// It owns the secrets rules: camera passwords come from the URL user-info,
// ${VAR} expansion, password_env or password_file, are kept out of
// Camera.Location and of every Problem, and Redact scrubs them from text.
// The value of a ${VAR} outside the URL's host (a token in the path or
// query) is in Location, so it is a secret too (Config.Secrets), and
// Camera.LocationWithVars writes it back as ${VAR} for printing.
//
// It may import only the standard library, internal/frame and koanf.
package config
