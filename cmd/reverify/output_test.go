package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"reverify"
	"reverify/internal/testenv"
	"reverify/migrations"
	"reverify/notify"
	"reverify/report"
	"reverify/storage/postgres"
)

// decodeStrict decodes one JSON document and nothing after it; fields the
// type does not know fail.
func decodeStrict(t *testing.T, out string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), out)
	require.False(t, dec.More(), "one document: %s", out)
	_, err := dec.Token()
	require.ErrorIs(t, err, io.EOF, "one document: %s", out)
}

// TestStructuredOutput decodes what the commands print with -o json and
// -o yaml: enqueue (and its dry run), runs list, show, confirm, cancel,
// retry, and report, including report's files per view and --limit.
func TestStructuredOutput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := migratedDB(t)
	var hits atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)
	common := []string{"--database-url", dsn, "--log-format", "text"}
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, stderr, code := cli(t, ctx, stdin, append(args, common...)...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		return out
	}
	manifest := "a.jpg\nb.jpg\n"

	var est dryRunDoc
	decodeStrict(t, run(manifest, "enqueue", "--bucket", "b", "--manifest", "-", "--dry-run", "-o", "json"), &est)
	require.Equal(t, report.EstimateDoc{Matched: 2, WouldSend: 2, DistinctImages: 2, SizeUnknown: 2, MaxObjectBytes: reverify.DefaultMaxObjectBytes}, est.EstimateDoc)
	require.EqualValues(t, 2, est.Forecast.PaidCalls)
	require.Nil(t, est.Forecast.Cost, "no price given")

	var held enqueuedDoc
	decodeStrict(t, run(manifest, "enqueue", "--bucket", "b", "--manifest", "-", "--confirm", "--label", "team=fraud", "--name", "held",
		"--notify", hook.URL+"/hooks/s3cret", "--notify", "slack:"+hook.URL+"/slack/T0/B0/s3cret", "-o", "json"), &held)
	require.True(t, held.AwaitsConfirmation)
	require.EqualValues(t, 2, held.Recorded)
	require.Equal(t, reverify.RunAwaitingConfirmation, held.Run.Status)
	require.Equal(t, map[string]string{"team": "fraud"}, held.Run.Labels)
	require.Equal(t, []string{"json:" + hook.URL + "/…", "slack:" + hook.URL + "/…"}, held.Run.Notify, "webhooks shown without their secret part")
	id := held.Run.ID

	other := strings.TrimSpace(run("c.jpg\n", "enqueue", "--bucket", "b", "--manifest", "-", "--name", "other"))
	require.Regexp(t, `^[0-9a-f-]{36}$`, other, "the run ID alone without -o")

	var list []report.RunCountsDoc
	decodeStrict(t, run("", "runs", "list", "-o", "json"), &list)
	require.Len(t, list, 2)
	require.Equal(t, other, list[0].ID, "newest first")
	require.Equal(t, map[reverify.Status]int64{reverify.StatusPending: 2}, list[1].ByStatus)
	require.EqualValues(t, 2, list[1].Pending)
	out, stderr, code := cli(t, ctx, "", append([]string{"runs", "list", "--limit", "1", "-o", "yaml"}, common...)...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "showing the newest 1 runs; more match")
	var ylist []map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(out), &ylist))
	require.Len(t, ylist, 1)
	require.Equal(t, other, ylist[0]["id"])
	_, stderr, _ = cli(t, ctx, "", append([]string{"runs", "list", "--limit", "2"}, common...)...)
	require.Empty(t, stderr, "nothing cut, nothing said")

	// The webhooks hear that the run waits for confirmation.
	store, err := postgres.Open(ctx, dsn, 2)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	sender, err := notify.NewSender(store, nil, notify.Config{Secret: "k"})
	require.NoError(t, err)
	_, err = sender.Round(ctx)
	require.NoError(t, err)

	var show showDoc
	decodeStrict(t, run("", "runs", "show", id, "-o", "json", "--price-per-call", "0.5 USD"), &show)
	require.EqualValues(t, 2, show.Forecast.PaidCalls)
	require.Equal(t, "1.00 USD", show.Forecast.Cost.String())
	require.Equal(t, "0.00 USD", show.Spend.Spent.String())
	require.Zero(t, show.Spend.BillableAnswers)
	require.Equal(t, id, show.ID)
	require.Equal(t, "held", show.Name)
	require.Equal(t, reverify.RunAwaitingConfirmation, show.Status)
	require.EqualValues(t, 2, show.Total)
	require.Nil(t, show.Scores)
	require.Nil(t, show.ETASeconds)
	require.Equal(t, report.ThresholdDoc{Percent: 50, MinDone: 1000}, show.Threshold)
	require.Len(t, show.History, 2)
	require.Equal(t, "awaiting_confirmation", show.History[1].To)
	require.Len(t, show.Notifications, 2)
	for _, n := range show.Notifications {
		require.Equal(t, reverify.EventConfirmationNeeded, n.Event)
		require.Equal(t, "delivered", n.State, "%+v", n)
		require.Equal(t, 1, n.Attempts)
		require.NotContains(t, n.Destination, "s3cret")
	}
	require.EqualValues(t, 2, hits.Load())
	out = run("", "runs", "show", id)
	require.Regexp(t, `notifications:\n.*run.confirmation_needed\s+json:http://127.0.0.1:\d+/…\s+delivered\s+1 attempts`, out)
	require.NotContains(t, out, "s3cret")
	var yshow map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(run("", "runs", "show", id, "-o", "yaml")), &yshow))
	require.Equal(t, id, yshow["id"])
	require.Equal(t, map[string]any{"pending": 2}, yshow["by_status"])

	var confirmed report.RunDoc
	decodeStrict(t, run("", "runs", "confirm", id, "-o", "json"), &confirmed)
	require.Equal(t, reverify.RunRunning, confirmed.Status)
	require.NotNil(t, confirmed.StartedAt)
	var cancelled cancelledDoc
	decodeStrict(t, run("", "runs", "cancel", id, "--reason", "test", "-o", "json"), &cancelled)
	require.Equal(t, reverify.RunCancelled, cancelled.Run.Status)
	require.EqualValues(t, 2, cancelled.PendingCancelled)
	var retried retriedDoc
	decodeStrict(t, run("", "runs", "retry", id, "--status", "cancelled", "-o", "json"), &retried)
	require.EqualValues(t, 2, retried.Reset)
	require.Equal(t, []reverify.Status{reverify.StatusCancelled}, retried.Statuses)

	// report: one view is a list of rows; several, one document by view.
	var rows []map[string]any
	decodeStrict(t, run("", "report", "--view", "run_summary", "-o", "json"), &rows)
	require.Len(t, rows, 2)
	var views map[string][]map[string]any
	decodeStrict(t, run("", "report", "--run", id, "-o", "json"), &views)
	require.ElementsMatch(t, []string{"run_summary", "score_histogram", "errors_by_code", "api_usage_daily"}, mapKeys(views))
	require.Equal(t, id, views["run_summary"][0]["run_id"])
	require.EqualValues(t, 2, views["run_summary"][0]["total"])
	var yviews map[string][]map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(run("", "report", "--run", id, "-o", "yaml")), &yviews))
	require.Equal(t, id, yviews["run_summary"][0]["run_id"])

	out, stderr, code = cli(t, ctx, "", append([]string{"report", "--view", "run_summary", "--limit", "1", "-o", "csv"}, common...)...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "run_summary cut at --limit 1 rows")
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 2, "a header and one row")

	// CSV of several views: a file each, never one stream of mixed headers.
	dir := filepath.Join(t.TempDir(), "views")
	out = run("", "report", "--view", "all", "-o", "csv", "--out", dir)
	written := strings.Fields(out)
	require.Len(t, written, len(postgres.Views))
	for i, v := range postgres.Views {
		require.Equal(t, filepath.Join(dir, v+".csv"), written[i])
		f, err := os.Open(written[i])
		require.NoError(t, err)
		recs, err := csv.NewReader(f).ReadAll()
		f.Close()
		require.NoError(t, err, v)
		require.NotEmpty(t, recs, v)
		for _, r := range recs[1:] {
			require.Len(t, r, len(recs[0]), "%s: every line has the header's columns", v)
		}
	}
	head, err := os.ReadFile(filepath.Join(dir, "run_summary.csv"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(head), "run_id,name,status"), string(head))

	var ms []migrationDoc
	decodeStrict(t, run("", "migrate", "status", "-o", "json"), &ms)
	require.NotEmpty(t, ms)
	for _, m := range ms {
		require.True(t, m.Applied, m.File)
		require.NotNil(t, m.AppliedAt)
	}
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestMigrateCommands: status, up and down, each --dry-run printing the
// SQL it would run and changing nothing.
func TestMigrateCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.MissingDatabase(t)
	run := func(args ...string) string {
		t.Helper()
		out, stderr, code := cli(t, ctx, "", append(args, "--database-url", dsn)...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		return out
	}
	out := run("migrate", "status")
	require.Regexp(t, `(?m)^1\s+00001_pipeline.sql\s+pending\s+-$`, out)
	out = run("migrate", "up", "--dry-run")
	require.Contains(t, out, "-- 00001_pipeline.sql (version 1, up, in one transaction")
	require.Contains(t, out, "CREATE TABLE notification_events")
	require.NotContains(t, out, "+goose")
	require.Equal(t, out, run("migrate", "--dry-run"), "migrate alone is migrate up")
	require.Regexp(t, `(?m)^1\s+00001_pipeline.sql\s+pending`, run("migrate", "status"), "a dry run applies nothing")

	newest, version := newestMigration(t)
	require.Contains(t, run("migrate"), "applied "+newest)
	require.Equal(t, "-- schema is up to date: nothing to apply\n", run("migrate", "up", "--dry-run"))
	out = run("migrate", "down", "--dry-run")
	require.True(t, strings.HasPrefix(out, fmt.Sprintf("-- %s (version %d, down, in one transaction", newest, version)), out)
	require.NotContains(t, out, "+goose")
	require.Regexp(t, fmt.Sprintf(`(?m)^%d\s+%s\s+applied\s+\d{4}-`, version, regexp.QuoteMeta(newest)), run("migrate", "status"))

	require.Equal(t, "rolled back "+newest+"\n", run("migrate", "down"))
	require.Regexp(t, fmt.Sprintf(`(?m)^%d\s+%s\s+pending`, version, regexp.QuoteMeta(newest)), run("migrate", "status"))
	require.Contains(t, run("migrate", "up", "--dry-run"), fmt.Sprintf("-- %s (version %d, up", newest, version))
	require.Equal(t, "applied "+newest+"\n", run("migrate", "up"))
}

// newestMigration is the last embedded migration and its version.
func newestMigration(t *testing.T) (string, int64) {
	t.Helper()
	entries, err := fs.ReadDir(migrations.FS, ".")
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	name := entries[len(entries)-1].Name() // ReadDir sorts by name
	version, err := strconv.ParseInt(name[:strings.IndexByte(name, '_')], 10, 64)
	require.NoError(t, err)
	return name, version
}
