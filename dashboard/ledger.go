package dashboard

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound means the run or the object of a run does not exist.
var ErrNotFound = errors.New("not found")

// Decisions a reviewer can record, as stored in reviews.decision.
var Decisions = []Decision{
	{"confirmed_live", "Confirmed live"},
	{"suspected_spoof", "Suspected spoof"},
	{"needs_recheck", "Needs recheck"},
}

// Decision is one choice of the review form.
type Decision struct{ Value, Label string }

func validDecision(v string) bool {
	for _, d := range Decisions {
		if d.Value == v {
			return true
		}
	}
	return false
}

// Run is one run with its counts.
type Run struct {
	ID, Name, Status string
	Total            int64
	ByStatus         map[string]int64
	CreatedAt        time.Time
	StartedAt        *time.Time
	FinishedAt       *time.Time
}

// Done is the number of objects with a terminal result.
func (r Run) Done() int64 {
	var n int64
	for s, c := range r.ByStatus {
		if s != "pending" {
			n += c
		}
	}
	return n
}

// Item is one object of a run.
type Item struct {
	RunID, Bucket, Key, Version, Status string
	Score                               *float64
	ErrorCode                           *int32
	Message, TransactionID              string
	CompletedAt                         *time.Time
	Decision, Reviewer                  string // newest review, if any
}

// Review is one recorded decision.
type Review struct {
	RunID, Bucket, Key string
	Decision, Note     string
	Reviewer           string
	ReviewedAt         time.Time
}

// PGLedger reads runs and results and records reviews in PostgreSQL.
type PGLedger struct{ pool *pgxpool.Pool }

// NewLedger returns a ledger over a migrated database.
func NewLedger(pool *pgxpool.Pool) *PGLedger { return &PGLedger{pool: pool} }

const runCols = `id::text, name, status, total, created_at, started_at, finished_at`

func scanRun(row pgx.Row) (Run, error) {
	r := Run{ByStatus: map[string]int64{}}
	err := row.Scan(&r.ID, &r.Name, &r.Status, &r.Total, &r.CreatedAt, &r.StartedAt, &r.FinishedAt)
	return r, err
}

// Runs returns the newest runs with their counts by status.
func (l *PGLedger) Runs(ctx context.Context, limit int) ([]Run, error) {
	rows, err := l.pool.Query(ctx, `SELECT `+runCols+` FROM runs ORDER BY created_at DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) { return scanRun(row) })
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	if len(runs) == 0 {
		return runs, nil
	}
	ids := make([]string, len(runs))
	index := make(map[string]int, len(runs))
	for i, r := range runs {
		ids[i], index[r.ID] = r.ID, i
	}
	// One grouped count over the (run_id, status) index for the whole page.
	crows, err := l.pool.Query(ctx, `SELECT run_id::text, status, count(*) FROM verifications
		WHERE run_id = ANY($1::uuid[]) GROUP BY 1, 2`, ids)
	if err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	var id, status string
	var n int64
	_, err = pgx.ForEachRow(crows, []any{&id, &status, &n}, func() error {
		runs[index[id]].ByStatus[status] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	return runs, nil
}

// Run returns one run with its counts, or ErrNotFound.
func (l *PGLedger) Run(ctx context.Context, id string) (Run, error) {
	r, err := scanRun(l.pool.QueryRow(ctx, `SELECT `+runCols+` FROM runs WHERE id = $1::uuid`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Run{}, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("load run: %w", err)
	}
	rows, err := l.pool.Query(ctx, `SELECT status, count(*) FROM verifications WHERE run_id = $1::uuid GROUP BY 1`, r.ID)
	if err != nil {
		return Run{}, fmt.Errorf("count run: %w", err)
	}
	var status string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&status, &n}, func() error { r.ByStatus[status] = n; return nil }); err != nil {
		return Run{}, fmt.Errorf("count run: %w", err)
	}
	return r, nil
}

// Histogram counts a run's scores in ten bands: [0,10) ... [90,100].
func (l *PGLedger) Histogram(ctx context.Context, runID string) ([10]int64, error) {
	var h [10]int64
	rows, err := l.pool.Query(ctx, `
		SELECT least(width_bucket(liveness_score, 0, 100, 10), 10), count(*)
		FROM verifications WHERE run_id = $1::uuid AND status = 'scored' AND liveness_score IS NOT NULL
		GROUP BY 1`, runID)
	if err != nil {
		return h, fmt.Errorf("score histogram: %w", err)
	}
	var band int
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&band, &n}, func() error {
		if band >= 1 && band <= 10 {
			h[band-1] += n
		}
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("score histogram: %w", err)
	}
	return h, nil
}

const itemCols = `run_id::text, bucket, object_key, object_version, status, liveness_score::float8,
	error_code, coalesce(message, ''), coalesce(transaction_id, ''), completed_at`

// Failures returns a run's objects that ended without a score or refusal.
func (l *PGLedger) Failures(ctx context.Context, runID string, limit int) ([]Item, error) {
	rows, err := l.pool.Query(ctx, `SELECT `+itemCols+`, '', '' FROM verifications
		WHERE run_id = $1::uuid AND status IN ('failed', 'not_found', 'invalid_image')
		ORDER BY completed_at DESC NULLS LAST LIMIT $2`, runID, limit)
	if err != nil {
		return nil, fmt.Errorf("list failures: %w", err)
	}
	return collectItems(rows)
}

// ReviewQueue returns the review_queue view for a run at threshold: the
// unreviewed first, lowest scores first.
func (l *PGLedger) ReviewQueue(ctx context.Context, runID string, threshold float64, limit int) ([]Item, error) {
	tx, err := l.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("review queue: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	if _, err := tx.Exec(ctx, `SELECT set_config('reverify.review_threshold', $1, true)`,
		strconv.FormatFloat(threshold, 'f', -1, 64)); err != nil {
		return nil, fmt.Errorf("review queue: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT `+itemCols+`, coalesce(decision, ''), coalesce(reviewer, '')
		FROM review_queue WHERE run_id = $1::uuid
		ORDER BY decision IS NOT NULL, liveness_score NULLS LAST, object_key LIMIT $2`, runID, limit)
	if err != nil {
		return nil, fmt.Errorf("review queue: %w", err)
	}
	return collectItems(rows)
}

