package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/campaign"
	"reverify/internal/testenv"
	"reverify/liveness"
	"reverify/liveness/fakeapi"
	"reverify/storage/objects"
	"reverify/storage/postgres"
	"reverify/tasks"
	"reverify/worker"
	"reverify/worker/fleet"
)

// TestRedisCluster runs the fleet's limits, the answer stash, the feeder
// and a run of images through a three-node Redis Cluster reached by a
// redis-cluster:// REVERIFY_REDIS_URL.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	nodes := testenv.RedisCluster(t)
	rdb := topologyPipeline(t, "redis-cluster://"+strings.Join(nodes, ","))
	_, ok := rdb.(*goredis.ClusterClient)
	require.True(t, ok, "a redis-cluster:// URL makes a cluster client, got %T", rdb)
}

// TestRedisSentinel does the same through a Redis master watched by a
// Sentinel, reached by a redis-sentinel:// URL (asynq's failover client).
func TestRedisSentinel(t *testing.T) {
	t.Parallel()
	s := testenv.RedisSentinel(t)
	rdb := topologyPipeline(t, s.URL())
	port, err := rdb.ConfigGet(context.Background(), "port").Result()
	require.NoError(t, err)
	require.Equal(t, s.MasterAddr, "127.0.0.1:"+port["port"], "the client reached the master the sentinel names")
}

