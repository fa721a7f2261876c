package tasks_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/tasks"
)

func TestPipelinedClientEnqueuesOnceEach(t *testing.T) {
	t.Parallel()
	opt := asynq.RedisClientOpt{Addr: testenv.RedisAddr(t)}
	queue := testenv.Queue(t)
	client, closeClient, err := tasks.NewPipelinedClient(opt)
	require.NoError(t, err)
	in := asynq.NewInspector(opt)
	t.Cleanup(func() {
		_ = in.DeleteQueue(queue, true)
		_ = in.Close()
		require.NoError(t, closeClient())
	})

	ctx := context.Background()
	const keys = 500
	var wg sync.WaitGroup
	var mu sync.Mutex
	enqueued, conflicts := 0, 0
	for w := range 20 {
		wg.Go(func() {
			// Every worker sends every key: each lands once, the rest collide.
			for i := range keys {
				task, err := tasks.NewVerifyTask(tasks.VerifyPayload{RunID: "run-1", Bucket: "b", Key: fmt.Sprint((i + w) % keys)}, queue)
				require.NoError(t, err)
				_, err = client.EnqueueContext(ctx, task)
				mu.Lock()
				switch {
				case err == nil:
					enqueued++
				case assertConflict(t, err):
					conflicts++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Equal(t, keys, enqueued)
	require.Equal(t, 19*keys, conflicts)
	qi, err := in.GetQueueInfo(queue)
	require.NoError(t, err)
	require.Equal(t, keys, qi.Pending)
}

func assertConflict(t *testing.T, err error) bool {
	t.Helper()
	require.ErrorIs(t, err, asynq.ErrTaskIDConflict)
	return true
}
