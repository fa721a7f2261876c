package postgres_test

import (
	"context"
	"fmt"
	"reverify"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

// TestGroupWritesShareCommits: under concurrent load the result path's
// writes share transactions, and every image still gets exactly its call
// record and its terminal row.
func TestGroupWritesShareCommits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db := testenv.LedgerWithPool(t)
	s.GroupWrites(1)
	run := seedRun(t, s, 300, postgres.NewRun{})

	g, gctx := errgroup.WithContext(ctx)
	for i := range 300 {
		g.Go(func() error {
			obj := reverify.ObjectRef{Bucket: "b", Key: fmt.Sprintf("k%05d", i)}
			id, st, err := s.BeginCall(gctx, run.ID, obj, time.Minute)
			if err != nil || st != postgres.CallRecorded {
				return fmt.Errorf("begin %s: state %d: %w", obj.Key, st, err)
			}
			sc := float64(i % 100)
			call := postgres.Call{ID: id, Outcome: reverify.OutcomeScored, TransactionID: fmt.Sprintf("tx-%d", i),
				HTTPStatus: 200, Score: &sc, Latency: time.Millisecond}
			final := &postgres.Result{RunID: run.ID, Object: obj, Status: reverify.StatusScored, Score: &sc,
				TransactionID: call.TransactionID}
			return s.FinishCall(gctx, call, run.ID, obj, final)
		})
	}
	require.NoError(t, g.Wait())

	var scored, answered, distinctTx int
	require.NoError(t, db.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM verifications WHERE run_id = $1 AND status = 'scored' AND attempts = 1),
		       (SELECT count(*) FROM api_calls WHERE run_id = $1 AND outcome = 'scored'),
		       (SELECT count(DISTINCT transaction_id) FROM api_calls WHERE run_id = $1)`, run.ID).
		Scan(&scored, &answered, &distinctTx))
	require.Equal(t, 300, scored)
	require.Equal(t, 300, answered)
	require.Equal(t, 300, distinctTx)

	st := s.WriteStats()
	require.Equal(t, int64(600), st.Writes, "every write committed, none run again alone: %+v", st)
	require.Less(t, st.Commits, st.Writes, "with one flusher and 300 writers, writes must share commits: %+v", st)
}

// TestGroupFailureIsolated: one bad write in a group (a result for a run
// that does not exist) fails alone; the writes beside it commit.
func TestGroupFailureIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db := testenv.LedgerWithPool(t)
	s.GroupWrites(1)
	run := seedRun(t, s, 4, postgres.NewRun{})
	obj := func(i int) reverify.ObjectRef { return reverify.ObjectRef{Bucket: "b", Key: fmt.Sprintf("k%05d", i)} }
	scored := func(runID string, o reverify.ObjectRef) postgres.Result {
		sc := 50.0
		return postgres.Result{RunID: runID, Object: o, Status: reverify.StatusScored, Score: &sc, TransactionID: "tx-" + o.Key}
	}

	// Hold the first object's row, so the lone flusher blocks on it while
	// the next writes queue up behind it and then go as one group.
	lock, err := db.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = lock.Rollback(ctx) })
	_, err = lock.Exec(ctx, `SELECT 1 FROM verifications WHERE run_id = $1 AND object_key = $2 FOR UPDATE`, run.ID, obj(0).Key)
	require.NoError(t, err)

	first := make(chan error, 1)
	go func() { first <- s.RecordResult(ctx, scored(run.ID, obj(0))) }()
	require.Eventually(t, func() bool {
		var waiting int
		err := db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		return err == nil && waiting == 1
	}, 10*time.Second, 10*time.Millisecond, "the flusher never blocked on the held row")

	errs := make([]chan error, 3)
	runs := []string{run.ID, "00000000-0000-4000-8000-000000000000", run.ID}
	for i := range errs {
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- s.RecordResult(ctx, scored(runs[i], obj(i+1))) }()
	}
	require.Eventually(t, func() bool { return s.QueuedWrites() == 3 }, 10*time.Second, time.Millisecond)
	require.NoError(t, lock.Rollback(ctx))

	require.NoError(t, <-first)
	require.NoError(t, <-errs[0])
	require.ErrorIs(t, <-errs[1], postgres.ErrUnknownRun)
	require.NoError(t, <-errs[2])
	for _, i := range []int{0, 1, 3} {
		r, err := s.ResultOf(ctx, run.ID, obj(i))
		require.NoError(t, err)
		require.Equal(t, reverify.StatusScored, r.Status, "object %d", i)
	}
	require.Equal(t, int64(3), s.WriteStats().Alone, "the failed group's writes ran again alone")
}