// topologyPipeline checks every use reverify makes of Redis against the
// Redis behind url, and returns the client it made for the checks.
func topologyPipeline(t *testing.T, url string) goredis.UniversalClient {
	t.Helper()
	ctx := context.Background()
	opt, err := (&config{RedisURL: url}).redis()
	require.NoError(t, err)
	rdb, err := redisClient(opt)
	require.NoError(t, err)
	t.Cleanup(func() { rdb.Close() })
	require.NoError(t, rdb.Ping(ctx).Err())
	queue := testenv.Queue(t)
	prefix := "{" + queue + "}:"

	t.Run("fleet limits", func(t *testing.T) {
		g := fleet.New(rdb, fleet.Config{Prefix: prefix + "cap:", MaxInFlight: 2, DailyBudget: 100, MaxWait: 50 * time.Millisecond})
		a, err := g.Admit(ctx, "a")
		require.NoError(t, err)
		_, err = g.Admit(ctx, "b")
		require.NoError(t, err)
		_, err = g.Admit(ctx, "c")
		require.Equal(t, reverify.WaitFleetBusy, deniedReason(t, err), "the in-flight cap holds")
		g.Release(ctx, a)
		c, err := g.Admit(ctx, "c")
		require.NoError(t, err, "a released slot is free again")
		g.Withdraw(ctx, c)
		st, err := g.Status(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 1, st.InFlight)
		require.EqualValues(t, 2, st.BudgetUsed, "three admitted, one withdrawn")
		require.NoError(t, g.Announce(ctx))

		rate := fleet.New(rdb, fleet.Config{Prefix: prefix + "rate:", RatePerSecond: 1, MaxWait: 50 * time.Millisecond})
		_, err = rate.Admit(ctx, "r1")
		require.NoError(t, err)
		_, err = rate.Admit(ctx, "r2")
		require.Equal(t, reverify.WaitFleetRate, deniedReason(t, err), "the fleet's rate holds")

		circuits := fleet.New(rdb, fleet.Config{Prefix: prefix + "circuits:", OutageMinFails: 2, OutageWindow: time.Hour, MaxWait: 50 * time.Millisecond})
		for range 2 {
			_, err := circuits.Admit(ctx, "")
			require.NoError(t, err)
		}
		opened, err := circuits.Report(ctx, fleet.Transient, "")
		require.NoError(t, err)
		require.False(t, opened)
		opened, err = circuits.Report(ctx, fleet.Transient, "")
		require.NoError(t, err)
		require.True(t, opened, "most calls failing opens the outage circuit")
		_, err = circuits.Admit(ctx, "")
		require.Equal(t, reverify.WaitOutageCircuit, deniedReason(t, err))
		opened, err = circuits.Report(ctx, fleet.AuthError, "401")
		require.NoError(t, err)
		require.True(t, opened)
		_, err = circuits.Admit(ctx, "")
		require.Equal(t, reverify.WaitAuthCircuit, deniedReason(t, err))
		st, err = circuits.Status(ctx)
		require.NoError(t, err)
		require.Positive(t, st.AuthOpenFor)
		require.Equal(t, "401", st.AuthReason)
		require.Positive(t, st.OutageOpenFor)
	})

	t.Run("stash", func(t *testing.T) {
		s := fleet.NewStash(rdb, queue+":outcome:", time.Minute)
		got, err := s.Load(ctx, "task-1")
		require.NoError(t, err)
		require.Nil(t, got)
		require.NoError(t, s.Save(ctx, "task-1", []byte(`{"score":0.9}`)))
		got, err = s.Load(ctx, "task-1")
		require.NoError(t, err)
		require.JSONEq(t, `{"score":0.9}`, string(got))
		require.NoError(t, s.Drop(ctx, "task-1"))
		got, err = s.Load(ctx, "task-1")
		require.NoError(t, err)
		require.Nil(t, got)
	})

	t.Run("feeder lease and marker", func(t *testing.T) {
		leaseKey, markerKey := fleet.FeederKeys("ledger-" + queue)
		one := fleet.NewLease(rdb, leaseKey, "one", time.Minute)
		two := fleet.NewLease(rdb, leaseKey, "two", time.Minute)
		held, err := one.Hold(ctx)
		require.NoError(t, err)
		require.True(t, held)
		held, err = two.Hold(ctx)
		require.NoError(t, err)
		require.False(t, held, "one leader at a time")
		held, err = one.Hold(ctx)
		require.NoError(t, err)
		require.True(t, held, "the leader renews")
		require.NoError(t, one.Release(ctx))
		held, err = two.Hold(ctx)
		require.NoError(t, err)
		require.True(t, held, "a released lease passes on")
		require.NoError(t, two.Release(ctx))

		m := fleet.NewMarker(rdb, markerKey)
		lost, err := m.Lost(ctx)
		require.NoError(t, err)
		require.True(t, lost)
		require.NoError(t, m.Set(ctx))
		lost, err = m.Lost(ctx)
		require.NoError(t, err)
		require.False(t, lost)
	})

	t.Run("run", func(t *testing.T) {
		runImages(t, url, opt, rdb, queue)
	})
	return rdb
}

func deniedReason(t *testing.T, err error) reverify.WaitReason {
	t.Helper()
	var d *fleet.Denied
	require.True(t, errors.As(err, &d), "want *fleet.Denied, got %v", err)
	return d.Reason
}

