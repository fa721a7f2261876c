package worker_test

import (
	"context"
	"fmt"
	"reverify"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"reverify/campaign"
	"reverify/liveness/fakeapi"
	"reverify/storage/postgres"
	"reverify/tasks"
	"reverify/worker"
)

// TestCappedRunSchedWaitsWithoutFailing: a run capped at 2 calls in flight
// and 20 calls/s, served by two worker processes of 20 slots each: the
// API never sees more than 2 of its calls at once, its tasks that find the
// cap reached go back to the queue as waits (with one retry, waits that
// counted would archive a task at its second wait), and every object gets
// exactly one result from exactly one paid call; the feeder keeps the
// run's window at 4 × its in-flight cap. With no retries every attempt is
// the last, and a wait must still not archive the task (asynq archives a
// task with no retries left whatever its handler returns).
func TestCappedRunSchedWaitsWithoutFailing(t *testing.T) {
	t.Parallel()
	for _, retries := range []int{1, 0} {
		t.Run(fmt.Sprintf("retries=%d", retries), func(t *testing.T) {
			t.Parallel()
			testCappedRunWaits(t, retries)
		})
	}
}

func testCappedRunWaits(t *testing.T, retries int) {
	b := setup(t, fakeapi.Options{Latency: 40 * time.Millisecond})
	ctx := context.Background()
	const bucket = "capsched"
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = "c" + string(rune('a'+i)) + ".jpg"
	}
	b.images(t, bucket, keys...)
	run, err := b.store.CreateRun(ctx, postgres.NewRun{Name: t.Name(), Queue: b.queue,
		Source: reverify.Source{Kind: reverify.SourcePrefix, Bucket: bucket},
		Limits: reverify.RunLimits{MaxRate: 20, MaxInFlight: 2}})
	require.NoError(t, err)
	b.enqueue(t, run, tasks.ListingSource(b.objs, bucket, ""), tasks.Retries(retries))
	// The feeder keeps the capped run's window small (8 here): it tops it
	// up as the fleet's feeder would.
	feeder := b.feeder(t, tasks.Retries(retries))
	fctx, stopFeeding := context.WithCancel(ctx)
	t.Cleanup(stopFeeding)
	go func() {
		for fctx.Err() == nil {
			_ = feeder.Cycle(fctx)
			time.Sleep(100 * time.Millisecond)
		}
	}()

	waits := &waitCounter{}
	b.observer, b.limits = waits, b.store
	b.startWorker(t, apiKey, worker.Config{})
	b.startWorker(t, apiKey, worker.Config{})
	p := b.waitForStatus(t, run.ID, reverify.RunCompleted, 60*time.Second)

	require.EqualValues(t, len(keys), p.ByStatus[reverify.StatusScored], "waits use up no retries")
	require.Len(t, b.fake.Ledger(), len(keys), "one paid call per object")
	require.LessOrEqual(t, b.fake.Stats().MaxInFlight, 2, "the run's in-flight cap holds across both workers")
	require.EqualValues(t, 8, campaign.RunWindow(run, 1<<20, time.Now()), "a few times the in-flight cap")
	require.Positive(t, waits.count(reverify.WaitRunCap), "tasks found the run at its cap and gave their slot back")
	var n int
	require.NoError(t, b.db.QueryRow(ctx, `SELECT count(*) FROM api_calls WHERE run_id = $1`, run.ID).Scan(&n))
	require.Equal(t, len(keys), n, "every paid call on record")
	insp := asynq.NewInspector(b.redis)
	t.Cleanup(func() { _ = insp.Close() })
	archived, err := insp.ListArchivedTasks(b.queue)
	require.NoError(t, err)
	require.Empty(t, archived, "no task archived for a wait")
}
