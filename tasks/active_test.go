package tasks_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/tasks"
)

// TestActiveCounter holds the counter to asynq's own bookkeeping: tasks a
// server is working on are counted, queued and finished ones are not.
func TestActiveCounter(t *testing.T) {
	t.Parallel()
	opt := asynq.RedisClientOpt{Addr: testenv.RedisAddr(t)}
	queue, other := testenv.Queue(t), testenv.Queue(t)+"-other"
	rdb := redis.NewClient(&redis.Options{Addr: opt.Addr})
	client := asynq.NewClient(opt)
	in := asynq.NewInspector(opt)
	t.Cleanup(func() {
		_ = in.DeleteQueue(queue, true)
		_ = in.DeleteQueue(other, true)
		_ = in.Close()
		_ = client.Close()
		_ = rdb.Close()
	})
	ctx := context.Background()
	for range 5 {
		_, err := client.EnqueueContext(ctx, asynq.NewTask("hold", nil), asynq.Queue(queue))
		require.NoError(t, err)
	}
	_, err := client.EnqueueContext(ctx, asynq.NewTask("hold", nil), asynq.Queue(other))
	require.NoError(t, err)

	release := make(chan struct{})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 3, Queues: map[string]int{queue: 1}, LogLevel: asynq.FatalLevel})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})))
	t.Cleanup(srv.Shutdown)

	counter := tasks.NewActiveCounter(rdb)
	active := func() int {
		n, err := counter.Active(ctx, []string{queue, other})
		require.NoError(t, err)
		return n
	}
	require.Eventually(t, func() bool { return active() == 3 }, 10*time.Second, 10*time.Millisecond,
		"three held by a server of concurrency 3; two queued and the other queue's one are not active")
	close(release)
	require.Eventually(t, func() bool { return active() == 0 }, 10*time.Second, 10*time.Millisecond, "all done")
	n, err := counter.Active(ctx, nil)
	require.NoError(t, err)
	require.Zero(t, n)
}
