package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/liveness/fakeapi"
)

// cli runs the reverify command line in-process, as main does.
func cli(t *testing.T, ctx context.Context, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "--database-url", "::not a url"}, "REVERIFY_DATABASE_URL"},
		{[]string{"runs", "list", "--redis-url", "x", "--database-url", "mysql://nope"}, "REVERIFY_DATABASE_URL"},
		{[]string{"enqueue", "--bucket", "b", "--s3-endpoint", "not-a-url"}, "REVERIFY_S3_ENDPOINT"},
		{[]string{"worker", "--api-url", "ftp://x"}, "REVERIFY_API_URL"},
		{[]string{"worker", "--api-key", ""}, "REVERIFY_API_KEY"},
		{[]string{"worker", "--api-key", "k", "--redis-url", "nope://x"}, "REVERIFY_REDIS_URL"},
		{[]string{"worker", "--api-key", "k", "--queues", "a:0"}, "--queues"},
		{[]string{"worker", "--api-key", "k", "--api-key-file", "/x"}, "not both"},
		{[]string{"worker", "--api-key-file", "/does/not/exist"}, "REVERIFY_API_KEY_FILE"},
		{[]string{"worker", "--log-format", "xml"}, "REVERIFY_LOG_FORMAT"},
	}
	for _, tt := range tests {
		_, stderr, code := cli(t, ctx, "", tt.args...)
		require.Equal(t, 1, code, "%v", tt.args)
		require.Contains(t, stderr, tt.want, "%v", tt.args)
		require.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
	}
}

func TestAPIKeyNeverPrinted(t *testing.T) {
	t.Parallel()
	const secret = "sk-live-7d1f0c9e"
	_, stderr, code := cli(t, context.Background(), "", "worker", "--api-key", secret, "--api-url", "http://[::1", "--log-format", "text")
	require.Equal(t, 1, code)
	require.NotContains(t, stderr, secret)
}

func TestWorkerAndEnqueueRefuseUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	_, stderr, code := cli(t, ctx, "", "worker", "--database-url", dsn, "--api-key", "k")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "reverify migrate")
	_, stderr, code = cli(t, ctx, "a.jpg\n", "enqueue", "--database-url", dsn, "--bucket", "b", "--manifest", "-")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "reverify migrate")
}

func TestMigrateCreatesDatabaseAndIsIdempotent(t *testing.T) {
	t.Parallel()
	missing := testenv.MissingDatabase(t)
	ctx := context.Background()
	out, stderr, code := cli(t, ctx, "", "migrate", "--database-url", missing)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "applied")
	out, stderr, code = cli(t, ctx, "", "migrate", "--database-url", missing)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "up to date")
}

