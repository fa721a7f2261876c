package report

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"reverify"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"reverify/storage/postgres"
)

// Ledger is what a completion report reads; *postgres.Store satisfies it.
type Ledger interface {
	Run(ctx context.Context, id string) (reverify.Run, error)
	ObjectResults(ctx context.Context, runID string, fn func(postgres.ObjectResult) error) error
	View(ctx context.Context, name, runID string, limit int) (postgres.Table, error)
	History(ctx context.Context, id string) ([]postgres.StatusChange, error)
}

// PutObjectAPI uploads one object; *s3.Client satisfies it.
type PutObjectAPI interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Writer writes completion reports.
type Writer struct {
	ledger Ledger
	s3     PutObjectAPI // nil: s3:// destinations are refused
	now    func() time.Time
}

// NewWriter returns a Writer reading ledger and uploading with s3 (may be nil).
func NewWriter(ledger Ledger, s3 PutObjectAPI) *Writer {
	return &Writer{ledger: ledger, s3: s3, now: time.Now}
}

// CSVHeader is the first line of results.csv.
var CSVHeader = []string{"bucket", "key", "version", "status", "liveness_score", "transaction_id", "error_code", "message",
	"etag", "completed_at", "decision", "review_state", "reviewer", "reviewed_at"}

// Summary is summary.json.
type Summary struct {
	RunID       string                  `json:"run_id"`
	Name        string                  `json:"name"`
	Status      reverify.RunStatus      `json:"status"`
	Priority    reverify.Priority       `json:"priority"`
	Labels      map[string]string       `json:"labels"`
	Source      reverify.Source         `json:"source"`
	Options     json.RawMessage         `json:"options"`
	CreatedAt   time.Time               `json:"created_at"`
	StartedAt   *time.Time              `json:"started_at,omitempty"`
	FinishedAt  *time.Time              `json:"finished_at,omitempty"`
	Totals      map[string]any          `json:"totals"`
	Errors      []map[string]any        `json:"errors"`
	History     []postgres.StatusChange `json:"history"`
	Objects     int64                   `json:"objects"`
	ResultsFile string                  `json:"results_file"`
	GeneratedAt time.Time               `json:"generated_at"`
}

// Write writes the completion report of run runID under dest, a local
// directory or s3://bucket/prefix, as <dest>/<run-id>/results.csv and
// summary.json. It returns where results.csv went.
func (w *Writer) Write(ctx context.Context, runID, dest string) (string, error) {
	run, err := w.ledger.Run(ctx, runID)
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp("", "reverify-report-*.csv")
	if err != nil {
		return "", fmt.Errorf("report of run %s: %w", run.ID, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := w.results(ctx, run.ID, tmp)
	if err != nil {
		return "", fmt.Errorf("report of run %s: %w", run.ID, err)
	}
	sum, err := w.summary(ctx, run, n)
	if err != nil {
		return "", fmt.Errorf("report of run %s: %w", run.ID, err)
	}
	if rest, ok := strings.CutPrefix(dest, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		return w.upload(ctx, bucket, path.Join(prefix, run.ID), tmp, sum)
	}
	return w.local(filepath.Join(dest, run.ID), tmp, sum)
}

func (w *Writer) results(ctx context.Context, runID string, out io.Writer) (int64, error) {
	cw := csv.NewWriter(out)
	if err := cw.Write(CSVHeader); err != nil {
		return 0, err
	}
	var n int64
	err := w.ledger.ObjectResults(ctx, runID, func(o postgres.ObjectResult) error {
		n++
		score, code := "", ""
		if o.Score != nil {
			score = strconv.FormatFloat(*o.Score, 'f', 2, 64)
		}
		if o.ErrorCode != 0 {
			code = strconv.Itoa(o.ErrorCode)
		}
		return cw.Write([]string{o.Bucket, o.Key, o.Version, string(o.Status), score, o.TransactionID, code, o.Message,
			o.ETag, utcText(o.CompletedAt), string(o.Decision), string(o.ReviewState), o.Reviewer, utcText(o.ReviewedAt)})
	})
	if err != nil {
		return 0, err
	}
	cw.Flush()
	return n, cw.Error()
}

// utcText prints a time in UTC, RFC 3339 with Z and milliseconds; "" for none.
func utcText(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func (w *Writer) summary(ctx context.Context, run reverify.Run, n int64) ([]byte, error) {
	totals, err := w.ledger.View(ctx, "run_summary", run.ID, 1)
	if err != nil {
		return nil, err
	}
	errs, err := w.ledger.View(ctx, "errors_by_code", run.ID, 100)
	if err != nil {
		return nil, err
	}
	hist, err := w.ledger.History(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	s := Summary{
		RunID: run.ID, Name: run.Name, Status: run.Status, Priority: run.Priority, Labels: run.Labels,
		Source: run.Source, Options: run.Options, CreatedAt: run.CreatedAt, StartedAt: run.StartedAt,
		FinishedAt: run.FinishedAt, Totals: map[string]any{}, Errors: []map[string]any{}, History: hist,
		Objects: n, ResultsFile: "results.csv", GeneratedAt: w.now().UTC(),
	}
	if len(totals.Rows) == 1 {
		s.Totals = rowMap(totals.Columns, totals.Rows[0])
		for _, k := range []string{"run_id", "name", "status", "priority", "labels", "created_at", "started_at", "finished_at"} {
			delete(s.Totals, k)
		}
	}
	for _, row := range errs.Rows {
		m := rowMap(errs.Columns, row)
		delete(m, "run_id")
		s.Errors = append(s.Errors, m)
	}
	return json.MarshalIndent(s, "", "  ")
}

func (w *Writer) local(dir string, results *os.File, summary []byte) (string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("report directory: %w", err)
	}
	if _, err := results.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	csvPath := filepath.Join(dir, "results.csv")
	if err := writeFileAtomic(csvPath, func(f *os.File) error { _, err := io.Copy(f, results); return err }); err != nil {
		return "", err
	}
	if err := writeFileAtomic(filepath.Join(dir, "summary.json"), func(f *os.File) error { _, err := f.Write(summary); return err }); err != nil {
		return "", err
	}
	return csvPath, nil
}

// writeFileAtomic writes via a temporary file and a rename, so a reader
// never sees half a report.
func writeFileAtomic(name string, fill func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer os.Remove(f.Name())
	if err := fill(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func (w *Writer) upload(ctx context.Context, bucket, prefix string, results *os.File, summary []byte) (string, error) {
	if w.s3 == nil {
		return "", fmt.Errorf("report to s3://%s/%s: no S3 client configured", bucket, prefix)
	}
	if _, err := results.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	csvKey := prefix + "/results.csv"
	if _, err := w.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(csvKey),
		Body: results, ContentType: aws.String("text/csv")}); err != nil {
		return "", fmt.Errorf("upload report s3://%s/%s: %w", bucket, csvKey, err)
	}
	sumKey := prefix + "/summary.json"
	if _, err := w.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(sumKey),
		Body: strings.NewReader(string(summary)), ContentType: aws.String("application/json")}); err != nil {
		return "", fmt.Errorf("upload report s3://%s/%s: %w", bucket, sumKey, err)
	}
	return "s3://" + bucket + "/" + csvKey, nil
}
