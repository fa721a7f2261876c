package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

func cli(who string) reverify.Actor {
	return reverify.Actor{Who: who, Source: reverify.AuditFromCLI, From: "host-a"}
}

func TestAuditLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	s, db := testenv.LedgerWithPool(t)
	ctx := context.Background()
	run := seedRun(t, s, 1, postgres.NewRun{Actor: cli("alice")})
	entries, err := s.AuditLog(ctx, postgres.AuditFilter{RunID: run.ID})
	require.NoError(t, err)
	require.Len(t, entries, 1)

	for name, stmt := range map[string]string{
		"update":   `UPDATE audit_log SET actor = 'mallory'`,
		"delete":   `DELETE FROM audit_log`,
		"truncate": `TRUNCATE audit_log`,
	} {
		_, err := db.Exec(ctx, stmt)
		require.ErrorContains(t, err, "audit_log is append-only", name)
	}
	again, err := s.AuditLog(ctx, postgres.AuditFilter{RunID: run.ID})
	require.NoError(t, err)
	require.Equal(t, entries, again)
}

func TestRunActionsAreAudited(t *testing.T) {
	t.Parallel()
	s, db := testenv.LedgerWithPool(t)
	ctx := context.Background()
	alice, bob := cli("alice"), reverify.Actor{Who: "bob", Why: "too slow", Source: reverify.AuditFromCLI, From: "host-b"}

	run := seedRun(t, s, 3, postgres.NewRun{Actor: alice})
	_, err := s.PauseRun(ctx, run.ID, bob)
	require.NoError(t, err)
	_, err = s.ResumeRun(ctx, run.ID, alice)
	require.NoError(t, err)
	_, err = s.SetPriority(ctx, run.ID, reverify.PriorityHigh, "q-high", alice)
	require.NoError(t, err)
	_, _, err = s.CancelRun(ctx, run.ID, bob)
	require.NoError(t, err)
	_, _, err = s.RetryObjects(ctx, run.ID, []reverify.Status{reverify.StatusCancelled}, alice)
	require.NoError(t, err)
	// The system's own steps are in the status history, not the audit log.
	_, _, err = s.FailRun(ctx, run.ID, reverify.Actor{Who: "reverify-worker", Why: "threshold"})
	require.NoError(t, err)
	_, err = s.DeleteRun(ctx, run.ID, bob)
	require.NoError(t, err)

	all, err := s.AuditLog(ctx, postgres.AuditFilter{RunID: run.ID})
	require.NoError(t, err)
	var actions []reverify.AuditAction
	for _, e := range all {
		actions = append([]reverify.AuditAction{e.Action}, actions...)
		require.Equal(t, reverify.AuditFromCLI, e.Source)
		require.Equal(t, time.UTC, e.At.Location())
	}
	require.Equal(t, []reverify.AuditAction{reverify.AuditRunCreate, reverify.AuditRunPause, reverify.AuditRunResume,
		reverify.AuditRunPriority, reverify.AuditRunCancel, reverify.AuditRunRetry, reverify.AuditRunDelete}, actions)

	tests := []struct {
		name string
		f    postgres.AuditFilter
		want int
	}{
		{"by actor", postgres.AuditFilter{Actor: "bob"}, 3},
		{"by action", postgres.AuditFilter{Action: reverify.AuditRunPause}, 1},
		{"by actor and action", postgres.AuditFilter{Actor: "alice", Action: reverify.AuditRunPause}, 0},
		{"since the future", postgres.AuditFilter{Since: time.Now().Add(time.Hour)}, 0},
		{"until the past", postgres.AuditFilter{Until: time.Now().Add(-time.Hour)}, 0},
		{"a page", postgres.AuditFilter{Limit: 2}, 2},
		{"after the newest", postgres.AuditFilter{Before: all[0].ID}, 6},
	}
	for _, tc := range tests {
		got, err := s.AuditLog(ctx, tc.f)
		require.NoError(t, err, tc.name)
		require.Len(t, got, tc.want, tc.name)
	}
	var atUTC string
	var name *string
	require.NoError(t, db.QueryRow(ctx, `SELECT at_utc, run_name FROM audit_report WHERE id = $1`, all[0].ID).Scan(&atUTC, &name))
	require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`, atUTC)
	require.Nil(t, name, "the entry outlives its run")
	pause, err := s.AuditLog(ctx, postgres.AuditFilter{Action: reverify.AuditRunPause})
	require.NoError(t, err)
	require.Equal(t, "host-b", pause[0].Remote)
	require.Equal(t, "too slow", pause[0].Detail["reason"])
}

func TestKeyHashInSQLIsReverifyKeyHash(t *testing.T) {
	t.Parallel()
	_, db := testenv.LedgerWithPool(t)
	for _, key := range []string{"a.jpg", "selfies/Zoë Łukasz/1 +%&=.jpg", "日本/顔.png"} {
		var got string
		require.NoError(t, db.QueryRow(context.Background(), `SELECT reverify_key_hash($1, $2)`, "kyc", key).Scan(&got))
		require.Equal(t, reverify.KeyHash("kyc", key), got, key)
	}
}

// countersMatch asserts every run's counters equal its rows.
func countersMatch(t *testing.T, db *pgxpool.Pool) {
	t.Helper()
	require.Empty(t, testenv.RunsWithCountersOff(t, db), "runs whose counters differ from their rows")
}

func TestEraseAndPrune(t *testing.T) {
	t.Parallel()
	s, db := testenv.LedgerWithPool(t)
	ctx := context.Background()
	subject := reverify.ObjectRef{Bucket: "b", Key: "k00001"}
	other := reverify.ObjectRef{Bucket: "b", Key: "k00002"}
	runs := []reverify.Run{seedRun(t, s, 4, postgres.NewRun{}), seedRun(t, s, 4, postgres.NewRun{})}
	for i, run := range runs {
		for j, o := range []reverify.ObjectRef{subject, other} {
			tx := fmt.Sprintf("vendor-%d-%d", i, j)
			id, st, err := s.BeginCall(ctx, run.ID, o, 0)
			require.NoError(t, err)
			require.Equal(t, postgres.CallRecorded, st)
			score := 12.5
			require.NoError(t, s.FinishCall(ctx, postgres.Call{ID: id, Outcome: reverify.OutcomeScored, Score: &score, TransactionID: tx},
				run.ID, o, &postgres.Result{RunID: run.ID, Object: o, Status: reverify.StatusScored, Score: &score, TransactionID: tx}))
			require.NoError(t, s.RecordReview(ctx, postgres.Review{RunID: run.ID, Bucket: o.Bucket, Key: o.Key,
				Decision: reverify.DecisionSuspectedSpoof, Note: "looks printed", Reviewer: "rita", Source: reverify.AuditFromDashboard, From: "10.0.0.9:5000"}))
		}
	}
	require.NotEmpty(t, testenv.TextHolding(t, db, subject.Key))

	pendingOne := reverify.ObjectRef{Bucket: "b", Key: "k00003"}
	e, err := s.EraseObjects(ctx, []reverify.ObjectRef{subject, subject, pendingOne}, cli("dpo"))
	require.NoError(t, err)
	require.Equal(t, 2, e.Subjects)
	require.Equal(t, []int64{4, 2, 2}, []int64{e.Verifications, e.Reviews, e.APICallsHashed})
	require.Empty(t, testenv.TextHolding(t, db, pendingOne.Key))
	require.Len(t, e.Runs, 2)
	require.Empty(t, testenv.TextHolding(t, db, subject.Key), "nothing of the key remains")
	require.NotEmpty(t, testenv.TextHolding(t, db, other.Key), "other subjects stay")
	countersMatch(t, db)

	var evidence int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM api_calls WHERE key_hashed AND object_key = $1
		AND transaction_id LIKE 'vendor-%-0'`, reverify.KeyHash(subject.Bucket, subject.Key)).Scan(&evidence))
	require.Equal(t, 2, evidence, "the invoice evidence stays, by key hash")
	erased, err := s.AuditLog(ctx, postgres.AuditFilter{Action: reverify.AuditErase, Bucket: "b", KeyHash: reverify.KeyHash(subject.Bucket, subject.Key)})
	require.NoError(t, err)
	require.Len(t, erased, 1)
	require.EqualValues(t, 2, erased[0].Detail["verifications"])
	erased, err = s.AuditLog(ctx, postgres.AuditFilter{Action: reverify.AuditErase})
	require.NoError(t, err)
	require.Len(t, erased, 2, "one entry per subject")
	reviews, err := s.AuditLog(ctx, postgres.AuditFilter{Action: reverify.AuditReview})
	require.NoError(t, err)
	require.Len(t, reviews, 4, "the decisions stay audited, by key hash")

	again, err := s.EraseObjects(ctx, []reverify.ObjectRef{subject}, cli("dpo"))
	require.NoError(t, err)
	require.Zero(t, again.Verifications+again.Reviews+again.APICallsHashed, "erasing twice changes nothing")
	_, err = s.EraseObjects(ctx, nil, cli("dpo"))
	require.ErrorIs(t, err, postgres.ErrNoSubjects)

	// Prune: only ended runs that finished before the cut-off.
	_, _, err = s.CancelRun(ctx, runs[0].ID, cli("ops"))
	require.NoError(t, err)
	_, err = s.PruneRun(ctx, runs[1].ID, cli("ops"))
	require.ErrorIs(t, err, postgres.ErrInvalidTransition)
	old, err := s.PrunableRuns(ctx, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Empty(t, old)
	due, err := s.PrunableRuns(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, due, 1)
	require.Equal(t, []int64{2, 1, 1}, []int64{due[0].Verifications, due[0].Reviews, due[0].APICallsHashed})
	p, err := s.PruneRun(ctx, runs[0].ID, cli("ops"))
	require.NoError(t, err)
	require.Equal(t, []int64{2, 1, 1}, []int64{p.Verifications, p.Reviews, p.APICallsHashed})
	r1 := noDashes(runs[1].ID)
	require.Subset(t, []string{"verifications_" + r1 + ".object_key", "api_calls_" + r1 + ".object_key", "reviews.object_key",
		"verifications.object_key", "api_calls.object_key"},
		testenv.TextHolding(t, db, other.Key), "only the run not pruned still names the other subject")
	var left int
	require.NoError(t, db.QueryRow(ctx, `SELECT (SELECT count(*) FROM api_calls WHERE run_id = $1::uuid AND NOT key_hashed)
		+ (SELECT count(*) FROM verifications WHERE run_id = $1::uuid) + (SELECT count(*) FROM reviews WHERE run_id = $1::uuid)`,
		runs[0].ID).Scan(&left))
	require.Zero(t, left, "the pruned run keeps only its calls, by key hash")
	countersMatch(t, db)
	due, err = s.PrunableRuns(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Empty(t, due, "a pruned run is not pruned again")
	pruned, err := s.AuditLog(ctx, postgres.AuditFilter{Action: reverify.AuditPrune, RunID: runs[0].ID})
	require.NoError(t, err)
	require.Len(t, pruned, 1)

	// Deleting a run with reviews drops its partitions (detached first:
	// the reviews' foreign key depends on them).
	_, _, err = s.CancelRun(ctx, runs[1].ID, cli("ops"))
	require.NoError(t, err)
	n, err := s.DeleteRun(ctx, runs[1].ID, cli("ops"))
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "its total after the erasure")
	var gone bool
	require.NoError(t, db.QueryRow(ctx, `SELECT to_regclass('verifications_' || $1) IS NULL AND to_regclass('api_calls_' || $1) IS NULL`,
		r1).Scan(&gone))
	require.True(t, gone)
	require.Empty(t, testenv.TextHolding(t, db, other.Key))
}

func noDashes(id string) string {
	out := make([]byte, 0, len(id))
	for i := range len(id) {
		if id[i] != '-' {
			out = append(out, id[i])
		}
	}
	return string(out)
}