// TestCommandLineEndToEnd drives the commands a user types: migrate,
// enqueue --dry-run, enqueue, worker (stopped as by SIGTERM) and runs show.
// It sets the AWS credential variables, so it does not run in parallel.
func TestCommandLineEndToEnd(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	s3 := testenv.S3(t)
	redisURL := "redis://" + testenv.RedisAddr(t) + "/0"
	queue := testenv.Queue(t)
	fake := fakeapi.New(fakeapi.Options{APIKey: "cli-key"})
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)

	s3.CreateBucket(t, "cli")
	for i := range 12 {
		s3.PutObject(t, "cli", "p/"+string(rune('a'+i))+".jpg", fakeapi.GenerateJPEG(int64(i), 80, 80))
	}
	s3.PutObject(t, "cli", "p/readme.txt", []byte("not a photo"))
	s3.PutObject(t, "cli", "p/empty.jpg", nil)

	common := []string{"--database-url", dsn, "--redis-url", redisURL, "--s3-endpoint", s3.Endpoint,
		"--s3-region", s3.Region, "--s3-path-style", "--log-format", "text"}
	t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)

	_, stderr, code := cli(t, ctx, "", append([]string{"migrate"}, common...)...)
	require.Equal(t, 0, code, stderr)

	out, stderr, code := cli(t, ctx, "", append([]string{"enqueue", "--bucket", "cli", "--prefix", "p/", "--suffix", ".jpg", "--dry-run"}, common...)...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "13 objects match; 12 would be sent to the liveness API (at least 12 API calls, about 12 billable answers)")
	// A dry run reads only the source: it counts with the database down.
	noDB := append([]string{"enqueue", "--bucket", "cli", "--prefix", "p/", "--suffix", ".jpg", "--dry-run"}, common...)
	noDB[slices.Index(noDB, dsn)] = "postgres://postgres@127.0.0.1:1/none?sslmode=disable"
	out, stderr, code = cli(t, ctx, "", noDB...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "12 would be sent")

	_, stderr, code = cli(t, ctx, "", append([]string{"enqueue", "--bucket", "missing-bucket"}, common...)...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "missing-bucket")

	out, stderr, code = cli(t, ctx, "", append([]string{"enqueue", "--bucket", "cli", "--prefix", "p/", "--queue", queue, "--name", "cli test"}, common...)...)
	require.Equal(t, 0, code, stderr)
	runID := strings.TrimSpace(out)
	require.Regexp(t, `^[0-9a-f-]{36}$`, runID)
	require.Contains(t, stderr, "14 recorded (14 in the run); the worker fleet dispatches them")

	out, stderr, code = cli(t, ctx, "", append([]string{"runs", "reconcile", runID}, common...)...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "0 dispatched objects without a result", "nothing is dispatched before a worker's feeder runs")

	wctx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		_, _, code := cli(t, wctx, "", append([]string{"worker", "--queues", queue, "--api-url", api.URL, "--api-key", "cli-key",
			"--concurrency", "8", "--shutdown-timeout", "5s"}, common...)...)
		done <- code
	}()
	require.Eventually(t, func() bool {
		out, _, _ := cli(t, ctx, "", append([]string{"runs", "show", runID}, common...)...)
		return strings.Contains(out, "status      completed")
	}, 60*time.Second, 200*time.Millisecond)
	stop() // as SIGTERM does
	select {
	case code := <-done:
		require.Equal(t, 0, code, "worker exits 0 on SIGTERM")
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop")
	}

	out, stderr, code = cli(t, ctx, "", append([]string{"runs", "show", runID}, common...)...)
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `progress\s+14/14 done \(100\.0%\), 0 pending`, out)
	require.Regexp(t, `scored\s+12`, out)
	require.Regexp(t, `invalid_image\s+2`, out)
	require.Regexp(t, `api calls\s+12 made, 12 billable answers \(with a transaction ID\)`, out)
	require.Regexp(t, `fleet: .*API (calls|budget)`, out, "runs show tells the fleet's daily call count")

	out, stderr, code = cli(t, ctx, "", append([]string{"runs", "list"}, common...)...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, runID)
	require.Contains(t, out, "cli test")

	_, stderr, code = cli(t, ctx, "", append([]string{"runs", "show", "00000000-0000-0000-0000-000000000000"}, common...)...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "run not found")
}

// TestWorkerWaitsForPostgreSQL: a worker started while PostgreSQL is down
// waits and retries instead of exiting (and crash-looping under a
// supervisor); SIGTERM still stops it cleanly.
func TestWorkerWaitsForPostgreSQL(t *testing.T) {
	t.Parallel()
	addr := testenv.FreePortT(t).Addr() // nothing listens here
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct {
		code   int
		stderr string
	}, 1)
	go func() {
		_, stderr, code := cli(t, ctx, "", "worker", "--api-key", "sk-wait-4b1d", "--log-format", "text",
			"--database-url", "postgres://postgres@"+addr+"/reverify?sslmode=disable&connect_timeout=1")
		done <- struct {
			code   int
			stderr string
		}{code, stderr}
	}()
	select {
	case r := <-done:
		t.Fatalf("worker exited while PostgreSQL was down (code %d): %s", r.code, r.stderr)
	case <-time.After(2500 * time.Millisecond):
	}
	stop()
	r := <-done
	require.Contains(t, r.stderr, "PostgreSQL unreachable; retrying")
	require.Equal(t, 0, r.code, r.stderr)
	require.NotContains(t, r.stderr, "sk-wait-4b1d", "no API key in logs")
}

func TestRedisURLForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url  string
		want any
		err  bool
	}{
		{"redis://127.0.0.1:6379/3", asynq.RedisClientOpt{Addr: "127.0.0.1:6379", DB: 3}, false},
		{"redis-cluster://n1:7000,n2:7001", asynq.RedisClusterClientOpt{Addrs: []string{"n1:7000", "n2:7001"}}, false},
		{"redis-cluster://u:p@n1:7000", asynq.RedisClusterClientOpt{Addrs: []string{"n1:7000"}, Username: "u", Password: "p"}, false},
		{"redis-cluster://n1", nil, true},
		{"redis-sentinel://s1:26379,s2:26379?master=mymaster", nil, false},
		{"http://x", nil, true},
	}
	for _, tt := range tests {
		c := config{RedisURL: tt.url}
		got, err := c.redis()
		if tt.err {
			require.Error(t, err, tt.url)
			require.Contains(t, err.Error(), "REVERIFY_REDIS_URL")
			continue
		}
		require.NoError(t, err, tt.url)
		if tt.want != nil {
			require.Equal(t, tt.want, got, tt.url)
		}
	}
}
