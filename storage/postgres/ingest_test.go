package postgres_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"reverify"
	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

// TestAddObjectsAnalysesTheRunAsItGrows: a partition filled by COPY has
// statistics from its first thousands of rows on, so the feeder's queries
// use its indexes while the fill goes on.
func TestAddObjectsAnalysesTheRunAsItGrows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := testenv.LedgerWithPool(t)
	run := manifestRun(t, s)
	// Only AddObjects may analyse the partition here.
	_, err := pool.Exec(ctx, `ALTER TABLE `+pgx.Identifier{"verifications_" + strings.ReplaceAll(run.ID, "-", "")}.Sanitize()+
		` SET (autovacuum_enabled = false)`)
	require.NoError(t, err)
	add := func(from, to int) {
		t.Helper()
		objs := make([]reverify.ObjectRef, 0, to-from)
		for i := from; i < to; i++ {
			objs = append(objs, reverify.ObjectRef{Bucket: "b", Key: fmt.Sprintf("k%07d", i)})
		}
		n, err := s.AddObjects(ctx, run.ID, objs)
		require.NoError(t, err)
		require.EqualValues(t, to-from, n)
	}
	add(0, 1000)
	require.EqualValues(t, -1, reltuples(t, pool, run.ID), "a small run is left to autovacuum")
	add(1000, 9000)
	require.InDelta(t, 9000, reltuples(t, pool, run.ID), 100, "analysed on crossing 8192 rows")
	add(9000, 12000)
	require.InDelta(t, 9000, reltuples(t, pool, run.ID), 100, "not again before it doubles")
	add(12000, 17000)
	require.InDelta(t, 17000, reltuples(t, pool, run.ID), 100, "analysed again on crossing 16384")
}

// TestDeletingARunRowDropsItsPartitions: whoever deletes a run, its
// objects, calls, content claims and reviews go with it.
func TestDeletingARunRowDropsItsPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := testenv.LedgerWithPool(t)
	run := seedRun(t, s, 3, postgres.NewRun{})
	finish(t, s, run.ID, 0, 1, reverify.StatusScored, 20)
	require.NoError(t, s.RecordReview(ctx, postgres.Review{RunID: run.ID, Bucket: "b", Key: "k00000",
		Decision: reverify.DecisionSuspectedSpoof, Reviewer: "me"}))
	_, err := s.ClaimContent(ctx, postgres.Content{RunID: run.ID, Object: reverify.ObjectRef{Bucket: "b", Key: "k00001"},
		SHA256: sha256.Sum256([]byte("a selfie")), Size: 8})
	require.NoError(t, err)
	suffix := strings.ReplaceAll(run.ID, "-", "")
	tables := []string{"verifications_" + suffix, "api_calls_" + suffix, "run_contents_" + suffix}
	for _, table := range tables {
		require.True(t, relationExists(t, pool, table), table)
	}

	_, err = pool.Exec(ctx, `DELETE FROM runs WHERE id = $1::uuid`, run.ID)
	require.NoError(t, err)
	for _, table := range tables {
		require.False(t, relationExists(t, pool, table), table)
	}
	var reviews int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM reviews WHERE run_id = $1::uuid`, run.ID).Scan(&reviews))
	require.Zero(t, reviews)
	_, err = s.Run(ctx, run.ID)
	require.ErrorIs(t, err, postgres.ErrRunNotFound)
}

func reltuples(t *testing.T, pool *pgxpool.Pool, runID string) float64 {
	t.Helper()
	var n float64
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT reltuples FROM pg_class WHERE relname = $1`,
		"verifications_"+strings.ReplaceAll(runID, "-", "")).Scan(&n))
	return n
}

func relationExists(t *testing.T, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok))
	return ok
}

