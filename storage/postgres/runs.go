package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reverify"

	"github.com/jackc/pgx/v5"
)

// ErrRunNotFound is returned for a run ID that has no row.
var ErrRunNotFound = errors.New("run not found")

// NewRun describes a run to create. Source and Options are stored as JSON.
type NewRun struct {
	Name      string
	Queue     string
	Source    reverify.Source
	Options   any
	Status    reverify.RunStatus // enqueuing (default) or awaiting_confirmation
	Labels    map[string]string
	Priority  reverify.Priority   // default normal
	Threshold *reverify.Threshold // nil = reverify.DefaultThreshold
	ReportTo  string
	// TriggerKey makes creation idempotent: a second CreateRun with the
	// same key returns the first run.
	TriggerKey string
	Actor      reverify.Actor
}

const runColumns = `id::text, name, status, queue, source, options, total, created_at, started_at, finished_at,
	labels, priority, fail_percent::float8, fail_min_done, coalesce(fail_count, 0), coalesce(report_to, ''),
	coalesce(plan_token, ''), planned_at, status_changed_at`

func scanRun(row pgx.Row) (reverify.Run, error) {
	var r reverify.Run
	err := row.Scan(&r.ID, &r.Name, &r.Status, &r.Queue, &r.Source, &r.Options, &r.Total, &r.CreatedAt, &r.StartedAt, &r.FinishedAt,
		&r.Labels, &r.Priority, &r.Threshold.Percent, &r.Threshold.MinDone, &r.Threshold.Count, &r.ReportTo,
		&r.PlanToken, &r.PlannedAt, &r.StatusChangedAt)
	return r, err
}

// CreateRun inserts a run, in status enqueuing unless nr says otherwise.
func (s *Store) CreateRun(ctx context.Context, nr NewRun) (reverify.Run, error) {
	source, err := json.Marshal(nr.Source)
	if err != nil {
		return reverify.Run{}, fmt.Errorf("encode run source: %w", err)
	}
	if nr.Options == nil {
		nr.Options = struct{}{}
	}
	options, err := json.Marshal(nr.Options)
	if err != nil {
		return reverify.Run{}, fmt.Errorf("encode run options: %w", err)
	}
	if nr.Status == "" {
		nr.Status = reverify.RunEnqueuing
	}
	if nr.Priority == "" {
		nr.Priority = reverify.PriorityNormal
	}
	if nr.Labels == nil {
		nr.Labels = map[string]string{}
	}
	th := reverify.DefaultThreshold()
	if nr.Threshold != nil {
		th = *nr.Threshold
	}
	var r reverify.Run
	err = s.withActor(ctx, nr.Actor, func(tx pgx.Tx) error {
		r, err = scanRun(tx.QueryRow(ctx, `
			INSERT INTO runs (name, queue, source, options, status, labels, priority, fail_percent, fail_min_done,
				fail_count, report_to, trigger_key)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, nullif($10, 0), nullif($11, ''), nullif($12, ''))
			ON CONFLICT (trigger_key) DO NOTHING
			RETURNING `+runColumns,
			nr.Name, nr.Queue, source, options, nr.Status, nr.Labels, nr.Priority, th.Percent, th.MinDone,
			th.Count, nr.ReportTo, nr.TriggerKey))
		if errors.Is(err, pgx.ErrNoRows) {
			r, err = scanRun(tx.QueryRow(ctx, `SELECT `+runColumns+` FROM runs WHERE trigger_key = $1`, nr.TriggerKey))
		}
		return err
	})
	if err != nil {
		return reverify.Run{}, fmt.Errorf("create run: %w", err)
	}
	return r, nil
}

// Run returns one run, or ErrRunNotFound.
func (s *Store) Run(ctx context.Context, id string) (reverify.Run, error) {
	r, err := scanRun(s.pool.QueryRow(ctx, `SELECT `+runColumns+` FROM runs WHERE id::text = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return reverify.Run{}, fmt.Errorf("run %s: %w", id, ErrRunNotFound)
	}
	if err != nil {
		return reverify.Run{}, fmt.Errorf("load run %s: %w", id, err)
	}
	return r, nil
}

// RunFilter selects runs; zero fields match everything.
type RunFilter struct {
	Labels map[string]string // every label must match
	Status reverify.RunStatus
	Limit  int
}

// Runs returns the newest runs matching f first.
func (s *Store) Runs(ctx context.Context, f RunFilter) ([]reverify.Run, error) {
	if f.Labels == nil {
		f.Labels = map[string]string{}
	}
	if f.Limit <= 0 {
		f.Limit = 20
	}
	rows, err := s.pool.Query(ctx, `SELECT `+runColumns+` FROM runs
		WHERE labels @> $2 AND ($3 = '' OR status = $3)
		ORDER BY created_at DESC LIMIT $1`, f.Limit, f.Labels, f.Status)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (reverify.Run, error) { return scanRun(row) })
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// StartRun moves a run from enqueuing to running once all its objects are
// recorded. A run paused meanwhile stays paused (and resumes as running).
func (s *Store) StartRun(ctx context.Context, id string) error {
	err := s.withActor(ctx, reverify.Actor{Who: "reverify", Why: "all objects recorded and queued"}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx,
			`UPDATE runs SET status = CASE WHEN status = 'enqueuing' THEN 'running' ELSE status END,
				started_at = coalesce(started_at, now())
			 WHERE id::text = $1 AND status IN ('enqueuing', 'paused')`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("start run %s: %w", id, err)
	}
	return nil
}

// CompleteFinishedRuns marks running runs that have no pending objects left
// as completed and returns their IDs.
func (s *Store) CompleteFinishedRuns(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.withActor(ctx, reverify.Actor{Who: "reverify-worker", Why: "no objects left to process"}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			UPDATE runs r SET status = 'completed',
				finished_at = coalesce((SELECT max(completed_at) FROM verifications v WHERE v.run_id = r.id), now())
			WHERE r.status = 'running'
			  AND NOT EXISTS (SELECT 1 FROM verifications v WHERE v.run_id = r.id AND v.status = 'pending')
			RETURNING r.id::text`)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("complete runs: %w", err)
	}
	return ids, nil
}

// Progress is a run's state at one moment.
type Progress struct {
	Run      reverify.Run
	ByStatus map[reverify.Status]int64 // verification status -> rows
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
	p := Progress{Run: run, ByStatus: map[reverify.Status]int64{}}
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM verifications WHERE run_id = $1::uuid GROUP BY status`, run.ID)
	if err != nil {
		return Progress{}, fmt.Errorf("count run %s: %w", id, err)
	}
	var status reverify.Status
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&status, &n}, func() error {
		p.ByStatus[status] = n
		if status == reverify.StatusPending {
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
