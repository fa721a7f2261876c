package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"reverify"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify/storage/postgres"
)

// reviewRun seeds a run of ten objects: k00000-k00004 scored 5, 12.5, 55,
// 91 and 100, k00005 rejected, k00006 not found, k00007 failed, k00008
// and k00009 pending.
func reviewRun(t *testing.T, s *postgres.Store) reverify.Run {
	t.Helper()
	run := seedRun(t, s, 10, postgres.NewRun{})
	for i, sc := range []float64{5, 12.5, 55, 91, 100} {
		finish(t, s, run.ID, i, i+1, reverify.StatusScored, sc)
	}
	ctx := context.Background()
	require.NoError(t, s.RecordResult(ctx, postgres.Result{RunID: run.ID, Object: reverify.ObjectRef{Bucket: "b", Key: "k00005"},
		Status: reverify.StatusRejected, ErrorCode: 1017, TransactionID: "tx-5"}))
	finish(t, s, run.ID, 6, 7, reverify.StatusNotFound, 0)
	finish(t, s, run.ID, 7, 8, reverify.StatusFailed, 0)
	return run
}

func TestRunsWithCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	run := reviewRun(t, s)
	other := seedRun(t, s, 3, postgres.NewRun{Name: "other"})

	want := map[reverify.Status]int64{reverify.StatusScored: 5, reverify.StatusRejected: 1, reverify.StatusNotFound: 1,
		reverify.StatusFailed: 1, reverify.StatusPending: 2}
	c, err := s.RunWithCounts(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, run.ID, c.Run.ID)
	require.Equal(t, want, c.ByStatus)
	require.EqualValues(t, 8, c.Done)
	require.EqualValues(t, 2, c.Pending)

	all, err := s.RunsWithCounts(ctx, postgres.RunFilter{Limit: 10})
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, other.ID, all[0].Run.ID, "newest first")
	require.Equal(t, map[reverify.Status]int64{reverify.StatusPending: 3}, all[0].ByStatus)
	require.Equal(t, want, all[1].ByStatus)

	p, err := s.Progress(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, c.ByStatus, p.ByStatus, "Progress counts as RunWithCounts does")
	require.Equal(t, c.Done, p.Done)

	_, err = s.RunWithCounts(ctx, "00000000-0000-4000-8000-000000000000")
	require.ErrorIs(t, err, postgres.ErrRunNotFound)
}

// TestScoreHistogram: the bands are the score_histogram view's.
func TestScoreHistogram(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	run := reviewRun(t, s)

	h, err := s.ScoreHistogram(ctx, run.ID)
	require.NoError(t, err)
	view, err := s.View(ctx, "score_histogram", run.ID, 0)
	require.NoError(t, err)
	var want [10]int64
	for _, row := range view.Rows {
		want[row[1].(int32)/10] += row[3].(int64)
	}
	require.Equal(t, want, h)
	require.Equal(t, [10]int64{1, 1, 0, 0, 0, 1, 0, 0, 0, 2}, h, "100 is in the top band")

	empty, err := s.ScoreHistogram(ctx, "00000000-0000-4000-8000-000000000000")
	require.NoError(t, err)
	require.Equal(t, [10]int64{}, empty)
}

