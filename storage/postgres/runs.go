package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrRunNotFound is returned for a run ID that has no row.
var ErrRunNotFound = errors.New("run not found")

// Run statuses.
const (
	RunEnqueuing = "enqueuing"
	RunRunning   = "running"
	RunCompleted = "completed"
	RunCancelled = "cancelled"
	RunFailed    = "failed"
)

// Run is one campaign.
type Run struct {
	ID         string
	Name       string
	Status     string
	Queue      string
	Source     json.RawMessage
	Options    json.RawMessage
	Total      int64
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
}

// NewRun describes a run to create. Source and Options are stored as JSON.
type NewRun struct {
	Name    string
	Queue   string
	Source  any
	Options any
}

const runColumns = `id::text, name, status, queue, source, options, total, created_at, started_at, finished_at`

func scanRun(row pgx.Row) (Run, error) {
	var r Run
	err := row.Scan(&r.ID, &r.Name, &r.Status, &r.Queue, &r.Source, &r.Options, &r.Total, &r.CreatedAt, &r.StartedAt, &r.FinishedAt)
	return r, err
}

// CreateRun inserts a run in status enqueuing.
func (s *Store) CreateRun(ctx context.Context, nr NewRun) (Run, error) {
	source, err := json.Marshal(nr.Source)
	if err != nil {
		return Run{}, fmt.Errorf("encode run source: %w", err)
	}
	if nr.Options == nil {
		nr.Options = struct{}{}
	}
	options, err := json.Marshal(nr.Options)
	if err != nil {
		return Run{}, fmt.Errorf("encode run options: %w", err)
	}
	r, err := scanRun(s.pool.QueryRow(ctx,
		`INSERT INTO runs (name, queue, source, options) VALUES ($1, $2, $3, $4) RETURNING `+runColumns,
		nr.Name, nr.Queue, source, options))
	if err != nil {
		return Run{}, fmt.Errorf("create run: %w", err)
	}
	return r, nil
}

// Run returns one run, or ErrRunNotFound.
func (s *Store) Run(ctx context.Context, id string) (Run, error) {
	r, err := scanRun(s.pool.QueryRow(ctx, `SELECT `+runColumns+` FROM runs WHERE id::text = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Run{}, fmt.Errorf("run %s: %w", id, ErrRunNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("load run %s: %w", id, err)
	}
	return r, nil
}

// Runs returns the newest runs first.
func (s *Store) Runs(ctx context.Context, limit int) ([]Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+runColumns+` FROM runs ORDER BY created_at DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) { return scanRun(row) })
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// StartRun moves a run from enqueuing to running once all its objects are recorded.
func (s *Store) StartRun(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx,
		`UPDATE runs SET status = 'running', started_at = coalesce(started_at, now())
		 WHERE id::text = $1 AND status = 'enqueuing'`, id)
	if err != nil {
		return fmt.Errorf("start run %s: %w", id, err)
	}
	return nil
}

// CompleteFinishedRuns marks running runs that have no pending objects left
// as completed and returns their IDs.
func (s *Store) CompleteFinishedRuns(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		UPDATE runs r SET status = 'completed',
			finished_at = coalesce((SELECT max(completed_at) FROM verifications v WHERE v.run_id = r.id), now())
		WHERE r.status = 'running'
		  AND NOT EXISTS (SELECT 1 FROM verifications v WHERE v.run_id = r.id AND v.status = 'pending')
		RETURNING r.id::text`)
	if err != nil {
		return nil, fmt.Errorf("complete runs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("complete runs: %w", err)
	}
	return ids, nil
}

// Progress is a run's state at one moment.
type Progress struct {
	Run      Run
	ByStatus map[string]int64 // verification status -> rows
	Pending  int64
	Done     int64
	// RecentPerSecond is the completion rate over the last minute (or
	// since the run started, when that is shorter).
	RecentPerSecond float64
	// Score statistics over scored rows; zero when none.
	ScoreMin, ScoreAvg, ScoreMax float64
	PaidCalls                    int64
}

// Progress counts a run's verifications by status.
func (s *Store) Progress(ctx context.Context, id string) (Progress, error) {
	run, err := s.Run(ctx, id)
	if err != nil {
		return Progress{}, err
	}
	p := Progress{Run: run, ByStatus: map[string]int64{}}
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM verifications WHERE run_id = $1::uuid GROUP BY status`, run.ID)
	if err != nil {
		return Progress{}, fmt.Errorf("count run %s: %w", id, err)
	}
	var status string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&status, &n}, func() error {
		p.ByStatus[status] = n
		if status == StatusPending {
			p.Pending += n
		} else {
			p.Done += n
		}
		return nil
	})
	if err != nil {
		return Progress{}, fmt.Errorf("count run %s: %w", id, err)
	}
	var recent int64
	var window float64
	err = s.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE completed_at > now() - interval '1 minute'),
		       extract(epoch FROM least(interval '1 minute', now() - (SELECT created_at FROM runs WHERE id = $1::uuid)))::float8,
		       coalesce(min(liveness_score), 0)::float8, coalesce(avg(liveness_score), 0)::float8,
		       coalesce(max(liveness_score), 0)::float8,
		       (SELECT count(*) FROM api_calls c WHERE c.run_id = $1::uuid)
		FROM verifications WHERE run_id = $1::uuid AND status <> 'pending'`, run.ID).
		Scan(&recent, &window, &p.ScoreMin, &p.ScoreAvg, &p.ScoreMax, &p.PaidCalls)
	if err != nil {
		return Progress{}, fmt.Errorf("summarise run %s: %w", id, err)
	}
	if window > 0 {
		p.RecentPerSecond = float64(recent) / window
	}
	return p, nil
}
