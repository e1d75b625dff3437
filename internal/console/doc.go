// Package console holds the operator console: one HTML page, its script
// and its style, embedded in the binary and served at / by internal/health
// (no CDN, no network, no build step: the files under assets/ are the
// source and what is served). The page reads the same /api/v1 as any
// client, with the bearer token the operator signs in with, kept in the
// tab's sessionStorage.
//
// It may import the standard library only.
package console
