package postgres

import (
	"context"
	"errors"
	"fmt"
	"reverify"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Views are the reporting views, in the order `reverify report` lists them.
var Views = []string{"run_summary", "score_histogram", "errors_by_code", "score_drift", "latest_verification", "api_usage_daily"}

// ErrUnknownView names a view that is not one of Views.
var ErrUnknownView = errors.New("unknown view")

// Table is the result of a reporting query: column names and rows of
// values as pgx decodes them.
type Table struct {
	Name    string
	Columns []string
	Rows    [][]any
}

// viewQueries orders each view and says whether it can be filtered by run.
var viewQueries = map[string]struct {
	byRun   bool
	orderBy string
}{
	"run_summary":         {true, "created_at DESC"},
	"score_histogram":     {true, "run_id, bucket_from"},
	"errors_by_code":      {true, "run_id, objects DESC"},
	"score_drift":         {true, "delta"},
	"latest_verification": {true, "completed_at DESC"},
	"api_usage_daily":     {false, "day_utc"},
}

// View reads one reporting view, filtered to runID when it is set and the
// view has a run, at most limit rows (<= 0: all).
func (s *Store) View(ctx context.Context, name, runID string, limit int) (Table, error) {
	q, ok := viewQueries[name]
	if !ok || !slices.Contains(Views, name) {
		return Table{}, fmt.Errorf("%w %q (want one of %v)", ErrUnknownView, name, Views)
	}
	sql := `SELECT * FROM ` + pgx.Identifier{name}.Sanitize()
	var args []any
	if q.byRun && runID != "" {
		args = append(args, runID)
		sql += ` WHERE run_id::text = $1`
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
}

// ObjectResults calls fn for every object of a run, in key order, a page at
// a time, so a report of millions of rows needs no memory for them.
func (s *Store) ObjectResults(ctx context.Context, runID string, fn func(ObjectResult) error) error {
	const page = 5000
	var lastBucket, lastKey string
	for {
		rows, err := s.pool.Query(ctx, `
			SELECT bucket, object_key, object_version, status, liveness_score::float8, coalesce(transaction_id, ''),
				coalesce(error_code, 0), coalesce(message, '')
			FROM verifications WHERE run_id::text = $1 AND (bucket, object_key) > ($2, $3)
			ORDER BY bucket, object_key LIMIT $4`, runID, lastBucket, lastKey, page)
		if err != nil {
			return fmt.Errorf("read results of run %s: %w", runID, err)
		}
		res, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ObjectResult, error) {
			var o ObjectResult
			err := row.Scan(&o.Bucket, &o.Key, &o.Version, &o.Status, &o.Score, &o.TransactionID, &o.ErrorCode, &o.Message)
			return o, err
		})
		if err != nil {
			return fmt.Errorf("read results of run %s: %w", runID, err)
		}
		for _, o := range res {
			if err := fn(o); err != nil {
				return err
			}
		}
		if len(res) < page {
			return nil
		}
		lastBucket, lastKey = res[len(res)-1].Bucket, res[len(res)-1].Key
	}
}
