package report_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reverify"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/report"
	"reverify/storage/postgres"
)

// finishedRun records a run with one scored and one rejected object.
func finishedRun(t *testing.T) (*postgres.Store, reverify.Run) {
	t.Helper()
	ctx := context.Background()
	store := testenv.Ledger(t)
	run, err := store.CreateRun(ctx, postgres.NewRun{Name: t.Name(), Queue: "q", Source: reverify.Source{Kind: reverify.SourceManifest, Manifest: "test"}})
	require.NoError(t, err)
	a, b := reverify.ObjectRef{Bucket: "kyc", Key: "a, b.jpg"}, reverify.ObjectRef{Bucket: "kyc", Key: "Zoë.jpg"}
	_, err = store.AddObjects(ctx, run.ID, []reverify.ObjectRef{a, b})
	require.NoError(t, err)
	score := 91.25
	require.NoError(t, store.RecordResult(ctx, postgres.Result{RunID: run.ID, Object: a, Status: reverify.StatusScored, Score: &score, TransactionID: "tx-a",
		ETag: `"etag-a"`}))
	require.NoError(t, store.RecordResult(ctx, postgres.Result{RunID: run.ID, Object: b, Status: reverify.StatusRejected, ErrorCode: 1017,
		TransactionID: "tx-b", Message: "Fail to analyze face", ETag: `"etag-b"`}))
	return store, run
}

func readCSV(t *testing.T, r io.Reader) map[string][]string {
	t.Helper()
	rows, err := csv.NewReader(r).ReadAll()
	require.NoError(t, err)
	require.Equal(t, report.CSVHeader, rows[0])
	byKey := map[string][]string{}
	for _, row := range rows[1:] {
		byKey[row[1]] = row
	}
	return byKey
}

func TestCompletionReportToLocalDirectory(t *testing.T) {
	t.Parallel()
	store, run := finishedRun(t)
	dir := t.TempDir()
	where, err := report.NewWriter(store, nil).Write(context.Background(), run.ID, dir)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, run.ID, "results.csv"), where)
	f, err := os.Open(where)
	require.NoError(t, err)
	defer f.Close()
	rows := readCSV(t, f)
	require.Len(t, rows, 2)
	require.Contains(t, rows["a, b.jpg"], "91.25")
	require.Contains(t, rows["Zoë.jpg"], "1017")
	col := func(row []string, name string) string {
		t.Helper()
		i := slices.Index(report.CSVHeader, name)
		require.GreaterOrEqual(t, i, 0, name)
		return row[i]
	}
	require.Equal(t, `"etag-a"`, col(rows["a, b.jpg"], "etag"), "the verified ETag")
	done, err := time.Parse(time.RFC3339, col(rows["a, b.jpg"], "completed_at"))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), done, time.Hour)
	require.True(t, strings.HasSuffix(col(rows["a, b.jpg"], "completed_at"), "Z"), "in UTC")
	require.Empty(t, col(rows["a, b.jpg"], "decision"))
	raw, err := os.ReadFile(filepath.Join(dir, run.ID, "summary.json"))
	require.NoError(t, err)
	var sum map[string]any
	require.NoError(t, json.Unmarshal(raw, &sum))
	require.EqualValues(t, 2, sum["objects"])
}

func TestCompletionReportToS3(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, run := finishedRun(t)
	srv := testenv.S3(t)
	srv.CreateBucket(t, "reports")
	where, err := report.NewWriter(store, srv.Client).Write(ctx, run.ID, "s3://reports/reverify")
	require.NoError(t, err)
	require.Equal(t, "s3://reports/reverify/"+run.ID+"/results.csv", where)
	out, err := srv.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("reports"), Key: aws.String("reverify/" + run.ID + "/results.csv")})
	require.NoError(t, err)
	defer out.Body.Close()
	rows := readCSV(t, out.Body)
	require.Len(t, rows, 2)
	require.Contains(t, rows["a, b.jpg"], "tx-a")
	_, err = srv.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("reports"), Key: aws.String("reverify/" + run.ID + "/summary.json")})
	require.NoError(t, err)
}

// TestCompletionReportCarriesDecisions: each object's line has the newest
// decision about the bytes the run verified, made in this run or in an
// earlier one about the same ETag.
func TestCompletionReportCarriesDecisions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, run := finishedRun(t)
	earlier, err := store.CreateRun(ctx, postgres.NewRun{Name: "earlier", Queue: "q", Source: reverify.Source{Kind: reverify.SourceManifest, Manifest: "test"}})
	require.NoError(t, err)
	a := reverify.ObjectRef{Bucket: "kyc", Key: "a, b.jpg"}
	_, err = store.AddObjects(ctx, earlier.ID, []reverify.ObjectRef{a})
	require.NoError(t, err)
	low := 20.0
	require.NoError(t, store.RecordResult(ctx, postgres.Result{RunID: earlier.ID, Object: a, Status: reverify.StatusScored, Score: &low, ETag: `"etag-a"`}))
	require.NoError(t, store.RecordReview(ctx, postgres.Review{RunID: earlier.ID, Bucket: "kyc", Key: a.Key,
		Decision: reverify.DecisionConfirmedLive, Reviewer: "bob"}))
	require.NoError(t, store.RecordReview(ctx, postgres.Review{RunID: run.ID, Bucket: "kyc", Key: "Zoë.jpg",
		Decision: reverify.DecisionSuspectedSpoof, Reviewer: "ann", FourEyes: true}))

	where, err := report.NewWriter(store, nil).Write(ctx, run.ID, t.TempDir())
	require.NoError(t, err)
	f, err := os.Open(where)
	require.NoError(t, err)
	defer f.Close()
	rows := readCSV(t, f)
	tail := func(key string) []string { return rows[key][len(report.CSVHeader)-4:] }
	require.Equal(t, []string{"confirmed_live", "final", "bob"}, tail("a, b.jpg")[:3], "the earlier run's decision about the same ETag")
	require.Equal(t, []string{"suspected_spoof", "awaiting_second", "ann"}, tail("Zoë.jpg")[:3])
	_, err = time.Parse(time.RFC3339, tail("Zoë.jpg")[3])
	require.NoError(t, err, "reviewed_at")
}