func collectItems(rows pgx.Rows) ([]Item, error) {
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Item, error) {
		var it Item
		err := row.Scan(&it.RunID, &it.Bucket, &it.Key, &it.Version, &it.Status, &it.Score,
			&it.ErrorCode, &it.Message, &it.TransactionID, &it.CompletedAt, &it.Decision, &it.Reviewer)
		return it, err
	})
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return items, nil
}

// Item returns one object of a run with its reviews, newest first.
func (l *PGLedger) Item(ctx context.Context, runID, bucket, key string) (Item, []Review, error) {
	rows, err := l.pool.Query(ctx, `SELECT `+itemCols+`, '', '' FROM verifications
		WHERE run_id = $1::uuid AND bucket = $2 AND object_key = $3`, runID, bucket, key)
	if err != nil {
		return Item{}, nil, fmt.Errorf("load object: %w", err)
	}
	items, err := collectItems(rows)
	if err != nil {
		return Item{}, nil, err
	}
	if len(items) == 0 {
		return Item{}, nil, fmt.Errorf("object of run %s: %w", runID, ErrNotFound)
	}
	rrows, err := l.pool.Query(ctx, `SELECT run_id::text, bucket, object_key, decision, note, reviewer, reviewed_at
		FROM reviews WHERE run_id = $1::uuid AND bucket = $2 AND object_key = $3
		ORDER BY reviewed_at DESC, id DESC`, runID, bucket, key)
	if err != nil {
		return Item{}, nil, fmt.Errorf("load reviews: %w", err)
	}
	reviews, err := pgx.CollectRows(rrows, func(row pgx.CollectableRow) (Review, error) {
		var r Review
		err := row.Scan(&r.RunID, &r.Bucket, &r.Key, &r.Decision, &r.Note, &r.Reviewer, &r.ReviewedAt)
		return r, err
	})
	if err != nil {
		return Item{}, nil, fmt.Errorf("load reviews: %w", err)
	}
	it := items[0]
	if len(reviews) > 0 {
		it.Decision, it.Reviewer = reviews[0].Decision, reviews[0].Reviewer
	}
	return it, reviews, nil
}

// RecordReview appends a decision. It returns ErrNotFound when the object
// is not part of the run.
func (l *PGLedger) RecordReview(ctx context.Context, r Review) error {
	if !validDecision(r.Decision) {
		return fmt.Errorf("unknown decision %q", r.Decision)
	}
	_, err := l.pool.Exec(ctx, `INSERT INTO reviews (run_id, bucket, object_key, decision, note, reviewer)
		VALUES ($1::uuid, $2, $3, $4, $5, $6)`, r.RunID, r.Bucket, r.Key, r.Decision, r.Note, r.Reviewer)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "23503" || pgErr.Code == "22P02") { // FK violation, bad uuid
		return fmt.Errorf("object of run %s: %w", r.RunID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("record review: %w", err)
	}
	return nil
}
