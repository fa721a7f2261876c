package postgres_test

import (
	"context"
	"reverify"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

func score(f float64) *float64 { return &f }

// oneObject returns a ledger with a run of one pending object.
func oneObject(t *testing.T) (*postgres.Store, reverify.Run, reverify.ObjectRef) {
	t.Helper()
	s := newStore(t)
	run, obj := addOneObject(t, s)
	return s, run, obj
}

// addOneObject creates a run of one pending object in s.
func addOneObject(t *testing.T, s *postgres.Store) (reverify.Run, reverify.ObjectRef) {
	t.Helper()
	run, err := s.CreateRun(context.Background(), postgres.NewRun{Name: t.Name(), Queue: "q"})
	require.NoError(t, err)
	obj := reverify.ObjectRef{Bucket: "b", Key: "k.jpg"}
	_, err = s.AddObjects(context.Background(), run.ID, []reverify.ObjectRef{obj})
	require.NoError(t, err)
	return run, obj
}

// TestResultsNeverGetWorse: a terminal row is only replaced by a better
// one, so retried and duplicated tasks are harmless.
func TestResultsNeverGetWorse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, run, obj := oneObject(t)

	steps := []struct {
		write postgres.Result
		want  reverify.Status
	}{
		{postgres.Result{Status: reverify.StatusFailed, Message: "retries exhausted"}, reverify.StatusFailed},
		{postgres.Result{Status: reverify.StatusScored, Score: score(87.5), TransactionID: "tx1"}, reverify.StatusScored},
		{postgres.Result{Status: reverify.StatusFailed, Message: "late duplicate"}, reverify.StatusScored},
		{postgres.Result{Status: reverify.StatusRejected, ErrorCode: 1017, TransactionID: "tx2"}, reverify.StatusScored},
		{postgres.Result{Status: reverify.StatusScored, Score: score(12), TransactionID: "tx3"}, reverify.StatusScored},
	}
	for i, st := range steps {
		st.write.RunID, st.write.Object = run.ID, obj
		require.NoError(t, s.RecordResult(ctx, st.write))
		got, err := s.ResultOf(ctx, run.ID, obj)
		require.NoError(t, err)
		require.Equal(t, st.want, got.Status, "step %d", i)
	}
	got, err := s.ResultOf(ctx, run.ID, obj)
	require.NoError(t, err)
	require.Equal(t, "tx1", got.TransactionID, "the first score stands")
	require.InDelta(t, 87.5, *got.Score, 0.001)
}

// TestBeginCall: a call is recorded before it is made; none is made for a
// finished object, or while an earlier call has no answer: one that may
// still be in flight, or one that is lost until the caller replaces it.
func TestBeginCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db := testenv.LedgerWithPool(t)
	run, obj := addOneObject(t, s)

	id, st, err := s.BeginCall(ctx, run.ID, obj, time.Minute)
	require.NoError(t, err)
	require.Equal(t, postgres.CallRecorded, st)
	require.Positive(t, id)

	// The answer never came (the worker died): a second call waits.
	_, st, err = s.BeginCall(ctx, run.ID, obj, time.Minute)
	require.NoError(t, err)
	require.Equal(t, postgres.CallInFlight, st)
	_, st, err = s.ReplaceLostCall(ctx, run.ID, obj, time.Minute)
	require.NoError(t, err)
	require.Equal(t, postgres.CallInFlight, st, "a call that may still be in flight is not replaced")
	// Once the call must be over, it is lost; its answer may be kept
	// elsewhere, so no new call is recorded until the caller replaces it.
	_, st, err = s.BeginCall(ctx, run.ID, obj, 0)
	require.NoError(t, err)
	require.Equal(t, postgres.CallLost, st)
	id2, st, err := s.ReplaceLostCall(ctx, run.ID, obj, 0)
	require.NoError(t, err)
	require.Equal(t, postgres.CallRecorded, st)
	require.NotEqual(t, id, id2)
	_, st, err = s.BeginCall(ctx, run.ID, obj, time.Minute)
	require.NoError(t, err)
	require.Equal(t, postgres.CallInFlight, st, "the replacement is in flight")

	sc := 55.0
	final := &postgres.Result{RunID: run.ID, Object: obj, Status: reverify.StatusScored, Score: &sc, TransactionID: "tx"}
	require.NoError(t, s.FinishCall(ctx, postgres.Call{ID: id2, Outcome: reverify.OutcomeScored, TransactionID: "tx",
		HTTPStatus: 200, Score: &sc, Latency: 120 * time.Millisecond}, run.ID, obj, final))
	_, st, err = s.BeginCall(ctx, run.ID, obj, 0)
	require.NoError(t, err)
	require.Equal(t, postgres.AlreadyDone, st)
	_, st, err = s.ReplaceLostCall(ctx, run.ID, obj, 0)
	require.NoError(t, err)
	require.Equal(t, postgres.AlreadyDone, st, "the lost call stays unanswered, but the object is done")

	var attempts, calls, unknown int
	require.NoError(t, db.QueryRow(ctx, `SELECT attempts FROM verifications WHERE run_id = $1`, run.ID).Scan(&attempts))
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE outcome = 'in_flight') FROM api_calls WHERE run_id = $1`,
		run.ID).Scan(&calls, &unknown))
	require.Equal(t, 2, attempts)
	require.Equal(t, 2, calls)
	require.Equal(t, 1, unknown, "the lost call stays visible as in_flight")
}

func TestUnknownRunIsClassified(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	obj := reverify.ObjectRef{Bucket: "b", Key: "users/john-smith-1977/selfie.jpg"}
	err := s.RecordResult(context.Background(), postgres.Result{RunID: "00000000-0000-0000-0000-000000000000",
		Object: obj, Status: reverify.StatusFailed})
	require.ErrorIs(t, err, postgres.ErrUnknownRun)
	require.NotContains(t, err.Error(), "john-smith", "the ledger's errors name objects by key hash")
	require.Contains(t, err.Error(), "key_hash="+reverify.KeyHash(obj.Bucket, obj.Key))
	_, _, err = s.BeginCall(context.Background(), "00000000-0000-0000-0000-000000000000", obj, time.Minute)
	require.ErrorIs(t, err, postgres.ErrUnknownRun)
}

// TestAddObjectsSkipsDuplicates: a key twice in one batch, or again in a
// later batch, is one row, counted once.
func TestAddObjectsSkipsDuplicates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	run, err := s.CreateRun(ctx, postgres.NewRun{Name: "r", Queue: "q"})
	require.NoError(t, err)
	a, b := reverify.ObjectRef{Bucket: "b", Key: "a.jpg"}, reverify.ObjectRef{Bucket: "b", Key: "b c+%.jpg"}
	added, err := s.AddObjects(ctx, run.ID, []reverify.ObjectRef{a, b, a})
	require.NoError(t, err)
	require.EqualValues(t, 2, added)
	added, err = s.AddObjects(ctx, run.ID, []reverify.ObjectRef{b, {Bucket: "b", Key: "new.jpg"}})
	require.NoError(t, err)
	require.EqualValues(t, 1, added)
	got, err := s.Run(ctx, run.ID)
	require.NoError(t, err)
	require.EqualValues(t, 3, got.Total)
}
