package testenv

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisClusterNodeTimeout is cluster-node-timeout of StartRedisCluster's
// nodes: a master silent for this long is failed over to its replica
// within about a second more. Redis's default, 15 s, would make every
// failover test wait half a minute.
const RedisClusterNodeTimeout = 1500 * time.Millisecond

const (
	clusterMasters      = 3
	clusterSlots        = 16384
	clusterReadyTimeout = 30 * time.Second
)

// RedisCluster is a Redis Cluster of three masters with one replica each,
// every node a redis-server child process of one test on free ports, with
// persistence off.
type RedisCluster struct {
	// Nodes are every node, masters and replicas, in the order redis-cli
	// was given them; roles change with failovers (MasterOf).
	Nodes []*Redis
	// URL names every node in go-redis's ParseClusterURL form,
	// redis://host:port?addr=host2:port2&addr=...: gstcapture's redis.url
	// in redis.mode cluster.
	URL string

	clients []*redis.Client // one per node, as Nodes
}

// StartRedisCluster runs six cluster-enabled redis-servers, joins them with
// `redis-cli --cluster create --cluster-replicas 1`, and waits until the
// cluster is ready (WaitReady). The nodes stop in t.Cleanup.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	c := &RedisCluster{}
	for range 2 * clusterMasters {
		n := startRedis(t, RedisClusterNodeTimeout)
		c.Nodes = append(c.Nodes, n)
		c.clients = append(c.clients, n.Client(t))
	}
	addrs := c.Addrs()
	c.URL = "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")

	cli := redisTool(t, "redis-cli", RedisCLIEnv, c.Nodes[0].bin)
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: %s %s: %v\n%s", cli, strings.Join(args, " "), err, out)
	}
	c.WaitReady(t, clusterReadyTimeout)
	return c
}

// Addrs returns every node's host:port.
func (c *RedisCluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// Client returns a go-redis cluster client of every node, closed in
// t.Cleanup: the tests' reader, which follows redirects and retries as
// go-redis does by default. Its slot map is reloaded in the background
// once it is older than 200 ms (go-redis's default is a minute), yet the
// commands right after a failover may still go to the dead master and
// fail: poll.
func (c *RedisCluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: c.Addrs(), ContextTimeoutEnabled: true, ClusterStateReloadInterval: 200 * time.Millisecond,
	})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// WaitReady waits until every running node says cluster_state:ok with all
// 16384 slots assigned to three masters and none of them failing
// (cluster_slots_ok), and every running replica's link to its master is
// up: then a master that dies has a replica to take over from it.
func (c *RedisCluster) WaitReady(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		why := c.notReady()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: Redis Cluster %s not ready within %s: %s", c.URL, within, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// notReady is one poll of WaitReady: what is not ready yet, or "".
func (c *RedisCluster) notReady() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	running := 0
	for i, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		running++
		info, err := c.clients[i].ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Sprintf("%s: CLUSTER INFO: %v", n.Addr, err)
		}
		f := infoFields(info)
		if f["cluster_state"] != "ok" || f["cluster_size"] != strconv.Itoa(clusterMasters) ||
			f["cluster_slots_assigned"] != strconv.Itoa(clusterSlots) || f["cluster_slots_ok"] != strconv.Itoa(clusterSlots) {
			return fmt.Sprintf("%s: cluster_state %s, cluster_size %s, slots assigned %s, slots ok %s", n.Addr,
				f["cluster_state"], f["cluster_size"], f["cluster_slots_assigned"], f["cluster_slots_ok"])
		}
		repl, err := c.clients[i].Info(ctx, "replication").Result()
		if err != nil {
			return fmt.Sprintf("%s: INFO replication: %v", n.Addr, err)
		}
		if f := infoFields(repl); f["role"] == "slave" && f["master_link_status"] != "up" {
			return fmt.Sprintf("%s: replica of %s:%s with its link %s", n.Addr, f["master_host"], f["master_port"], f["master_link_status"])
		}
	}
	if running == 0 {
		return "no node is running"
	}
	return ""
}