// TestDeleteRun: an ended run with results, calls and reviews is deleted
// whole; a run still being sent is refused and kept.
func TestDeleteRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := testenv.LedgerWithPool(t)
	other := seedRun(t, s, 2, postgres.NewRun{Name: "other"})
	finish(t, s, other.ID, 0, 1, reverify.StatusScored, 30)
	require.NoError(t, s.RecordReview(ctx, postgres.Review{RunID: other.ID, Bucket: "b", Key: "k00000",
		Decision: reverify.DecisionConfirmedLive, Reviewer: "me"}))

	run := seedRun(t, s, 5, postgres.NewRun{})
	finish(t, s, run.ID, 0, 2, reverify.StatusScored, 20)
	require.NoError(t, s.RecordReview(ctx, postgres.Review{RunID: run.ID, Bucket: "b", Key: "k00001",
		Decision: reverify.DecisionSuspectedSpoof, Reviewer: "me"}))
	_, err := s.DeleteRun(ctx, run.ID, reverify.Actor{Who: "me"})
	require.ErrorIs(t, err, postgres.ErrInvalidTransition, "a running run is cancelled first")

	_, _, err = s.CancelRun(ctx, run.ID, reverify.Actor{Who: "me"})
	require.NoError(t, err)
	total, err := s.DeleteRun(ctx, run.ID, reverify.Actor{Who: "me"})
	require.NoError(t, err)
	require.EqualValues(t, 5, total)
	_, err = s.Run(ctx, run.ID)
	require.ErrorIs(t, err, postgres.ErrRunNotFound)
	require.False(t, relationExists(t, pool, "verifications_"+strings.ReplaceAll(run.ID, "-", "")))

	// The other run, its review and the reviews' constraint are intact.
	c, err := s.RunWithCounts(ctx, other.ID)
	require.NoError(t, err)
	require.EqualValues(t, 1, c.ByStatus[reverify.StatusScored])
	var reviews int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM reviews WHERE run_id = $1::uuid`, other.ID).Scan(&reviews))
	require.Equal(t, 1, reviews)
	err = s.RecordReview(ctx, postgres.Review{RunID: other.ID, Bucket: "b", Key: "missing",
		Decision: reverify.DecisionConfirmedLive, Reviewer: "me"})
	require.Error(t, err, "a review of an object the ledger does not hold is refused")
}

// TestCancelPendingWalksUpFromTheMark: a large cancelled run is converted
// in batches from its high-water mark up, then the window below it; every
// pending row ends cancelled and the counters agree.
func TestCancelPendingWalksUpFromTheMark(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := testenv.LedgerWithPool(t)
	n := postgres.SyncCancelLimit + 5000
	run := seedRun(t, s, n, postgres.NewRun{})
	pending, err := s.NextPending(ctx, run.ID, 0, 300)
	require.NoError(t, err)
	require.NoError(t, s.MarkDispatched(ctx, run.ID, pending[len(pending)-1].Seq)) // a window of 300 in the queue
	finish(t, s, run.ID, 0, 100, reverify.StatusScored, 80)

	_, left, err := s.CancelRun(ctx, run.ID, reverify.Actor{Who: "me", Why: "wrong prefix"})
	require.NoError(t, err)
	require.EqualValues(t, n-100, left)
	var rounds int
	for {
		converted, err := s.CancelPending(ctx, 4000)
		require.NoError(t, err)
		if converted == 0 {
			break
		}
		rounds++
		require.LessOrEqual(t, converted, int64(4000))
	}
	require.Equal(t, 5, rounds, "four batches above the mark, then the window below it")

	c, err := s.RunWithCounts(ctx, run.ID)
	require.NoError(t, err)
	require.Zero(t, c.Pending)
	require.EqualValues(t, n-100, c.ByStatus[reverify.StatusCancelled])
	var rows, withReason int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE message = 'run cancelled: wrong prefix')
		FROM verifications WHERE run_id = $1::uuid AND status = 'cancelled'`, run.ID).Scan(&rows, &withReason))
	require.Equal(t, n-100, rows, "counters equal count(*)")
	require.Equal(t, rows, withReason)
}

// TestAddObjectsCountsOnlyNewKeys: a batch is copied straight in when its
// keys are new, and goes through the staging table when some are recorded
// already or repeat within it; concurrent writers of overlapping batches
// neither deadlock nor count a key twice.
func TestAddObjectsCountsOnlyNewKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	run := manifestRun(t, s)
	refs := func(keys ...int) []reverify.ObjectRef {
		out := make([]reverify.ObjectRef, len(keys))
		for i, k := range keys {
			out[i] = reverify.ObjectRef{Bucket: "b", Key: fmt.Sprintf("k%05d", k)}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		keys []int
		new  int64
	}{
		{"fresh keys, out of order", []int{3, 1, 2}, 3},
		{"some recorded already", []int{2, 3, 4, 5}, 2},
		{"a key twice in the batch", []int{6, 7, 6}, 2},
		{"nothing new", []int{1, 2, 3}, 0},
	} {
		n, err := s.AddObjects(ctx, run.ID, refs(tc.keys...))
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.new, n, tc.name)
	}

	// Two writers, each batch holding the other's keys in reverse order.
	var up, down []int
	for k := 100; k < 3100; k++ {
		up = append(up, k)
		down = append(down, 3199-k+100)
	}
	var g errgroup.Group
	var added [2]int64
	for i, keys := range [][]int{up, down} {
		g.Go(func() error {
			n, err := s.AddObjects(ctx, run.ID, refs(keys...))
			added[i] = n
			return err
		})
	}
	require.NoError(t, g.Wait())
	require.EqualValues(t, 3100, added[0]+added[1], "keys 100..3199, each once")
	c, err := s.RunWithCounts(ctx, run.ID)
	require.NoError(t, err)
	require.EqualValues(t, 7+3100, c.Pending)
	require.EqualValues(t, 7+3100, c.Run.Total)
}

