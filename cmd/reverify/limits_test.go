package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
)

// TestRunLimitsSchedCLI: a run's caps given at enqueue, shown by runs show
// and runs list (-o json), changed by runs set-limits (audited), and bad
// caps refused with a clear error.
func TestRunLimitsSchedCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	common := []string{"--database-url", migratedDB(t), "--redis-url", "redis://" + testenv.RedisAddr(t) + "/0"}
	run := func(args ...string) string {
		t.Helper()
		out, stderr, code := cli(t, ctx, "", append(args, common...)...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		return out
	}
	queue := testenv.Queue(t)
	out := run("enqueue", "--manifest", "-", "--manifest-format", "lines", "--bucket", "b", "--queue", queue, "--confirm",
		"--max-rate", "20", "--max-in-flight", "5", "-o", "json")
	var created struct {
		Run struct {
			ID          string `json:"id"`
			MaxRate     string `json:"max_rate"`
			MaxInFlight int    `json:"max_in_flight"`
		} `json:"run"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &created), out)
	id := created.Run.ID
	require.NotEmpty(t, id, out)
	require.Equal(t, "20", created.Run.MaxRate)
	require.Equal(t, 5, created.Run.MaxInFlight)

	require.Regexp(t, `caps\s+max 20 calls/s, max 5 in flight`, run("runs", "show", id))
	out = run("runs", "set-limits", id, "--max-rate", "TZ=Europe/Berlin Mon-Fri 08:00-20:00=3", "--reason", "onboarding peak")
	require.Contains(t, out, "max rate by schedule TZ=Europe/Berlin Mon-Fri 08:00-20:00=3, max 5 in flight",
		"--max-in-flight not given stays")
	var listed []struct {
		ID          string `json:"id"`
		MaxRate     string `json:"max_rate"`
		MaxInFlight int    `json:"max_in_flight"`
	}
	out = run("runs", "list", "-o", "json")
	require.NoError(t, json.Unmarshal([]byte(out), &listed), out)
	require.Len(t, listed, 1)
	require.Equal(t, "TZ=Europe/Berlin Mon-Fri 08:00-20:00=3", listed[0].MaxRate)
	require.Equal(t, 5, listed[0].MaxInFlight)
	require.Contains(t, run("audit", "--action", "run.limits"), id)

	for _, bad := range [][]string{
		{"runs", "set-limits", id, "--max-rate", "fast"},
		{"runs", "set-limits", id, "--max-in-flight", "-2"},
		{"runs", "set-limits", id},
		{"enqueue", "--manifest", "-", "--bucket", "b", "--queue", queue, "--max-rate", "08:00-07:00=x"},
	} {
		_, stderr, code := cli(t, ctx, "", append(bad, common...)...)
		require.NotZero(t, code, "%v", bad)
		require.NotEmpty(t, stderr, "%v", bad)
	}
	_, stderr, code := cli(t, ctx, "", append([]string{"worker", "--api-rate-schedule", "Mon 25:00-26:00=1"}, common...)...)
	require.NotZero(t, code)
	require.Contains(t, stderr, "REVERIFY_API_RATE_SCHEDULE")
}
