package postgres_test

import (
	"context"
	"regexp"
	"slices"
	"sort"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/internal/testenv"
)

// TestSchemaSpeaksTheVocabulary keeps the migrations in step with the
// vocabulary package: every CHECK constraint on a status, priority,
// outcome, decision, event or webhook format column allows exactly the values reverify.go lists,
// every verification status has a rank, and run_summary has a column per
// terminal status.
func TestSchemaSpeaksTheVocabulary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, conn := testenv.LedgerWithPool(t)

	allowed := func(constraint string) []string {
		t.Helper()
		var def string
		require.NoError(t, conn.QueryRow(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1 AND conrelid::regclass::text IN ('runs', 'verifications', 'api_calls', 'reviews', 'notification_events', 'notification_deliveries')`, constraint).Scan(&def))
		var out []string
		for _, m := range regexp.MustCompile(`'([a-z_.]+)'::text`).FindAllStringSubmatch(def, -1) {
			out = append(out, m[1])
		}
		sort.Strings(out)
		return out
	}
	sorted := func(vs ...string) []string { sort.Strings(vs); return vs }
	names := func(n int, at func(int) string) []string {
		out := make([]string, n)
		for i := range n {
			out[i] = at(i)
		}
		return sorted(out...)
	}
	runStatuses := reverify.RunStatuses()
	statuses := reverify.Statuses()
	priorities := reverify.Priorities()
	outcomes := reverify.CallOutcomes()
	decisions := reverify.Decisions()
	events := reverify.Events()
	formats := reverify.WebhookFormats()
	require.Equal(t, names(len(runStatuses), func(i int) string { return string(runStatuses[i]) }), allowed("runs_status_check"))
	require.Equal(t, names(len(statuses), func(i int) string { return string(statuses[i]) }), allowed("verifications_status_check"))
	require.Equal(t, names(len(priorities), func(i int) string { return string(priorities[i]) }), allowed("runs_priority_check"))
	require.Equal(t, names(len(outcomes), func(i int) string { return string(outcomes[i]) }), allowed("api_calls_outcome_check"))
	require.Equal(t, names(len(decisions), func(i int) string { return string(decisions[i]) }), allowed("reviews_decision_check"))
	states := reverify.ReviewStates()
	require.Equal(t, names(len(states), func(i int) string { return string(states[i]) }), allowed("reviews_state_check"))
	require.Equal(t, names(len(events), func(i int) string { return string(events[i]) }), allowed("notification_events_event_check"))
	require.Equal(t, names(len(formats), func(i int) string { return string(formats[i]) }), allowed("notification_deliveries_format_check"))

	for _, s := range statuses {
		var rank *int
		require.NoError(t, conn.QueryRow(ctx, `SELECT verification_status_rank($1)`, string(s)).Scan(&rank))
		require.NotNil(t, rank, "status %s has no rank", s)
		if s == reverify.StatusPending {
			require.Zero(t, *rank)
		} else {
			require.Positive(t, *rank, "a result outranks pending: %s", s)
		}
	}

	rows, err := conn.Query(ctx, `SELECT column_name FROM information_schema.columns WHERE table_name = 'run_summary'`)
	require.NoError(t, err)
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, s := range statuses {
		if s.Terminal() {
			require.True(t, slices.Contains(cols, string(s)), "run_summary has no %s column", s)
		}
	}
}
