// Package testenv starts the real services that integration and e2e tests
// run against (redis-server on a free port) and stops them in t.Cleanup.
//
// It is imported only from _test.go files. It may import the standard
// library, testing and go-redis.
package testenv
