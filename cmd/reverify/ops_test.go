package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/storage/postgres"
	"reverify/worker/fleet"
)

func TestWorkerOpsServeMetricsAndProbes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, db := testenv.LedgerWithPool(t)
	redis := asynq.RedisClientOpt{Addr: testenv.RedisAddr(t)}
	// The newest migration is undone: the schema is older than this binary,
	// as while a rollout waits for `reverify migrate`.
	undone, err := postgres.Rollback(ctx, db.Config().ConnString())
	require.NoError(t, err)
	require.NotEmpty(t, undone)

	rdb := goredis.NewClient(&goredis.Options{Addr: redis.Addr})
	t.Cleanup(func() { rdb.Close() })
	gov := fleet.New(rdb, fleet.Config{Prefix: "{" + testenv.Queue(t) + "}:"})
	ops, err := startWorkerOps("127.0.0.1:0", redis, store, slog.New(slog.DiscardHandler), circuitCheck(gov))
	require.NoError(t, err)
	t.Cleanup(func() { ops.Close(ctx) })
	base := "http://" + ops.addr()

	code, _ := httpGet(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, "not ready while migrations are pending")
	_, err = postgres.Migrate(ctx, db.Config().ConnString())
	require.NoError(t, err)
	code, body := httpGet(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code, body)

	score := 80.0
	ops.Observer().APICalled("scored", 250*time.Millisecond, &score)
	ops.Observer().ResultRecorded("scored")
	code, body = httpGet(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `reverify_results_total{status="scored"} 1`)
	require.Contains(t, body, `reverify_api_paid_calls_total 1`)
	require.Contains(t, body, "asynq_queue_size")
	require.Contains(t, body, `reverify_backlog_objects{priority="normal"} 0`)

	_, err = gov.Report(ctx, fleet.AuthError, "HTTP 401")
	require.NoError(t, err)
	code, body = httpGet(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, "not ready while the API refuses the key")
	require.Contains(t, body, "api_circuit")

	off, err := startWorkerOps("", redis, store, nil)
	require.NoError(t, err)
	require.Nil(t, off.Observer(), "no --metrics-addr, no observer")
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	res, err := http.DefaultTransport.RoundTrip(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}
