// Package docs embeds the documents the service serves itself.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml, served at /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
