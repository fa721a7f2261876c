package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/liveness/fakeapi"
)

// TestCampaignLifecycle drives confirmation, labels, priority, cancel,
// retry, watch and the reports through the command line.
// It sets the AWS credential variables, so it does not run in parallel.
func TestCampaignLifecycle(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	s3 := testenv.S3(t)
	redisURL := "redis://" + testenv.RedisAddr(t) + "/0"
	queue := testenv.Queue(t)
	fake := fakeapi.New(fakeapi.Options{APIKey: "camp-key"})
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)
	reports := t.TempDir()

	s3.CreateBucket(t, "camp")
	for i := range 8 {
		s3.PutObject(t, "camp", "a/"+string(rune('a'+i))+".jpg", fakeapi.GenerateJPEG(int64(i), 80, 80))
	}
	for i := range 5 {
		s3.PutObject(t, "camp", "b/"+string(rune('a'+i))+".jpg", fakeapi.GenerateJPEG(int64(50+i), 80, 80))
	}
	common := []string{"--database-url", dsn, "--redis-url", redisURL, "--s3-endpoint", s3.Endpoint,
		"--s3-region", s3.Region, "--s3-path-style", "--log-format", "text"}
	t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	t.Setenv("REVERIFY_ACTOR", "tester")
	run := func(args ...string) (string, string) {
		t.Helper()
		out, stderr, code := cli(t, ctx, "", append(args, common...)...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		return out, stderr
	}
	fail := func(want string, args ...string) {
		t.Helper()
		_, stderr, code := cli(t, ctx, "", append(args, common...)...)
		require.Equal(t, 1, code, "%v", args)
		require.Contains(t, stderr, want, "%v", args)
	}
	run("migrate")

	// A run above the confirmation size waits, labelled and urgent.
	out, stderr := run("enqueue", "--bucket", "camp", "--prefix", "a/", "--queue", queue, "--confirm-above", "5",
		"--label", "team=fraud", "--label", "why=model-v7", "--priority", "high", "--report-to", reports)
	urgent := strings.TrimSpace(out)
	require.Contains(t, stderr, "about 8 billable answers")
	out, _ = run("runs", "show", urgent)
	require.Regexp(t, `status\s+awaiting_confirmation`, out)
	require.Regexp(t, `queue\s+`+queue+`-high`, out)

	// A second run is cancelled before any worker runs: none of it is sent.
	out, _ = run("enqueue", "--bucket", "camp", "--prefix", "b/", "--queue", queue, "--label", "team=other")
	doomed := strings.TrimSpace(out)
	out, _ = run("runs", "cancel", doomed, "--reason", "wrong prefix")
	require.Contains(t, out, "5 pending objects will not be sent")
	fail("invalid run status change", "runs", "pause", doomed)

	out, _ = run("runs", "list", "--label", "team=fraud")
	require.Contains(t, out, urgent)
	require.NotContains(t, out, doomed)

	out, _ = run("runs", "confirm", urgent)
	require.Contains(t, out, "confirmed: 8 objects")

	wctx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		_, _, code := cli(t, wctx, "", append([]string{"worker", "--queues", queue + "-high:6," + queue + ":3," + queue + "-low:1",
			"--api-url", api.URL, "--api-key", "camp-key", "--concurrency", "8", "--shutdown-timeout", "5s"}, common...)...)
		done <- code
	}()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("worker did not stop")
		}
	})

	wctx2, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, stderr, code := cli(t, wctx2, "", append([]string{"runs", "watch", urgent, "--interval", "200ms"}, common...)...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "run "+urgent+" completed: 8/8 done, scored=8")

	out, _ = run("runs", "show", urgent)
	require.Contains(t, out, "tester")
	require.Regexp(t, `awaiting_confirmation -> enqueuing\s+tester\s+confirmed`, out)
	require.Regexp(t, `running -> completed\s+reverify-worker`, out)

	// The worker wrote the completion report when the run ended.
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(reports, urgent, "summary.json"))
		return err == nil
	}, 10*time.Second, 100*time.Millisecond)
	csvBytes, err := os.ReadFile(filepath.Join(reports, urgent, "results.csv"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(csvBytes)), "\n")
	require.Len(t, lines, 9)
	require.Equal(t, "bucket,key,version,status,liveness_score,transaction_id,error_code,message,etag,completed_at,decision,review_state,reviewer,reviewed_at", lines[0])
	require.True(t, strings.HasPrefix(lines[1], "camp,a/a.jpg,,scored,"), lines[1])
	var sum struct {
		Status  string         `json:"status"`
		Objects int            `json:"objects"`
		Totals  map[string]any `json:"totals"`
		Labels  map[string]string
	}
	b, err := os.ReadFile(filepath.Join(reports, urgent, "summary.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &sum))
	require.Equal(t, "completed", sum.Status)
	require.Equal(t, 8, sum.Objects)
	require.EqualValues(t, 8, sum.Totals["scored"])
	require.Equal(t, "fraud", sum.Labels["team"])

	// Nothing of the cancelled run reached the API.
	require.Len(t, fake.Ledger(), 8)
	out, _ = run("runs", "show", doomed)
	require.Regexp(t, `cancelled\s+5`, out)

	// Re-driving the cancelled objects sends them after all.
	out, _ = run("runs", "retry", doomed, "--status", "cancelled")
	require.Contains(t, out, "5 objects (cancelled) re-driven")
	out, stderr, code = cli(t, wctx2, "", append([]string{"runs", "watch", doomed, "--interval", "200ms"}, common...)...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "completed: 5/5 done, scored=5")

	out, _ = run("report", "--run", urgent, "--view", "run_summary", "--format", "csv")
	require.Contains(t, out, "run_id,name,status")
	require.Contains(t, out, urgent)
	out, _ = run("report", "--view", "api_usage_daily", "--format", "json")
	var usage []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &usage))
	require.Len(t, usage, 1)
	require.EqualValues(t, 13, usage[0]["api_calls"])
	require.EqualValues(t, 13, usage[0]["billable_answers"], "every answer of the fake API names its transaction")
	out, _ = run("report")
	require.Contains(t, out, "== score_histogram")

	other := t.TempDir()
	out, _ = run("runs", "report", doomed, "--to", other)
	require.Equal(t, filepath.Join(other, doomed, "results.csv"), strings.TrimSpace(out))
}
