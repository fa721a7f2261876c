package postgres_test

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/internal/testenv"
	"reverify/migrations"
	"reverify/storage/postgres"
)

// TestScaleMigrationRoundTrip: a ledger with results, calls and a review
// survives migration 00005 down and up again, and the counters the
// migration builds agree with the rows.
func TestScaleMigrationRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	_, err := postgres.Migrate(ctx, dsn)
	require.NoError(t, err)
	store, err := postgres.Open(ctx, dsn, 4)
	require.NoError(t, err)
	run, err := store.CreateRun(ctx, postgres.NewRun{Name: "r", Queue: "q"})
	require.NoError(t, err)
	var objs []reverify.ObjectRef
	for i := range 20 {
		objs = append(objs, reverify.ObjectRef{Bucket: "b", Key: fmt.Sprintf("k%02d", i)})
	}
	_, err = store.AddObjects(ctx, run.ID, objs)
	require.NoError(t, err)
	for i, o := range objs[:8] {
		id, st, err := store.BeginCall(ctx, run.ID, o, 0)
		require.NoError(t, err)
		require.Equal(t, postgres.CallRecorded, st)
		score := float64(10 * i)
		require.NoError(t, store.FinishCall(ctx, postgres.Call{ID: id, Outcome: reverify.OutcomeScored, Score: &score, TransactionID: "tx"},
			run.ID, o, &postgres.Result{RunID: run.ID, Object: o, Status: reverify.StatusScored, Score: &score, TransactionID: "tx"}))
	}
	require.NoError(t, store.RecordResult(ctx, postgres.Result{RunID: run.ID, Object: objs[8], Status: reverify.StatusNotFound}))
	require.NoError(t, store.RecordReview(ctx, postgres.Review{RunID: run.ID, Bucket: "b", Key: "k01",
		Decision: reverify.DecisionConfirmedLive, Reviewer: "me"}))
	store.Close()

	// Newest first, down to and including 00005.
	names := migrationNames(t)
	for i := len(names) - 1; i >= 0 && names[i] >= "00005"; i-- {
		undone, err := postgres.Rollback(ctx, dsn)
		require.NoError(t, err)
		require.Equal(t, names[i], undone)
	}
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })
	var rows, calls, reviews int
	require.NoError(t, conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM verifications), (SELECT count(*) FROM api_calls),
		(SELECT count(*) FROM reviews)`).Scan(&rows, &calls, &reviews))
	require.Equal(t, []int{20, 8, 1}, []int{rows, calls, reviews}, "nothing lost going down")

	_, err = postgres.Migrate(ctx, dsn)
	require.NoError(t, err)
	store, err = postgres.Open(ctx, dsn, 4)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	p, err := store.Progress(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, map[reverify.Status]int64{reverify.StatusPending: 11, reverify.StatusScored: 8, reverify.StatusNotFound: 1}, p.ByStatus)
	require.EqualValues(t, 8, p.APICalls)
	require.EqualValues(t, 8, p.BillableAnswers, "the counter learns the billable answers recorded before it")
	require.InDelta(t, 0, p.ScoreMin, 0.001)
	require.InDelta(t, 35, p.ScoreAvg, 0.001)
	require.InDelta(t, 70, p.ScoreMax, 0.001)
	h, err := store.ScoreHistogram(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, [10]int64{1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, h, "10, 20 ... fall in their own band")
}

// TestMigrationsStatusAndSQL: the embedded migrations are listed against a
// database that does not exist yet (all pending, nothing created), then
// applied; each file's up and down SQL is its text between goose's
// annotations.
func TestMigrationsStatusAndSQL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.MissingDatabase(t)
	ms, err := postgres.Migrations(ctx, dsn)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(ms), 6)
	var prev int64
	for _, m := range ms {
		require.False(t, m.Applied, m.File)
		require.Greater(t, m.Version, prev, "versions increase (numbers taken by other branches may be missing)")
		prev = m.Version
	}
	_, err = pgx.Connect(ctx, dsn)
	require.Error(t, err, "listing created nothing")

	_, err = postgres.Migrate(ctx, dsn)
	require.NoError(t, err)
	ms, err = postgres.Migrations(ctx, dsn)
	require.NoError(t, err)
	for _, m := range ms {
		require.True(t, m.Applied, m.File)
		require.NotNil(t, m.AppliedAt, m.File)
	}
	require.Equal(t, "00006_notifications.sql", ms[5].File)

	up, inTx, err := postgres.MigrationSQL("00006_notifications.sql", true)
	require.NoError(t, err)
	require.True(t, inTx)
	require.Contains(t, up, "CREATE TABLE notification_events")
	require.Contains(t, up, "CREATE FUNCTION run_status_notify()", "statements between StatementBegin and StatementEnd")
	require.NotContains(t, up, "+goose")
	require.NotContains(t, up, "DROP TABLE notification_events", "no down section")
	down, _, err := postgres.MigrationSQL("00006_notifications.sql", false)
	require.NoError(t, err)
	require.Contains(t, down, "DROP TABLE notification_events;")
	require.NotContains(t, down, "CREATE TABLE")
	_, _, err = postgres.MigrationSQL("99999_none.sql", true)
	require.Error(t, err)
}

// migrationNames lists the embedded migrations in the order goose applies them.
func migrationNames(t *testing.T) []string {
	t.Helper()
	entries, err := fs.ReadDir(migrations.FS, ".")
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}