// runImages sends a run of images through the feeder (as the worker
// command builds it: lease, marker, pipelined client) and a worker built
// by worker.New, both on opt, with the fake API and a versitygw S3.
func runImages(t *testing.T, url string, opt asynq.RedisConnOpt, rdb goredis.UniversalClient, queue string) {
	t.Helper()
	const images, window = 40, 10
	ctx := context.Background()
	store, pool := testenv.LedgerWithPool(t)
	s3 := testenv.S3(t)
	fake := fakeapi.New(fakeapi.Options{APIKey: "topology-key"})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	objs, err := objects.Open(ctx, s3.Config())
	require.NoError(t, err)

	const bucket = "topology"
	s3.CreateBucket(t, bucket)
	for i := range images {
		s3.PutObject(t, bucket, fmt.Sprintf("faces/%03d.jpg", i), fakeapi.GenerateJPEG(int64(i), 80, 80))
	}
	run, err := store.CreateRun(ctx, postgres.NewRun{Name: t.Name(), Queue: queue,
		Source: reverify.Source{Kind: reverify.SourcePrefix, Bucket: bucket, Prefix: "faces/"}})
	require.NoError(t, err)
	stats, err := tasks.NewRecorder(store).Record(ctx, run.ID, tasks.ListingSource(objs, bucket, "faces/"), nil)
	require.NoError(t, err)
	require.EqualValues(t, images, stats.Recorded)
	require.NoError(t, store.StartRun(ctx, run.ID))

	// Warnings (a CROSSSLOT error, say) show with the test's failure.
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	feeder, closeFeeder, err := campaign.NewFleetFeeder(ctx, store, opt, rdb, t.Name(), campaign.FeederConfig{Window: window, Every: 50 * time.Millisecond, Logger: log})
	require.NoError(t, err)
	t.Cleanup(closeFeeder)
	api, err := liveness.New(srv.URL, "topology-key", liveness.NewHTTPClient(8, 5*time.Second))
	require.NoError(t, err)
	w, err := worker.New(worker.Deps{Objects: objs, API: api, Ledger: store, Redis: opt, Runs: store, RunGate: store, Feeder: feeder},
		worker.Config{
			Concurrency: 8, Lanes: 2, Queues: map[string]int{queue: 1}, Logger: log,
			CloseRunsEvery: 100 * time.Millisecond, RetryCheckEvery: 200 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
			Backoff: worker.Backoff{Base: 50 * time.Millisecond, Cap: 300 * time.Millisecond, Min: 10 * time.Millisecond},
			// The Redis is this test's own: the fleet's keys and the
			// stash's are where production has them.
			Fleet: fleet.Config{MaxInFlight: 4, RatePerSecond: 200},
		})
	require.NoError(t, err)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
	})

	p := waitCompleted(t, store, opt, run)
	require.EqualValues(t, images, p.ByStatus[reverify.StatusScored])
	require.EqualValues(t, images, p.APICalls)
	require.EqualValues(t, images, p.BillableAnswers)
	require.Len(t, fake.Ledger(), images, "exactly one paid call per image")
	require.LessOrEqual(t, fake.Stats().MaxInFlight, 4, "the fleet's in-flight cap holds at the API")
	fs := feeder.Stats()
	require.EqualValues(t, images, fs.Dispatched, "every image dispatched once")
	require.GreaterOrEqual(t, fs.Cycles, int64(images/window), "the window was topped up as images finished")
	require.True(t, feeder.Leading(), "the feeder took the lease")

	out, stderr, code := cli(t, ctx, "", "runs", "show", run.ID, "--redis-url", url,
		"--database-url", pool.Config().ConnString(), "--log-format", "text")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, fmt.Sprintf(`scored\s+%d`, images), out)
	require.Regexp(t, fmt.Sprintf(`api calls\s+%d made, %d billable answers`, images, images), out)
	require.Regexp(t, fmt.Sprintf(`fleet: .*%d API calls`, images), out, "runs show reads the fleet's state")
}

// waitCompleted waits for run to complete. When it does not, the failure
// tells why its tasks are being retried: the worker takes a Redis error of
// the fleet's (a CROSSSLOT one, say) as a reason to wait, not a failure.
func waitCompleted(t *testing.T, store *postgres.Store, opt asynq.RedisConnOpt, run reverify.Run) postgres.Progress {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(45 * time.Second)
	for {
		p, err := store.Progress(ctx, run.ID)
		require.NoError(t, err)
		if p.Run.Status == reverify.RunCompleted {
			return p
		}
		if time.Now().After(deadline) {
			insp := asynq.NewInspector(opt)
			defer insp.Close()
			retry, err := insp.ListRetryTasks(run.Queue, asynq.PageSize(1))
			why := fmt.Sprint(err)
			if len(retry) > 0 {
				why = retry[0].LastErr
			}
			t.Fatalf("run %s never completed: %+v; a retried task's last error: %s", run.ID, p.ByStatus, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
