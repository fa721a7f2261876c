package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
)

// TestServerCPUFindsTheServers makes PostgreSQL and Redis burn CPU and
// checks that serverCPU saw each, and only the one that worked.
func TestServerCPUFindsTheServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	redisAddr, dbURL := testenv.RedisAddr(t), testenv.Postgres(t)
	if host, _, _ := net.SplitHostPort(redisAddr); !net.ParseIP(host).IsLoopback() {
		t.Skipf("Redis at %s is on another machine: its CPU is not readable here", redisAddr)
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { rdb.Close() })
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })

	s := newServerCPU()
	sample := func() (pg, rd time.Duration) {
		t.Helper()
		pg, rd, err := s.sample()
		require.NoError(t, err)
		return pg, rd
	}
	// A busy loop in one server shows as that server's CPU. Other test
	// packages may use the servers meanwhile (and other processes the
	// cores), so the idle one may move too; a mix-up of the two fails
	// every try.
	try := func(burn func(), busy, idle func(pg, rd time.Duration) time.Duration) bool {
		pg0, rd0 := sample()
		burn()
		pg1, rd1 := sample()
		b, i := busy(pg1-pg0, rd1-rd0), idle(pg1-pg0, rd1-rd0)
		require.Greater(t, b, 50*time.Millisecond, "the busy server's CPU was seen")
		return i < b
	}
	pgOf := func(pg, _ time.Duration) time.Duration { return pg }
	rdOf := func(_, rd time.Duration) time.Duration { return rd }
	redisBusy := func() { require.NoError(t, rdb.Eval(ctx, "for i = 1, 40000000 do end return 1", nil).Err()) }
	pgBusy := func() {
		var n int64
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM generate_series(1, 10000000)").Scan(&n))
	}
	for _, c := range []struct {
		name       string
		burn       func()
		busy, idle func(pg, rd time.Duration) time.Duration
	}{{"redis", redisBusy, rdOf, pgOf}, {"postgres", pgBusy, pgOf, rdOf}} {
		ok := false
		for range 5 {
			if ok = try(c.burn, c.busy, c.idle); ok {
				break
			}
		}
		require.True(t, ok, "%s burned CPU: the other server used less in none of five tries", c.name)
	}
}
