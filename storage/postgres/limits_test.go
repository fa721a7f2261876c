package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

// TestRunLimitsAreStoredChangedAndAudited: a run's caps are stored with it,
// read back by every run query and by RunLimits, changed while it goes
// (audited with who and what), and refused once it has ended.
func TestRunLimitsAreStoredChangedAndAudited(t *testing.T) {
	t.Parallel()
	s := testenv.Ledger(t)
	ctx := context.Background()
	sch, err := reverify.ParseRateSchedule("TZ=Europe/Berlin Mon-Fri 08:00-20:00=5")
	require.NoError(t, err)
	run := seedRun(t, s, 2, postgres.NewRun{Actor: cli("alice"), Limits: reverify.RunLimits{MaxRate: 20, MaxInFlight: 4}})
	require.Equal(t, reverify.RunLimits{MaxRate: 20, MaxInFlight: 4}, run.Limits)

	tests := []struct {
		name string
		lim  reverify.RunLimits
	}{
		{"a schedule", reverify.RunLimits{Schedule: sch, MaxInFlight: 4}},
		{"schedule and rate", reverify.RunLimits{MaxRate: 3, Schedule: sch}},
		{"no caps", reverify.RunLimits{}},
	}
	for _, tt := range tests {
		got, err := s.SetLimits(ctx, run.ID, tt.lim, cli("bob"))
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.lim.RateText(), got.Limits.RateText(), tt.name)
		require.Equal(t, tt.lim.MaxInFlight, got.Limits.MaxInFlight, tt.name)
		read, err := s.RunLimits(ctx, run.ID)
		require.NoError(t, err)
		require.Equal(t, tt.lim.RateText(), read.RateText(), tt.name)
		require.Equal(t, tt.lim.MaxInFlight, read.MaxInFlight, tt.name)
	}
	_, err = s.SetLimits(ctx, run.ID, reverify.RunLimits{MaxRate: -1}, cli("bob"))
	require.Error(t, err, "a negative cap is refused")

	entries, err := s.AuditLog(ctx, postgres.AuditFilter{RunID: run.ID, Action: reverify.AuditRunLimits})
	require.NoError(t, err)
	require.Len(t, entries, len(tests))
	require.Equal(t, "bob", entries[0].Actor)
	var rates []any
	for _, e := range entries {
		rates = append(rates, e.Detail["max_rate"])
	}
	require.ElementsMatch(t, []any{sch.String(), sch.String(), ""}, rates)

	_, _, err = s.CancelRun(ctx, run.ID, cli("bob"))
	require.NoError(t, err)
	_, err = s.SetLimits(ctx, run.ID, reverify.RunLimits{MaxRate: 1}, cli("bob"))
	require.ErrorIs(t, err, postgres.ErrInvalidTransition)
}
