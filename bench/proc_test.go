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
	pg0, rd0 := sample()
	require.NoError(t, rdb.Eval(ctx, "for i = 1, 20000000 do end return 1", nil).Err())
	pg1, rd1 := sample()
	require.Greater(t, rd1-rd0, 50*time.Millisecond, "Redis ran a busy script")
	require.Less(t, pg1-pg0, rd1-rd0, "PostgreSQL was idle meanwhile")

	var n int64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM generate_series(1, 5000000)").Scan(&n))
	pg2, rd2 := sample()
	require.Greater(t, pg2-pg1, 50*time.Millisecond, "PostgreSQL counted five million rows")
	require.Less(t, rd2-rd1, pg2-pg1, "Redis was idle meanwhile")
}
