// Package jaeger pins the Jaeger v2 all-in-one binary the end-to-end tests
// use as a real trace backend. It is a module of its own so Jaeger's
// dependencies stay out of the service's go.mod; scripts/jaeger.sh builds it
// once and caches the binary by the hash of this module's go.sum.
package jaeger
