package metrics_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/metrics"
)

func TestPipelineCountsWhatTheHandlerReports(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	p := metrics.NewPipeline(reg)

	score := 87.5
	p.ObjectFetched(20*time.Millisecond, 1234, nil)
	p.ObjectFetched(time.Second, 0, errors.New("timeout"))
	p.APICalled("scored", 300*time.Millisecond, &score, true)
	p.APICalled("rejected", 100*time.Millisecond, nil, true)
	p.APICalled("rate_limited", 10*time.Millisecond, nil, false)
	p.APICalled("transient", 10*time.Millisecond, nil, true) // a malformed answer naming its transaction
	p.ResultRecorded("scored")
	p.ResultRecorded("rejected")
	p.Waited("rate_limited", 2*time.Second)

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP reverify_api_billable_answers_total Billable answers: answers of the liveness API that carried a transaction ID, what the vendor bills.
# TYPE reverify_api_billable_answers_total counter
reverify_api_billable_answers_total 3
# HELP reverify_results_total Terminal results recorded, by status (scored, rejected, invalid_image, not_found, failed).
# TYPE reverify_results_total counter
reverify_results_total{status="rejected"} 1
reverify_results_total{status="scored"} 1
# HELP reverify_s3_fetched_bytes_total Bytes read from S3.
# TYPE reverify_s3_fetched_bytes_total counter
reverify_s3_fetched_bytes_total 1234
# HELP reverify_wait_seconds_total Delay those tasks were put back for, by reason.
# TYPE reverify_wait_seconds_total counter
reverify_wait_seconds_total{reason="rate_limited"} 2
# HELP reverify_api_circuit_open 1 while this process holds API calls because the API refused the key (401/403).
# TYPE reverify_api_circuit_open gauge
reverify_api_circuit_open 0
`), "reverify_api_billable_answers_total", "reverify_results_total", "reverify_s3_fetched_bytes_total", "reverify_api_circuit_open", "reverify_wait_seconds_total"))
	require.Equal(t, 4, testutil.CollectAndCount(reg, "reverify_api_calls_total"))
	require.Equal(t, 1, testutil.CollectAndCount(reg, "reverify_liveness_score"))
}

func TestCircuitFollowsAuthRefusals(t *testing.T) {
	t.Parallel()
	p := metrics.NewPipeline(prometheus.NewRegistry())
	require.False(t, p.CircuitOpen())
	p.APICalled("auth", time.Millisecond, nil, false)
	p.Waited("auth_circuit_open", time.Minute)
	require.True(t, p.CircuitOpen())
	p.APICalled("transient", time.Millisecond, nil, false)
	require.True(t, p.CircuitOpen(), "a network error says nothing about the key")
	score := 1.0
	p.APICalled("scored", time.Millisecond, &score, true)
	require.False(t, p.CircuitOpen(), "an accepted call closes it")
	p.Waited("auth_circuit_open", -time.Second)
	require.False(t, p.CircuitOpen(), "a hold in the past is over")
}

func TestQueueMetricsFromRedis(t *testing.T) {
	t.Parallel()
	opt := asynq.RedisClientOpt{Addr: testenv.RedisAddr(t)}
	queue := testenv.Queue(t)
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	for range 3 {
		_, err := client.Enqueue(asynq.NewTask("liveness:verify", []byte(`{}`)), asynq.Queue(queue))
		require.NoError(t, err)
	}
	inspector := asynq.NewInspector(opt)
	t.Cleanup(func() {
		_ = inspector.DeleteQueue(queue, true)
		inspector.Close()
	})

	reg := prometheus.NewRegistry()
	require.NoError(t, metrics.RegisterQueues(reg, inspector))
	require.NoError(t, metrics.RegisterProcess(reg))
	srv := httptest.NewServer(metrics.Handler(reg))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := get(ctx, t, srv.URL)
	require.Contains(t, body, `asynq_queue_size{queue="`+queue+`"} 3`)
	require.Contains(t, body, `asynq_tasks_enqueued_total{queue="`+queue+`",state="pending"} 3`)
	require.Contains(t, body, "go_goroutines")
}
