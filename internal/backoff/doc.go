// Package backoff owns the delay between reconnect attempts of a camera
// supervisor: exponential growth capped at a maximum, with "equal jitter" so
// cameras that fail together do not retry in lockstep.
//
// It may import only the standard library.
package backoff
