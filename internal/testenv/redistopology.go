package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisBin finds a Redis program on $PATH. Without it the test fails in
// CI and is skipped elsewhere.
func redisBin(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		unavailable(t, "%s not found on $PATH (Debian packages redis-server and redis-tools; .ci/install installs them): %v", name, err)
	}
	return p
}

// startRedisServer starts redis-server for t with the arguments args
// returns for a port, on a free port of 127.0.0.1, and waits until it
// answers PING. A port taken between FreePort and the server's bind makes
// it exit, so a few ports are tried. The process is killed when the test
// ends.
func startRedisServer(t testing.TB, bin, name string, args func(port Port) ([]string, error)) Port {
	t.Helper()
	var lastErr error
	for range 3 {
		port, err := FreePort()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		a, err := args(port)
		if err != nil {
			t.Fatalf("testenv: %s: %v", name, err)
		}
		p := StartT(t, Command{Name: name + " on " + port.Addr(), Bin: bin, Args: a,
			Log: filepath.Join(t.TempDir(), "redis.log")})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		lastErr = p.WaitReady(ctx, redisReady(port.Addr()))
		cancel()
		if lastErr == nil {
			return port
		}
		_ = p.Stop(syscall.SIGKILL, TerminateGrace)
	}
	t.Fatalf("testenv: %v", lastErr)
	return 0
}

// redisReady is a readiness check for WaitReady: addr answers PING.
func redisReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
		defer c.Close()
		return c.Ping(ctx).Err()
	}
}

// RedisCluster starts a Redis Cluster of three masters (no replicas) for
// this test on free ports of 127.0.0.1, each node with a directory of its
// own and nothing kept on disk, creates it with `redis-cli --cluster
// create` and waits until every node reports cluster_state:ok. It returns
// the nodes' host:port addresses; the nodes are killed when the test ends.
// Without redis-server and redis-cli the test fails in CI and is skipped
// elsewhere.
func RedisCluster(t testing.TB) []string {
	t.Helper()
	server, cli := redisBin(t, "redis-server"), redisBin(t, "redis-cli")
	addrs := make([]string, 3)
	for i := range addrs {
		dir := t.TempDir()
		port := startRedisServer(t, server, fmt.Sprintf("redis cluster node %d", i+1), func(port Port) ([]string, error) {
			// The bus port gets a free port of its own: the default,
			// port+10000, may be taken or beyond 65535.
			bus, err := FreePort()
			if err != nil {
				return nil, err
			}
			return []string{"--port", port.String(), "--bind", "127.0.0.1",
				"--cluster-enabled", "yes", "--cluster-port", bus.String(),
				"--cluster-config-file", filepath.Join(dir, "nodes-"+port.String()+".conf"),
				"--cluster-node-timeout", "5000", "--dir", dir, "--save", "", "--appendonly", "no"}, nil
		})
		addrs[i] = port.Addr()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	create := StartT(t, Command{Name: "redis-cli --cluster create", Bin: cli,
		Args:   append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes"),
		Output: &out})
	if err := create.Wait(ctx); err != nil {
		t.Fatalf("testenv: %v:\n%s", err, out.String())
	}
	for _, addr := range addrs {
		if err := clusterOK(ctx, addr); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	return addrs
}

// clusterOK waits until the node at addr reports cluster_state:ok.
func clusterOK(ctx context.Context, addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for {
		info, err := c.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis cluster node %s never reported cluster_state:ok (%v); CLUSTER INFO:\n%s", addr, err, info)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Sentinel is a Redis master watched by one Sentinel, started by
// RedisSentinel.
type Sentinel struct {
	Addr       string // the Sentinel's host:port
	Master     string // the name it knows the master by
	MasterAddr string // the master's host:port
}

// URL is REVERIFY_REDIS_URL for the Sentinel: asynq's failover option.
func (s Sentinel) URL() string { return "redis-sentinel://" + s.Addr + "?master=" + s.Master }

// RedisSentinel starts a Redis master and one Sentinel monitoring it (as
// "mymaster", quorum 1) for this test on free ports of 127.0.0.1, with
// nothing kept on disk, and waits until the Sentinel names the master. The
// processes are killed when the test ends. Without redis-server the test
// fails in CI and is skipped elsewhere.
func RedisSentinel(t testing.TB) Sentinel {
	t.Helper()
	server := redisBin(t, "redis-server")
	dir := t.TempDir()
	master := startRedisServer(t, server, "redis master", func(port Port) ([]string, error) {
		return []string{"--port", port.String(), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"}, nil
	})
	s := Sentinel{Master: "mymaster", MasterAddr: master.Addr()}
	sport := startRedisServer(t, server, "redis sentinel", func(port Port) ([]string, error) {
		// Sentinel rewrites its configuration file, so it gets one of its own.
		conf := filepath.Join(dir, "sentinel-"+port.String()+".conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %d 1\n",
			port, dir, s.Master, master)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil, err
		}
		return []string{conf, "--sentinel"}, nil
	})
	s.Addr = sport.Addr()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	for {
		got, err := c.GetMasterAddrByName(ctx, s.Master).Result()
		if err == nil && len(got) == 2 && net.JoinHostPort(got[0], got[1]) == s.MasterAddr {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testenv: sentinel %s never named master %s at %s: %v %v", s.Addr, s.Master, s.MasterAddr, got, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