// MasterOf returns the node that serves key's hash slot now, as CLUSTER
// SLOTS of a running node says, and the running nodes that replicate it.
// (CLUSTER SLOTS itself leaves out a replica until the others have heard
// of its replication offset.)
func (c *RedisCluster) MasterOf(t testing.TB, key string) (master *Redis, replicas []*Redis) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl := c.anyClient(t)
	slot, err := cl.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatalf("testenv: CLUSTER KEYSLOT %s: %v", key, err)
	}
	ranges, err := cl.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatalf("testenv: CLUSTER SLOTS: %v", err)
	}
	for _, r := range ranges {
		if int64(r.Start) > slot || slot > int64(r.End) || len(r.Nodes) == 0 {
			continue
		}
		master = c.node(t, r.Nodes[0].Addr)
		return master, c.replicasOf(master)
	}
	t.Fatalf("testenv: no node serves slot %d of %s: %+v", slot, key, ranges)
	return nil, nil
}

// KillMaster SIGKILLs master after its replicas have everything it
// acknowledged: its writes are held first (CLIENT PAUSE WRITE) and the
// kill waits until each replica has read its replication stream to the
// end. Writes it holds then die unexecuted with it, so that the replica
// that takes over holds exactly what the master acknowledged, and a test
// can count across the failover. (Without the pause, Redis Cluster may
// lose writes a master acknowledged just before it died: replication is
// asynchronous.) It returns the time of the kill.
func (c *RedisCluster) KillMaster(t testing.TB, master *Redis) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mc := c.clientOf(t, master)
	if err := mc.Do(ctx, "CLIENT", "PAUSE", "60000", "WRITE").Err(); err != nil {
		t.Fatalf("testenv: CLIENT PAUSE WRITE on %s: %v", master.Addr, err)
	}
	info, err := mc.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatalf("testenv: INFO replication of %s: %v", master.Addr, err)
	}
	f := infoFields(info)
	if f["role"] != "master" {
		t.Fatalf("testenv: KillMaster(%s): it is a %s", master.Addr, f["role"])
	}
	end, _ := strconv.ParseInt(f["master_repl_offset"], 10, 64)
	for _, r := range c.replicasOf(master) {
		for {
			info, err := c.clientOf(t, r).Info(ctx, "replication").Result()
			if err != nil {
				t.Fatalf("testenv: INFO replication of %s, replica of %s: %v", r.Addr, master.Addr, err)
			}
			if off, _ := strconv.ParseInt(infoFields(info)["slave_repl_offset"], 10, 64); off >= end {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	at := time.Now()
	master.Stop()
	return at
}

// replicasOf returns the running nodes that replicate master.
func (c *RedisCluster) replicasOf(master *Redis) []*Redis {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out []*Redis
	for i, n := range c.Nodes {
		if n == master || !n.Running() {
			continue
		}
		info, err := c.clients[i].Info(ctx, "replication").Result()
		if err != nil {
			continue
		}
		f := infoFields(info)
		if f["role"] == "slave" && f["master_port"] == strconv.Itoa(master.Port) {
			out = append(out, n)
		}
	}
	return out
}

// anyClient returns the client of a running node.
func (c *RedisCluster) anyClient(t testing.TB) *redis.Client {
	t.Helper()
	for i, n := range c.Nodes {
		if n.Running() {
			return c.clients[i]
		}
	}
	t.Fatalf("testenv: no node of Redis Cluster %s is running", c.URL)
	return nil
}

// clientOf returns node n's client.
func (c *RedisCluster) clientOf(t testing.TB, n *Redis) *redis.Client {
	t.Helper()
	for i, m := range c.Nodes {
		if m == n {
			return c.clients[i]
		}
	}
	t.Fatalf("testenv: %s is not a node of Redis Cluster %s", n.Addr, c.URL)
	return nil
}

// node returns the node at addr.
func (c *RedisCluster) node(t testing.TB, addr string) *Redis {
	t.Helper()
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	t.Fatalf("testenv: CLUSTER SLOTS names %s, not a node of Redis Cluster %s", addr, c.URL)
	return nil
}

// infoFields parses the "key:value" lines of INFO or CLUSTER INFO.
func infoFields(info string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out
}
