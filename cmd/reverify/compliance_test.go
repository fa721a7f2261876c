package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/campaign"
	"reverify/internal/testenv"
	"reverify/liveness/fakeapi"
	"reverify/storage/postgres"
)

func TestParseAge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"400d", 400 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"36h", 36 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"d", 0, true},
		{"-3d", 0, true},
		{"soon", 0, true},
	}
	for _, tt := range tests {
		got, err := parseAge(tt.in)
		if tt.err {
			require.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	got, err := parseInstant("7d", now)
	require.NoError(t, err)
	require.Equal(t, now.Add(-7*24*time.Hour), got)
	got, err = parseInstant("2026-11-01T08:00:00+01:00", now)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 11, 1, 7, 0, 0, 0, time.UTC), got.UTC())
}

// TestAuditEraseAndPruneCommands drives the audit log, erasure and
// retention through the command line against real PostgreSQL, Redis and
// S3. It sets the AWS credential variables, so it does not run in parallel.
func TestAuditEraseAndPruneCommands(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	s3 := testenv.S3(t)
	redisURL := "redis://" + testenv.RedisAddr(t) + "/0"
	queue := testenv.Queue(t)
	reports := t.TempDir()
	s3.CreateBucket(t, "comp")
	keys := []string{"c/Zoë Example.jpg", "c/b.jpg", "c/c.jpg"}
	for i, k := range keys {
		s3.PutObject(t, "comp", k, fakeapi.GenerateJPEG(int64(i), 64, 64))
	}
	common := []string{"--database-url", dsn, "--redis-url", redisURL, "--s3-endpoint", s3.Endpoint,
		"--s3-region", s3.Region, "--s3-path-style", "--log-format", "text"}
	t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	t.Setenv("REVERIFY_ACTOR", "dpo@example")
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, stderr, code := cli(t, ctx, stdin, append(args, common...)...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		return out
	}
	usage := func(want string, args ...string) {
		t.Helper()
		_, stderr, code := cli(t, ctx, "", append(args, common...)...)
		require.Equal(t, exitUsage, code, "%v: %s", args, stderr)
		require.Contains(t, stderr, want, "%v", args)
	}
	run("", "migrate")
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	id := strings.TrimSpace(run("", "enqueue", "--bucket", "comp", "--prefix", "c/", "--queue", queue, "--report-to", reports))
	run("", "runs", "pause", id, "--reason", "checking")
	where := strings.TrimSpace(run("", "runs", "report", id, "--to", reports))
	require.Equal(t, campaign.ReportLocation(reports, id), where)

	var entries []postgres.AuditEntry
	require.NoError(t, json.Unmarshal([]byte(run("", "audit", "--run", id, "-o", "json")), &entries))
	require.Len(t, entries, 3)
	require.Equal(t, []reverify.AuditAction{reverify.AuditReportWrite, reverify.AuditRunPause, reverify.AuditRunCreate},
		[]reverify.AuditAction{entries[0].Action, entries[1].Action, entries[2].Action})
	require.Equal(t, "dpo@example", entries[1].Actor)
	require.Equal(t, reverify.AuditFromCLI, entries[1].Source)
	require.Equal(t, "checking", entries[1].Detail["reason"])

	out := run("", "audit", "--action", "run.pause", "--since", "1h")
	require.Regexp(t, `(?m)^ID\s+AT \(UTC\)\s+ACTOR`, out)
	require.Regexp(t, `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+dpo@example\s+cli\s+run.pause\s+`+id, out)
	require.Contains(t, run("", "audit", "--until", "2000-01-01"), "no entries")
	out = run("", "audit", "--limit", "1", "-o", "yaml")
	require.Contains(t, out, "action: report.write")
	require.NotContains(t, out, "run.create")

	usage("invalid --since", "audit", "--since", "yesterday")
	usage("--object-key needs --bucket", "audit", "--object-key", "x")
	usage("invalid --action", "audit", "--action", "run.explode")
	usage("erase needs --bucket", "erase", "--key", "x")
	usage("erase needs --key or --keys-from", "erase", "--bucket", "comp")
	usage("prune needs --older-than", "prune")
	usage("invalid --older-than", "prune", "--older-than", "forever")

	// Erase one subject by --key, one by --keys-from.
	out = run("", "erase", "--bucket", "comp", "--key", keys[0], "--reason", "DSR-4711")
	require.Contains(t, out, "erased 1 data subjects from 1 runs")
	require.Regexp(t, `verifications deleted\s+1`, out)
	require.Contains(t, out, where, "the report naming the subject is listed")
	require.Empty(t, testenv.TextHolding(t, pool, keys[0]))
	require.NoError(t, json.Unmarshal([]byte(run("", "audit", "--bucket", "comp", "--object-key", keys[0], "-o", "json")), &entries))
	require.Len(t, entries, 1)
	require.Equal(t, reverify.AuditErase, entries[0].Action)
	require.Equal(t, "DSR-4711", entries[0].Detail["reason"])

	list := filepath.Join(t.TempDir(), "subjects.txt")
	require.NoError(t, os.WriteFile(list, []byte(keys[1]+"\n\n"), 0o600))
	var erased campaign.Erased
	require.NoError(t, json.Unmarshal([]byte(run("", "erase", "--bucket", "comp", "--keys-from", list, "-o", "json")), &erased))
	require.EqualValues(t, 1, erased.Verifications)
	require.Len(t, erased.Reports, 1)
	require.Empty(t, testenv.TextHolding(t, pool, keys[1]))
	require.NoError(t, json.Unmarshal([]byte(run(keys[2]+"\n", "erase", "--bucket", "comp", "--keys-from", "-", "-o", "json")), &erased))
	require.EqualValues(t, 1, erased.Verifications)
	require.Empty(t, testenv.RunsWithCountersOff(t, pool))

	// Prune: the run has not ended, then it has.
	require.Contains(t, run("", "prune", "--older-than", "400d", "--dry-run"), "would prune (dry run) 0 runs")
	run("", "runs", "cancel", id)
	var pruned campaign.Pruned
	require.NoError(t, json.Unmarshal([]byte(run("", "prune", "--older-than", "1ns", "--dry-run", "-o", "json")), &pruned))
	require.True(t, pruned.DryRun)
	require.Len(t, pruned.Runs, 1)
	out = run("", "prune", "--older-than", "1ns")
	require.Contains(t, out, "pruned 1 runs")
	require.Contains(t, out, where, "the run's report is listed")
	require.Contains(t, run("", "prune", "--older-than", "1ns"), "pruned 0 runs")
	require.NoError(t, json.Unmarshal([]byte(run("", "audit", "--action", "run.prune", "-o", "json")), &entries))
	require.Len(t, entries, 1)
	require.Empty(t, testenv.RunsWithCountersOff(t, pool))
}
