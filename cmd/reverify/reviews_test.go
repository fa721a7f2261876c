package main

import (
	"context"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/storage/postgres"
)

// TestReportReviews: `report --view reviews` exports every decision, by
// run and time window, as CSV and JSON, with the second reviewer's
// confirmation naming the first.
func TestReportReviews(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := migratedDB(t)
	store, err := postgres.Open(ctx, dsn, 2)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	mk := func(name string) string {
		t.Helper()
		run, err := store.CreateRun(ctx, postgres.NewRun{Name: name, Queue: "q", Source: reverify.Source{Kind: reverify.SourceManifest, Manifest: "m"}})
		require.NoError(t, err)
		obj := reverify.ObjectRef{Bucket: "b", Key: "subject/selfie.jpg"}
		_, err = store.AddObjects(ctx, run.ID, []reverify.ObjectRef{obj})
		require.NoError(t, err)
		score := 12.0
		require.NoError(t, store.RecordResult(ctx, postgres.Result{RunID: run.ID, Object: obj, Status: reverify.StatusScored, Score: &score, ETag: `"e1"`}))
		return run.ID
	}
	a, other := mk("night a"), mk("night b")
	decide := func(run, who string) {
		t.Helper()
		_, err := store.Decide(ctx, postgres.Review{RunID: run, Bucket: "b", Key: "subject/selfie.jpg",
			Decision: reverify.DecisionSuspectedSpoof, Reviewer: who, FourEyes: true})
		require.NoError(t, err)
	}
	decide(a, "ann")
	decide(a, "bob")
	decide(other, "carl")
	common := []string{"--database-url", dsn, "--log-format", "text"}
	run := func(args ...string) string {
		t.Helper()
		out, stderr, code := cli(t, ctx, "", append(args, common...)...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		return out
	}

	var rows []map[string]any
	decodeStrict(t, run("report", "--view", "reviews", "--run", a, "-o", "json"), &rows)
	require.Len(t, rows, 2)
	require.Equal(t, "ann", rows[0]["reviewer"])
	require.Equal(t, "awaiting_second", rows[0]["state"])
	require.Equal(t, "bob", rows[1]["reviewer"])
	require.Equal(t, "final", rows[1]["state"])
	require.Equal(t, "ann", rows[1]["first_reviewer"], "the confirmation names the first reviewer")
	require.Equal(t, `"e1"`, rows[1]["object_etag"])
	require.True(t, strings.HasSuffix(rows[0]["reviewed_at_utc"].(string), "Z"))

	recs, err := csv.NewReader(strings.NewReader(run("report", "--view", "reviews", "-o", "csv"))).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 4, "a header and every decision of every run")

	tomorrow := time.Now().UTC().Add(24 * time.Hour).Format(time.DateOnly)
	rows = nil
	decodeStrict(t, run("report", "--view", "reviews", "--since", tomorrow, "-o", "json"), &rows)
	require.Empty(t, rows, "none from tomorrow on")
	rows = nil
	decodeStrict(t, run("report", "--view", "reviews", "--run", other, "--since", time.Now().UTC().Add(-time.Hour).Format(time.RFC3339),
		"--until", tomorrow, "-o", "json"), &rows)
	require.Len(t, rows, 1)
	require.Equal(t, "carl", rows[0]["reviewer"])
}
