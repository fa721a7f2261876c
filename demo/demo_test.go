package demo_test

import (
	"context"
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
