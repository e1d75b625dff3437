package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServerEnv overrides the redis-server binary (default: found in PATH).
const RedisServerEnv = "GSTCAPTURE_REDIS_SERVER"

// RedisCLIEnv overrides the redis-cli binary (default: next to
// redis-server, else found in PATH); StartRedisCluster needs it.
const RedisCLIEnv = "GSTCAPTURE_REDIS_CLI"

const (
	redisStartTimeout = 10 * time.Second
	startAttempts     = 5
)

// Redis is a redis-server child process owned by one test.
type Redis struct {
	Addr string // 127.0.0.1:<port>
	URL  string // redis://127.0.0.1:<port>/0
	Port int
	Dir  string // working directory (empty: persistence is off)
	// BusPort is the cluster bus port of a Redis Cluster node, 0 for a
	// standalone server.
	BusPort int

	bin         string
	nodeTimeout time.Duration // cluster-node-timeout; 0: standalone
	log         string        // server log file, quoted in failures

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
}

// StartRedis runs redis-server on 127.0.0.1 and a free port, with
// persistence off, waits until it answers PING, and stops it in t.Cleanup.
// A missing redis-server is a test failure, not a skip.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t, 0)
}

// startRedis is StartRedis, for a Redis Cluster node (not yet part of a
// cluster) when nodeTimeout is not 0.
func startRedis(t testing.TB, nodeTimeout time.Duration) *Redis {
	t.Helper()
	bin := redisTool(t, "redis-server", RedisServerEnv, "")
	dir := t.TempDir()
	r := &Redis{Dir: dir, bin: bin, nodeTimeout: nodeTimeout, log: filepath.Join(dir, "redis.log")}
	t.Cleanup(r.Stop)

	var lastErr error
	for range startAttempts {
		r.setPort(FreePort(t))
		if nodeTimeout > 0 {
			// Not port+10000, the default, which may be taken or past 65535.
			r.BusPort = FreePort(t)
			for r.BusPort == r.Port {
				r.BusPort = FreePort(t)
			}
		}
		if lastErr = r.start(); lastErr == nil {
			return r
		}
		// Most likely another process took the port between FreePort and bind.
	}
	t.Fatalf("testenv: start redis-server: %v", lastErr)
	return nil
}

// redisTool returns the path of a Redis binary: from the environment
// variable env, else the one next to sibling when given and present, else
// from PATH. A missing binary fails the test, never skips it.
func redisTool(t testing.TB, name, env, sibling string) string {
	t.Helper()
	p := os.Getenv(env)
	next := filepath.Join(filepath.Dir(sibling), name)
	var err error
	switch {
	case p != "":
		_, err = os.Stat(p)
	case sibling != "" && isFile(next):
		p = next
	default:
		p, err = exec.LookPath(name)
	}
	if err != nil {
		t.Fatalf("testenv: %s: %v; `make test` installs it (Debian: apt-get install redis-server), "+
			"or set %s to its path", name, err, env)
	}
	return p
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func (r *Redis) setPort(port int) {
	r.Port = port
	r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r.URL = "redis://" + r.Addr + "/0"
}

func (r *Redis) start() error {
	logf, err := os.OpenFile(r.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child keeps its own descriptor

	args := []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(r.Port),
		"--save", "",
		"--appendonly", "no",
		"--dir", r.Dir,
		"--daemonize", "no",
		"--protected-mode", "no",
	}
	if r.nodeTimeout > 0 {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(r.Dir, "nodes.conf"),
			"--cluster-port", strconv.Itoa(r.BusPort),
			"--cluster-node-timeout", strconv.FormatInt(r.nodeTimeout.Milliseconds(), 10),
			// A replica's first sync starts at once, not 5 s later.
			"--repl-diskless-sync-delay", "0",
		)
	}
	cmd := exec.Command(r.bin, args...)
	cmd.Dir = r.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", r.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()

	deadline := time.Now().Add(redisStartTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server on %s exited during startup: %s", r.Addr, r.logTail())
		default:
		}
		if ping(r.Addr) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			r.Stop()
			return fmt.Errorf("redis-server on %s did not answer PING within %s: %s",
				r.Addr, redisStartTimeout, r.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping speaks just enough RESP to see a PONG, so a failure here says
// "server not up", never "client misconfigured".
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func (r *Redis) logTail() string {
	b, err := os.ReadFile(r.log)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "log tail:\n" + string(b)
}

// Stop kills the server with SIGKILL, as a crash or OOM kill would, and
// waits until it has exited. It is a no-op when the server is not running.
func (r *Redis) Stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same port and directory (after
// Stop, or as a crash-and-restart when still running).
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	var err error
	// The port is ours, but allow a few tries in case the kernel has not yet
	// let go of the old listener.
	for range startAttempts {
		if err = r.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("testenv: restart redis-server: %v", err)
}

// Running reports whether the server process is alive.
func (r *Redis) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Client returns a go-redis client for this server, closed in t.Cleanup.
// It enables context deadlines and disables command and dial retries, as
// internal/publish expects of its client.
func (r *Redis) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  r.Addr,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// UsedMemory returns the server's used_memory (INFO memory), the figure
// Redis compares with maxmemory.
func UsedMemory(t testing.TB, c redis.Cmdable) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		t.Fatalf("testenv: INFO memory: %v", err)
	}
	v, ok := infoFields(info)["used_memory"]
	if !ok {
		t.Fatalf("testenv: no used_memory in INFO memory: %q", info)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("testenv: used_memory %q: %v", v, err)
	}
	return n
}