func TestReviews(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	run := reviewRun(t, s)

	failures, err := s.Failures(ctx, run.ID, 10)
	require.NoError(t, err)
	var keys []string
	for _, f := range failures {
		keys = append(keys, f.Key)
		require.NotNil(t, f.CompletedAt)
		require.Empty(t, f.Decision)
	}
	require.ElementsMatch(t, []string{"k00006", "k00007"}, keys)

	queue, err := s.ReviewQueue(ctx, run.ID, 50, 10)
	require.NoError(t, err)
	keys = nil
	for _, it := range queue {
		keys = append(keys, it.Key)
	}
	require.Equal(t, []string{"k00005", "k00000", "k00001"}, keys, "refusals first, then the lowest scores")
	require.Equal(t, reverify.StatusRejected, queue[0].Status)
	require.Equal(t, 1017, queue[0].ErrorCode)
	require.Equal(t, "tx-5", queue[0].TransactionID)
	require.InDelta(t, 5, *queue[1].Score, 0.001)
	queue, err = s.ReviewQueue(ctx, run.ID, 60, 10)
	require.NoError(t, err)
	require.Len(t, queue, 4, "the threshold is the caller's")

	low := reverify.ObjectRef{Bucket: "b", Key: "k00000"}
	require.NoError(t, s.RecordReview(ctx, postgres.Review{RunID: run.ID, Bucket: low.Bucket, Key: low.Key,
		Decision: reverify.DecisionNeedsRecheck, Note: "blurry", Reviewer: "ann"}))
	require.NoError(t, s.RecordReview(ctx, postgres.Review{RunID: run.ID, Bucket: low.Bucket, Key: low.Key,
		Decision: reverify.DecisionSuspectedSpoof, Note: "photo of a screen", Reviewer: "bob"}))
	err = s.RecordReview(ctx, postgres.Review{RunID: run.ID, Bucket: low.Bucket, Key: low.Key, Decision: "delete", Reviewer: "eve"})
	require.Error(t, err)
	require.False(t, errors.Is(err, postgres.ErrNotFound), "an unknown decision is no missing object")

	it, reviews, err := s.Item(ctx, run.ID, low)
	require.NoError(t, err)
	require.Equal(t, run.ID, it.RunID)
	require.Equal(t, reverify.StatusScored, it.Status)
	require.Equal(t, reverify.DecisionSuspectedSpoof, it.Decision, "the newest decision counts")
	require.Equal(t, "bob", it.Reviewer)
	require.Len(t, reviews, 2)
	require.Equal(t, "photo of a screen", reviews[0].Note)
	require.Equal(t, "ann", reviews[1].Reviewer)
	require.False(t, reviews[1].ReviewedAt.IsZero())

	queue, err = s.ReviewQueue(ctx, run.ID, 50, 10)
	require.NoError(t, err)
	keys = nil
	for _, it := range queue {
		keys = append(keys, it.Key)
	}
	require.Equal(t, []string{"k00005", "k00000", "k00001"}, keys, "the decided stay in their place")
	require.Equal(t, reverify.DecisionSuspectedSpoof, queue[1].Decision)
	require.Equal(t, "bob", queue[1].Reviewer)
	require.Equal(t, reverify.QueueDecided, queue[1].QueueState)
	require.Empty(t, queue[0].Decision)
	require.Equal(t, reverify.QueueToReview, queue[0].QueueState)

	_, _, err = s.Item(ctx, run.ID, reverify.ObjectRef{Bucket: "b", Key: "not-in-run"})
	require.ErrorIs(t, err, postgres.ErrObjectNotFound)
	_, _, err = s.Item(ctx, "00000000-0000-4000-8000-000000000000", low)
	require.ErrorIs(t, err, postgres.ErrNotFound)
	err = s.RecordReview(ctx, postgres.Review{RunID: "00000000-0000-4000-8000-000000000000", Bucket: low.Bucket, Key: low.Key,
		Decision: reverify.DecisionConfirmedLive, Reviewer: "ann"})
	require.ErrorIs(t, err, postgres.ErrNotFound)
}

// TestKeysetPaging: both paged reads see every row once, in key order,
// across page boundaries, and stop at fn's first error.
func TestKeysetPaging(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	n := postgres.KeysetPage + 2
	run := seedRun(t, s, n, postgres.NewRun{})
	finish(t, s, run.ID, 0, 3, reverify.StatusScored, 70)

	var pending []string
	require.NoError(t, s.PendingObjects(ctx, run.ID, func(o reverify.ObjectRef) error {
		pending = append(pending, o.Key)
		return nil
	}))
	require.Len(t, pending, n-3)
	require.Equal(t, fmt.Sprintf("k%05d", 3), pending[0])
	require.Equal(t, fmt.Sprintf("k%05d", n-1), pending[len(pending)-1])
	require.IsIncreasing(t, pending)

	var results []postgres.ObjectResult
	require.NoError(t, s.ObjectResults(ctx, run.ID, func(o postgres.ObjectResult) error {
		results = append(results, o)
		return nil
	}))
	require.Len(t, results, n)
	require.Equal(t, reverify.StatusScored, results[0].Status)
	require.InDelta(t, 70, *results[0].Score, 0.001)
	require.Equal(t, reverify.StatusPending, results[n-1].Status)
	require.Nil(t, results[n-1].Score)
	for i := 1; i < len(results); i++ {
		require.Less(t, results[i-1].Key, results[i].Key)
	}

	stop := errors.New("stop")
	seen := 0
	err := s.ObjectResults(ctx, run.ID, func(postgres.ObjectResult) error {
		seen++
		return stop
	})
	require.Equal(t, stop, err, "fn's error is returned as it is")
	require.Equal(t, 1, seen)
}
