package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

// TestAPICallsAndBillableAnswers: the two counts of calls mean the same
// thing in Progress, run_summary and api_usage_daily. API calls made are
// every row of api_calls; billable answers are those with a transaction
// ID, whatever the outcome (a malformed answer that names its transaction
// was billed too).
func TestAPICallsAndBillableAnswers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db := testenv.LedgerWithPool(t)
	run := seedRun(t, s, 3, postgres.NewRun{})
	obj := func(i int) reverify.ObjectRef {
		return reverify.ObjectRef{Bucket: "b", Key: []string{"k00000", "k00001", "k00002"}[i]}
	}
	call := func(i int, c postgres.Call, final *postgres.Result) {
		t.Helper()
		id, st, err := s.BeginCall(ctx, run.ID, obj(i), time.Minute)
		require.NoError(t, err)
		require.Equal(t, postgres.CallRecorded, st)
		if c.Outcome == reverify.OutcomeInFlight {
			return
		}
		c.ID = id
		require.NoError(t, s.FinishCall(ctx, c, run.ID, obj(i), final))
	}
	score := 91.0
	call(0, postgres.Call{Outcome: reverify.OutcomeScored, TransactionID: "t0", HTTPStatus: 200, Score: &score},
		&postgres.Result{RunID: run.ID, Object: obj(0), Status: reverify.StatusScored, Score: &score, TransactionID: "t0"})
	call(1, postgres.Call{Outcome: reverify.OutcomeTransient, TransactionID: "t1", HTTPStatus: 200, Message: "malformed answer"}, nil)
	call(1, postgres.Call{Outcome: reverify.OutcomeRejected, TransactionID: "t2", HTTPStatus: 400, ErrorCode: 1017},
		&postgres.Result{RunID: run.ID, Object: obj(1), Status: reverify.StatusRejected, TransactionID: "t2", ErrorCode: 1017})
	call(2, postgres.Call{Outcome: reverify.OutcomeRateLimited, HTTPStatus: 429}, nil)
	call(2, postgres.Call{Outcome: reverify.OutcomeInFlight}, nil)

	p, err := s.Progress(ctx, run.ID)
	require.NoError(t, err)
	require.EqualValues(t, 5, p.APICalls, "every call made, 429 and in flight included")
	require.EqualValues(t, 3, p.BillableAnswers, "answers with a transaction ID")

	var calls, billable int64
	require.NoError(t, db.QueryRow(ctx, `SELECT api_calls, billable_answers FROM run_summary WHERE run_id = $1`, run.ID).
		Scan(&calls, &billable))
	require.Equal(t, []int64{5, 3}, []int64{calls, billable}, "run_summary")
	var unknown int64
	require.NoError(t, db.QueryRow(ctx, `SELECT sum(api_calls), sum(billable_answers), sum(outcome_unknown) FROM api_usage_daily`).
		Scan(&calls, &billable, &unknown))
	require.Equal(t, []int64{5, 3, 1}, []int64{calls, billable, unknown}, "api_usage_daily")

	age, err := s.OldestCallInFlight(ctx)
	require.NoError(t, err)
	require.Positive(t, age)
	require.Less(t, age, time.Minute)
	_, err = db.Exec(ctx, `UPDATE api_calls SET called_at = now() - interval '10 minutes' WHERE outcome = 'in_flight'`)
	require.NoError(t, err)
	age, err = s.OldestCallInFlight(ctx)
	require.NoError(t, err)
	require.InDelta(t, 10*time.Minute, age, float64(time.Minute))
	_, err = db.Exec(ctx, `UPDATE api_calls SET outcome = 'transient' WHERE outcome = 'in_flight'`)
	require.NoError(t, err)
	age, err = s.OldestCallInFlight(ctx)
	require.NoError(t, err)
	require.Zero(t, age, "no call in flight")
	p, err = s.Progress(ctx, run.ID)
	require.NoError(t, err)
	require.EqualValues(t, 3, p.BillableAnswers, "an update without a transaction ID bills nothing")

	byStatus, err := s.RunsByStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, map[reverify.RunStatus]int64{run.Status: 1}, byStatus)
}
