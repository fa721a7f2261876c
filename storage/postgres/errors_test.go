package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reverify"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"reverify/storage/postgres"
)

// TestClassify: driver errors become the ledger's errors in one place.
func TestClassify(t *testing.T) {
	t.Parallel()
	pg := func(code, table string) error {
		return fmt.Errorf("record result: %w", &pgconn.PgError{Code: code, TableName: table})
	}
	tests := []struct {
		name string
		err  error
		want error // nil: returned as it is
	}{
		{"foreign key of a row's run", pg(pgerrcode.ForeignKeyViolation, "verifications"), postgres.ErrUnknownRun},
		{"foreign key of a call's run", pg(pgerrcode.ForeignKeyViolation, "api_calls"), postgres.ErrUnknownRun},
		{"foreign key of a review's object", pg(pgerrcode.ForeignKeyViolation, "reviews"), postgres.ErrObjectNotFound},
		{"connection failure", pg(pgerrcode.ConnectionFailure, ""), postgres.ErrUnavailable},
		{"admin shutdown", pg(pgerrcode.AdminShutdown, ""), postgres.ErrUnavailable},
		{"too many connections", pg(pgerrcode.TooManyConnections, ""), postgres.ErrUnavailable},
		{"serialization failure", pg(pgerrcode.SerializationFailure, ""), postgres.ErrUnavailable},
		{"deadlock", pg(pgerrcode.DeadlockDetected, ""), postgres.ErrUnavailable},
		{"lock timeout", pg(pgerrcode.LockNotAvailable, ""), postgres.ErrUnavailable},
		{"no server answer", fmt.Errorf("send batch: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), postgres.ErrUnavailable},
		{"unique violation", pg(pgerrcode.UniqueViolation, "runs"), nil},
		{"check violation", pg(pgerrcode.CheckViolation, "verifications"), nil},
		{"cancelled", fmt.Errorf("load run: %w", context.Canceled), nil},
		{"deadline", fmt.Errorf("load run: %w", context.DeadlineExceeded), nil},
		{"the ledger's own", fmt.Errorf("run x: %w", postgres.ErrRunNotFound), nil},
	}
	for _, tt := range tests {
		got := postgres.Classify(tt.err)
		require.ErrorIs(t, got, tt.err, "%s: the cause is kept", tt.name)
		if tt.want == nil {
			require.Equal(t, tt.err, got, tt.name)
			continue
		}
		require.ErrorIs(t, got, tt.want, tt.name)
		for _, other := range []error{postgres.ErrUnknownRun, postgres.ErrObjectNotFound, postgres.ErrUnavailable} {
			if other != tt.want {
				require.NotErrorIs(t, got, other, tt.name)
			}
		}
	}
	require.NoError(t, postgres.Classify(nil))
}

// TestClassifiedFromTheServer: real driver errors, not only hand-made
// ones, are classified.
func TestClassifiedFromTheServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	run, obj := addOneObject(t, s)

	err := s.RecordResult(ctx, postgres.Result{RunID: "00000000-0000-4000-8000-000000000000", Object: obj, Status: reverify.StatusFailed})
	require.ErrorIs(t, err, postgres.ErrUnknownRun, "a foreign-key violation on the run")
	err = s.RecordReview(ctx, postgres.Review{RunID: run.ID, Bucket: "b", Key: "not-in-run.jpg",
		Decision: reverify.DecisionConfirmedLive, Reviewer: "ann"})
	require.ErrorIs(t, err, postgres.ErrObjectNotFound, "a foreign-key violation on the reviewed object")
	require.ErrorIs(t, err, postgres.ErrNotFound)

	s.Close()
	_, err = s.RunState(ctx, run.ID)
	require.ErrorIs(t, err, postgres.ErrUnavailable, "no connection")
}

// TestMalformedRunID: an ID that is no UUID names no run; it is never
// sent to PostgreSQL to fail there.
func TestMalformedRunID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	me := reverify.Actor{Who: "alice"}
	for _, id := range []string{"", "not-a-uuid", "1", "00000000-0000-0000-0000-00000000000", "00000000-0000-0000-0000-00000000000g",
		"00000000000000000000000000000000", "{00000000-0000-0000-0000-000000000000}", "x' OR '1'='1"} {
		_, err := s.Run(ctx, id)
		require.ErrorIs(t, err, postgres.ErrRunNotFound, "Run(%q)", id)
		_, _, err = s.CancelRun(ctx, id, me)
		require.ErrorIs(t, err, postgres.ErrRunNotFound, "CancelRun(%q)", id)
		_, err = s.History(ctx, id)
		require.ErrorIs(t, err, postgres.ErrRunNotFound, "History(%q)", id)
		_, err = s.Progress(ctx, id)
		require.ErrorIs(t, err, postgres.ErrRunNotFound, "Progress(%q)", id)
		_, err = s.PauseRun(ctx, id, me)
		require.ErrorIs(t, err, postgres.ErrRunNotFound, "PauseRun(%q)", id)
		_, err = s.ResumeRun(ctx, id, me)
		require.ErrorIs(t, err, postgres.ErrRunNotFound, "ResumeRun(%q)", id)
		_, _, err = s.RetryObjects(ctx, id, []reverify.Status{reverify.StatusFailed}, me)
		require.ErrorIs(t, err, postgres.ErrRunNotFound, "RetryObjects(%q)", id)
		require.ErrorIs(t, s.StartRun(ctx, id), postgres.ErrRunNotFound, "StartRun(%q)", id)
		require.ErrorIs(t, s.SavePlanToken(ctx, id, "t"), postgres.ErrRunNotFound, "SavePlanToken(%q)", id)
		require.ErrorIs(t, s.FinishPlan(ctx, id), postgres.ErrRunNotFound, "FinishPlan(%q)", id)
		_, err = s.View(ctx, "run_summary", id, 0)
		if id == "" {
			require.NoError(t, err, "no run: every run")
		} else {
			require.ErrorIs(t, err, postgres.ErrRunNotFound, "View(%q)", id)
		}
		require.ErrorIs(t, s.ObjectResults(ctx, id, func(postgres.ObjectResult) error { return nil }), postgres.ErrRunNotFound)
		require.ErrorIs(t, s.PendingObjects(ctx, id, func(reverify.ObjectRef) error { return nil }), postgres.ErrRunNotFound)
		_, err = s.RunWithCounts(ctx, id)
		require.ErrorIs(t, err, postgres.ErrNotFound, "RunWithCounts(%q)", id)
		_, _, err = s.Item(ctx, id, reverify.ObjectRef{Bucket: "b", Key: "k"})
		require.ErrorIs(t, err, postgres.ErrNotFound, "Item(%q)", id)
		err = s.RecordReview(ctx, postgres.Review{RunID: id, Bucket: "b", Key: "k", Decision: reverify.DecisionNeedsRecheck, Reviewer: "ann"})
		require.ErrorIs(t, err, postgres.ErrNotFound, "RecordReview(%q)", id)
		st, err := s.RunState(ctx, id)
		require.NoError(t, err)
		require.Empty(t, st, "RunState(%q): no such run", id)
	}
}
