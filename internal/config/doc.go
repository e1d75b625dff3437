// Package config loads and validates gstcapture's configuration: built-in
// defaults (a Go value), then the YAML file, then GSTCAPTURE_* environment
// overrides (koanf merges the file and the environment, mapstructure
// decodes them over the defaults into the typed structs), then one
// validation pass driven by the structs' tags. Every problem is reported
// at once, each with its path; an unknown key gets a spelling suggestion
// from the keys the structs declare. Each camera entry is decoded over a
// copy of the validated defaults.
//
// It owns the secrets rules: camera passwords come from the URL user-info,
// ${VAR} expansion, password_env or password_file, are kept out of
// Camera.Location and of every Problem, and Redact scrubs them from text.
// The value of a ${VAR} outside the URL's host (a token in the path or
// query) is in Location, so it is a secret too (Config.Secrets), and
// Camera.LocationWithVars writes it back as ${VAR} for printing.
//
// It may import only the standard library, internal/frame,
// internal/validate (whose Action a rule holds), koanf and mapstructure.
package config
