package report_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/report"
	"reverify/storage/postgres"
)

// TestTimesAreUTCAndMarked: the CLI's tables show times in UTC with the
// zone written out, whatever zone the times come in.
func TestTimesAreUTCAndMarked(t *testing.T) {
	t.Parallel()
	tokyo := time.FixedZone("JST", 9*3600)
	at := time.Date(2026, 11, 30, 5, 46, 7, 0, tokyo) // 2026-11-29 20:46:07 UTC
	started := at.Add(time.Minute)
	run := reverify.Run{ID: "r1", Name: "nightly", Status: reverify.RunRunning, CreatedAt: at, StartedAt: &started}

	var buf bytes.Buffer
	report.WriteProgress(&buf, postgres.Progress{RunCounts: postgres.RunCounts{Run: run}}, at)
	require.Contains(t, buf.String(), "2026-11-29 20:46:07 UTC")
	require.Contains(t, buf.String(), "2026-11-29 20:47:07 UTC")

	buf.Reset()
	report.WriteHistory(&buf, []postgres.StatusChange{{To: "running", Actor: "ann", ChangedAt: at}})
	require.Contains(t, buf.String(), "2026-11-29 20:46:07 UTC")

	buf.Reset()
	require.NoError(t, report.WriteRuns(&buf, []report.RunLine{{Run: run}}))
	require.Contains(t, buf.String(), "2026-11-29 20:46 UTC")
	require.NotContains(t, buf.String(), "05:46", "never the zone the time came in")
}

func TestCaps(t *testing.T) {
	t.Parallel()
	sch, err := reverify.ParseRateSchedule("TZ=Europe/Berlin 08:00-20:00=5")
	require.NoError(t, err)
	for _, tc := range []struct {
		limits reverify.RunLimits
		want   string
	}{
		{reverify.RunLimits{}, "-"},
		{reverify.RunLimits{MaxRate: 20}, "20/s"},
		{reverify.RunLimits{MaxRate: 2.5, MaxInFlight: 4}, "2.5/s, 4 in flight"},
		{reverify.RunLimits{Schedule: sch, MaxInFlight: 1}, "scheduled rate, 1 in flight"},
	} {
		require.Equal(t, tc.want, report.Caps(tc.limits))
	}
}
