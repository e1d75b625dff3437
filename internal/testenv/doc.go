// Package testenv holds what integration, e2e and camsim tests share: the
// real services they run against (redis-server on a free port, stopped in
// t.Cleanup; a Redis Cluster of 3 masters with a replica each, made with
// redis-cli --cluster create; a private CA), a reader of /proc/<pid> (RSS, threads, open
// files, CPU), the camera simulator's /status as a client reads it, and a
// buffer for a child process's output.
//
// It is imported only from _test.go files. It may import the standard
// library, testing and go-redis.
package testenv
