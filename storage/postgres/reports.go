package postgres

import (
	"context"
	"fmt"
	"reverify"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Views are the reporting views, in the order `reverify report` lists them.
var Views = []string{"run_summary", "score_histogram", "errors_by_code", "score_drift", "latest_verification", "api_usage_daily", "reviews", "duplicate_images"}

// Table is the result of a reporting query: column names and rows of
// values as pgx decodes them.
type Table struct {
	Name    string
	Columns []string
	Rows    [][]any
}

// viewQueries orders each view, says whether it can be filtered by run and
// by a time window (on which column), and which SQL view it reads when
// that is not its name.
var viewQueries = map[string]struct {
	byRun   bool
	orderBy string
	from    string
	timeCol string
}{
	"run_summary":         {true, "created_at DESC", "", ""},
	"score_histogram":     {true, "run_id, bucket_from", "", ""},
	"errors_by_code":      {true, "run_id, objects DESC", "", ""},
	"score_drift":         {true, "delta", "", ""},
	"latest_verification": {true, "completed_at DESC", "", ""},
	"api_usage_daily":     {false, "day_utc", "", ""},
	"reviews":             {true, "reviewed_at, id", "review_report", "reviewed_at"},
	"duplicate_images":    {false, "keys DESC, last_seen DESC", "", ""},
}

// ViewHasWindow reports whether a view can be cut to a time window.
func ViewHasWindow(name string) bool { return viewQueries[name].timeCol != "" }

// View reads one reporting view, filtered to runID when it is set and the
// view has a run, at most limit rows (<= 0: all).
func (s *Store) View(ctx context.Context, name, runID string, limit int) (Table, error) {
	return s.ViewWindow(ctx, name, runID, time.Time{}, time.Time{}, limit)
}

// ViewWindow is View cut to rows at or after since and before until (zero:
// no bound) of a view that has a time (ViewHasWindow).
func (s *Store) ViewWindow(ctx context.Context, name, runID string, since, until time.Time, limit int) (Table, error) {
	q, ok := viewQueries[name]
	if !ok || !slices.Contains(Views, name) {
		return Table{}, fmt.Errorf("%w %q (want one of %v)", ErrUnknownView, name, Views)
	}
	from := name
	if q.from != "" {
		from = q.from
	}
	sql := `SELECT * FROM ` + pgx.Identifier{from}.Sanitize()
	var args []any
	var where []string
	if q.byRun && runID != "" {
		if err := checkRunID(runID); err != nil {
			return Table{}, err
		}
		args = append(args, runID)
		where = append(where, fmt.Sprintf(`run_id = $%d::uuid`, len(args)))
	}
	if (!since.IsZero() || !until.IsZero()) && q.timeCol == "" {
		return Table{}, fmt.Errorf("view %s has no time to cut a window on", name)
	}
	if !since.IsZero() {
		args = append(args, since)
		where = append(where, fmt.Sprintf(`%s >= $%d`, q.timeCol, len(args)))
	}
	if !until.IsZero() {
		args = append(args, until)
		where = append(where, fmt.Sprintf(`%s < $%d`, q.timeCol, len(args)))
	}
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	sql += ` ORDER BY ` + q.orderBy
	if limit > 0 {
		args = append(args, limit)
		sql += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return Table{}, fmt.Errorf("read %s: %w", name, err)
	}
	defer rows.Close()
	t := Table{Name: name}
	for _, fd := range rows.FieldDescriptions() {
		t.Columns = append(t.Columns, fd.Name)
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return Table{}, fmt.Errorf("read %s: %w", name, err)
		}
		t.Rows = append(t.Rows, vals)
	}
	if err := rows.Err(); err != nil {
		return Table{}, fmt.Errorf("read %s: %w", name, err)
	}
	return t, nil
}

// ObjectResult is one line of a completion report.
type ObjectResult struct {
	Bucket, Key, Version string
	Status               reverify.Status
	Score                *float64
	TransactionID        string
	ErrorCode            int
	Message              string
	ETag                 string // the verified bytes' ETag
	CompletedAt          *time.Time
	// The newest decision about these bytes (made in this run, or in any
	// run about the same ETag); "" when there is none.
	Decision    reverify.Decision
	ReviewState reverify.ReviewState
	Reviewer    string
	ReviewedAt  *time.Time
}

// ObjectResults calls fn for every object of a run, in key order, a page at
// a time, so a report of millions of rows needs no memory for them.
func (s *Store) ObjectResults(ctx context.Context, runID string, fn func(ObjectResult) error) error {
	return forEachByKey(ctx, s, "read results of run "+runID, runID,
		`v.bucket, v.object_key AS key, v.object_version AS version, v.status, v.liveness_score::float8 AS score,
			coalesce(v.transaction_id, '') AS transaction_id, coalesce(v.error_code, 0) AS error_code,
			coalesce(v.message, '') AS message, coalesce(v.object_etag, '') AS etag, v.completed_at,
			coalesce(d.decision, '') AS decision, coalesce(d.state, '') AS review_state,
			coalesce(d.reviewer, '') AS reviewer, d.reviewed_at`,
		`LEFT JOIN LATERAL (
			SELECT x.decision, x.state, x.reviewer, x.reviewed_at FROM reviews x
			WHERE x.bucket = v.bucket AND x.object_key = v.object_key
			  AND (x.run_id = v.run_id OR x.object_etag = v.object_etag)
			ORDER BY x.id DESC LIMIT 1) d ON true`, "",
		pgx.RowToStructByName[ObjectResult], func(o ObjectResult) (string, string) { return o.Bucket, o.Key }, fn)
}

// ScoreHistogram counts a run's scores in ten bands, [0,10) ... [90,100],
// from the score_histogram view.
func (s *Store) ScoreHistogram(ctx context.Context, runID string) ([10]int64, error) {
	var h [10]int64
	if err := checkRunID(runID); err != nil {
		return h, err
	}
	rows, err := s.pool.Query(ctx, `SELECT bucket_from, objects FROM score_histogram
		WHERE run_id = $1::uuid AND bucket_from IS NOT NULL`, runID)
	if err != nil {
		return h, fmt.Errorf("score histogram of run %s: %w", runID, err)
	}
	var from int
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&from, &n}, func() error {
		if band := from / 10; from >= 0 && band < len(h) {
			h[band] += n
		}
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("score histogram of run %s: %w", runID, err)
	}
	return h, nil
}
