package postgres_test

import (
	"context"
	"reverify"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

// TestBacklogCountsRunsBeingSent checks Backlog against the backlog view
// (what KEDA reads): pending objects of enqueuing and running runs only,
// by priority, summing to the view's figure.
func TestBacklogCountsRunsBeingSent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db := testenv.LedgerWithPool(t)
	view := func() int64 {
		t.Helper()
		var n int64
		require.NoError(t, db.QueryRow(ctx, `SELECT pending_objects FROM backlog`).Scan(&n))
		return n
	}

	got, err := s.Backlog(ctx)
	require.NoError(t, err)
	require.Empty(t, got)
	require.Zero(t, view())

	me := reverify.Actor{Who: "alice@ops"}
	high := seedRun(t, s, 5, postgres.NewRun{Name: "high", Priority: reverify.PriorityHigh})
	finish(t, s, high.ID, 0, 2, reverify.StatusScored, 80)
	seedRun(t, s, 4, postgres.NewRun{Name: "normal"})
	paused := seedRun(t, s, 3, postgres.NewRun{Name: "paused", Priority: reverify.PriorityLow})
	_, err = s.PauseRun(ctx, paused.ID, me)
	require.NoError(t, err)
	cancelled := seedRun(t, s, 6, postgres.NewRun{Name: "cancelled"})
	_, _, err = s.CancelRun(ctx, cancelled.ID, me)
	require.NoError(t, err)
	held, err := s.CreateRun(ctx, postgres.NewRun{Name: "held", Queue: "q", Status: reverify.RunAwaitingConfirmation,
		Source: reverify.Source{Kind: reverify.SourceManifest, Manifest: "test"}})
	require.NoError(t, err)
	_, err = s.AddObjects(ctx, held.ID, []reverify.ObjectRef{{Bucket: "b", Key: "x"}})
	require.NoError(t, err)
	enqueuing, err := s.CreateRun(ctx, postgres.NewRun{Name: "enqueuing", Queue: "q", Priority: reverify.PriorityLow,
		Source: reverify.Source{Kind: reverify.SourceManifest, Manifest: "test"}})
	require.NoError(t, err)
	_, err = s.AddObjects(ctx, enqueuing.ID, []reverify.ObjectRef{{Bucket: "b", Key: "y"}, {Bucket: "b", Key: "z"}})
	require.NoError(t, err)

	got, err = s.Backlog(ctx)
	require.NoError(t, err)
	require.Equal(t, map[reverify.Priority]int64{
		reverify.PriorityHigh:   3, // 5 objects, 2 done
		reverify.PriorityNormal: 4, // the cancelled run's objects are no work
		reverify.PriorityLow:    2, // enqueuing counts, paused does not
	}, got)
	require.EqualValues(t, 9, view(), "Backlog splits the view KEDA reads")

	_, err = s.ResumeRun(ctx, paused.ID, me)
	require.NoError(t, err)
	got, err = s.Backlog(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 5, got[reverify.PriorityLow])
	require.EqualValues(t, 12, view())
}

func TestBacklogFailsWhenTheLedgerIsClosed(t *testing.T) {
	t.Parallel()
	s := testenv.Ledger(t)
	s.Close()
	_, err := s.Backlog(context.Background())
	require.ErrorIs(t, err, postgres.ErrUnavailable)
}
