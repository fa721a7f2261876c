package ops_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/ops"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	w, err := ops.StartWorker(ln, redis, store, slog.New(slog.DiscardHandler), gov, nil)
	require.NoError(t, err)
	t.Cleanup(func() { w.Close(ctx) })
	base := "http://" + w.Addr()

	code, _ := testenv.HTTPGet(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, "not ready while migrations are pending")
	_, err = postgres.Migrate(ctx, db.Config().ConnString())
	require.NoError(t, err)
	code, body := testenv.HTTPGet(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code, body)

	score := 80.0
	w.Observer().APICalled("scored", 250*time.Millisecond, &score, true)
	w.Observer().ResultRecorded("scored")
	code, body = testenv.HTTPGet(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `reverify_results_total{status="scored"} 1`)
	require.Contains(t, body, `reverify_api_billable_answers_total 1`)
	require.Contains(t, body, "asynq_queue_size")
	require.Contains(t, body, `reverify_backlog_objects{priority="normal"} 0`)

	require.Contains(t, body, `reverify_fleet_circuit_open{circuit="auth"} 0`)
	require.Contains(t, body, `reverify_runs{status="running"} 0`)
	require.Contains(t, body, "reverify_api_oldest_call_in_flight_seconds 0")

	// The vendor refusing the key is an alert, not a reason to take every
	// worker out of service (a drain or rollout would stall).
	_, err = gov.Report(ctx, fleet.AuthError, "HTTP 401")
	require.NoError(t, err)
	code, body = testenv.HTTPGet(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code, "ready while the API refuses the key: %s", body)
	_, body = testenv.HTTPGet(t, base+"/metrics")
	require.Contains(t, body, `reverify_fleet_circuit_open{circuit="auth"} 1`)

	off, err := ops.StartWorker(nil, redis, store, nil, nil, nil)
	require.NoError(t, err)
	require.Nil(t, off.Observer(), "no --metrics-addr, no observer")
}
