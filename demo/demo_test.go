package demo_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/demo"
	"reverify/internal/testenv"
)

// TestDemoCompletes runs the demo as `make demo` does, against the test's
// own database and the shared Redis, and against an in-process Redis when
// the configured one does not answer.
func TestDemoCompletes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		redis asynq.RedisConnOpt
	}{
		{"local redis", asynq.RedisClientOpt{Addr: testenv.RedisAddr(t)}},
		{"no redis", asynq.RedisClientOpt{Addr: testenv.FreePortT(t).Addr()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var said []string
			res, err := demo.Run(ctx, demo.Config{
				DatabaseURL: testenv.Postgres(t), Redis: tt.redis, Images: 60, Concurrency: 10, Faults: true,
				Say: func(format string, _ ...any) { said = append(said, format) },
			})
			require.NoError(t, err)
			p := res.Progress
			require.Equal(t, reverify.RunCompleted, p.Run.Status)
			require.EqualValues(t, 60, p.Run.Total)
			require.EqualValues(t, 60, p.Done)
			require.EqualValues(t, 2, p.ByStatus[reverify.StatusInvalidImage], "the empty and the text upload never reach the API")
			require.EqualValues(t, 58, p.ByStatus[reverify.StatusScored]+p.ByStatus[reverify.StatusRejected])
			require.Equal(t, res.Scored, p.ByStatus[reverify.StatusScored])
			require.GreaterOrEqual(t, res.Calls, int64(58), "one call per sent image, more where the fake API answered 429 or 503")
			require.NotEmpty(t, said)
		})
	}
}

// TestDemoEndsOnItsOwn: without serving, the demo returns once its run
// has ended.
func TestDemoEndsOnItsOwn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := demo.Run(ctx, demo.Config{DatabaseURL: testenv.Postgres(t), Redis: asynq.RedisClientOpt{Addr: testenv.RedisAddr(t)},
		Images: 24, Concurrency: 8, Timeout: time.Minute})
	require.NoError(t, err)
	require.Equal(t, reverify.RunCompleted, res.Progress.Run.Status)
	require.EqualValues(t, 24, res.Progress.Done)
	require.Positive(t, res.Scored)
}

// TestDemoServesTheDashboard: with Serve, the demo tells the dashboard's
// URL, tells how the run ended, and keeps serving — pages and the seeded
// images, streamed from its in-process S3 — until interrupted.
func TestDemoServesTheDashboard(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	urls := make(chan string, 1)
	ended := make(chan demo.Result, 1)
	done := make(chan error, 1)
	go func() {
		_, err := demo.Run(ctx, demo.Config{DatabaseURL: testenv.Postgres(t), Redis: asynq.RedisClientOpt{Addr: testenv.RedisAddr(t)},
			Images: 24, Concurrency: 8, Timeout: time.Minute, Serve: &demo.Serve{
				Addr:  "127.0.0.1:0",
				Ready: func(url string) { urls <- url },
				Ended: func(r demo.Result) { ended <- r },
			}})
		done <- err
	}()
	var base string
	select {
	case base = <-urls:
	case err := <-done:
		t.Fatalf("the demo stopped: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("no dashboard URL")
	}
	require.Regexp(t, `^http://127\.0\.0\.1:\d+/$`, base)
	var res demo.Result
	select {
	case res = <-ended:
	case err := <-done:
		t.Fatalf("the demo stopped: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the run did not end")
	}
	require.Equal(t, reverify.RunCompleted, res.Progress.Run.Status)
	id := res.Progress.Run.ID

	// After the run, everything still serves.
	time.Sleep(300 * time.Millisecond)
	code, body := testenv.HTTPGet(t, base)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, id)
	code, body = testenv.HTTPGet(t, base+"runs/"+id)
	require.Equal(t, http.StatusOK, code)
	ref := base64.RawURLEncoding.EncodeToString([]byte(demo.Bucket + "\x00selfies/customer-0000.png"))
	code, body = testenv.HTTPGet(t, base+"runs/"+id+"/image?o="+ref)
	require.Equal(t, http.StatusOK, code, body)
	require.True(t, strings.HasPrefix(body, "\x89PNG"), "the seeded image, from the demo's S3")
	code, _ = testenv.HTTPGet(t, base+"monitoring/")
	require.Equal(t, http.StatusOK, code)

	select {
	case err := <-done:
		t.Fatalf("the demo stopped before it was interrupted: %v", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "an interrupt is how a serving demo ends")
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not stop")
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, base, nil)
	require.NoError(t, err)
	_, err = http.DefaultTransport.RoundTrip(req)
	require.Error(t, err, "nothing listens any more")
}

// TestDemoServesOnLoopbackOnly: the demo's dashboard has no credentials.
func TestDemoServesOnLoopbackOnly(t *testing.T) {
	t.Parallel()
	_, err := demo.Run(context.Background(), demo.Config{Serve: &demo.Serve{Addr: "0.0.0.0:8080"}})
	require.ErrorContains(t, err, "without credentials")
}