// TestFeederNeverPassesABatchStillBeingWritten: four writers record a run
// while a feeder takes its next objects and raises the mark, as the fleet's
// feeder does during a large enqueue. Every object is handed out exactly
// once, and none turns up at or below the mark without having been handed
// out (before reserved blocks, a batch committed after a later one landed
// behind the mark: counted as sent, never sent).
func TestFeederNeverPassesABatchStillBeingWritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	run := manifestRun(t, s)
	const writers, batches, size = 4, 40, 250
	var g errgroup.Group
	for w := range writers {
		g.Go(func() error {
			for b := range batches {
				objs := make([]reverify.ObjectRef, size)
				for i := range objs {
					objs[i] = reverify.ObjectRef{Bucket: "b", Key: fmt.Sprintf("w%d/%03d/%04d", w, b, i)}
				}
				if _, err := s.AddObjects(ctx, run.ID, objs); err != nil {
					return err
				}
			}
			return nil
		})
	}
	ingested := make(chan error, 1)
	go func() { ingested <- g.Wait() }()

	sent := map[int64]bool{}
	var mark int64
	feed := func() {
		t.Helper()
		next, err := s.NextPending(ctx, run.ID, mark, 300)
		require.NoError(t, err)
		for _, p := range next {
			require.False(t, sent[p.Seq], "seq %d handed out twice", p.Seq)
			sent[p.Seq] = true
		}
		if len(next) > 0 {
			mark = next[len(next)-1].Seq
			require.NoError(t, s.MarkDispatched(ctx, run.ID, mark))
		}
		below, err := s.Dispatched(ctx, run.ID, mark)
		require.NoError(t, err)
		for _, p := range below {
			require.True(t, sent[p.Seq], "seq %d appeared at or below the mark %d without being handed out", p.Seq, mark)
		}
	}
	for done := false; !done; {
		select {
		case err := <-ingested:
			require.NoError(t, err)
			done = true
		default:
		}
		feed()
	}
	feed()
	for len(sent) < writers*batches*size {
		before := len(sent)
		feed()
		require.Greater(t, len(sent), before, "objects left behind: %d of %d handed out", len(sent), writers*batches*size)
	}
	require.Len(t, sent, writers*batches*size)
}

// TestOpenBlockHoldsDispatchBack: a block reserved by a writer that has
// not committed holds back every later object of the run, until the block
// closes or is taken as abandoned.
func TestOpenBlockHoldsDispatchBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := testenv.LedgerWithPool(t)
	run := manifestRun(t, s)
	add := func(prefix string) {
		t.Helper()
		objs := make([]reverify.ObjectRef, 10)
		for i := range objs {
			objs[i] = reverify.ObjectRef{Bucket: "b", Key: fmt.Sprintf("%s%02d", prefix, i)}
		}
		_, err := s.AddObjects(ctx, run.ID, objs)
		require.NoError(t, err)
	}
	pending := func() int {
		t.Helper()
		next, err := s.NextPending(ctx, run.ID, 0, 1000)
		require.NoError(t, err)
		return len(next)
	}
	add("a")
	// A writer reserved the next 10 numbers and is still writing them.
	var lo int64
	require.NoError(t, pool.QueryRow(ctx, `WITH r AS (UPDATE runs SET next_seq = next_seq + 10 WHERE id = $1::uuid RETURNING next_seq - 10 AS lo)
		INSERT INTO run_seq_blocks (run_id, lo) SELECT $1::uuid, lo FROM r RETURNING lo`, run.ID).Scan(&lo))
	add("c")
	require.Equal(t, 10, pending(), "the batch after the open block waits for it")
	_, err := pool.Exec(ctx, `UPDATE run_seq_blocks SET reserved_at = now() - make_interval(secs => $2)
		WHERE run_id = $1::uuid`, run.ID, (postgres.AbandonedBlock + time.Minute).Seconds())
	require.NoError(t, err)
	require.Equal(t, 20, pending(), "an abandoned block holds nothing back")

	// A run that does not exist has no numbers to give.
	_, err = s.AddObjects(ctx, "6f1d2c3b-0000-4000-8000-000000000000", []reverify.ObjectRef{{Bucket: "b", Key: "x"}})
	require.ErrorIs(t, err, postgres.ErrRunNotFound)
	var open int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM run_seq_blocks WHERE run_id = $1::uuid AND lo <> $2`, run.ID, lo).Scan(&open))
	require.Zero(t, open, "committed batches closed their blocks")
}

// manifestRun creates an empty run of a manifest, named for the test.
func manifestRun(t *testing.T, s *postgres.Store) reverify.Run {
	t.Helper()
	run, err := s.CreateRun(context.Background(), postgres.NewRun{Name: t.Name(), Queue: "q",
		Source: reverify.Source{Kind: reverify.SourceManifest, Manifest: "m"}})
	require.NoError(t, err)
	return run
}
