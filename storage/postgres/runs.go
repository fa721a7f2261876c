package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reverify"
	"time"

	"github.com/jackc/pgx/v5"
)

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
	Notify    []string // webhooks told of the run's events
	// TriggerKey makes creation idempotent: a second CreateRun with the
	// same key returns the first run.
	TriggerKey string
	Actor      reverify.Actor
	// ReuseWithin, when set, lets an object whose bytes were scored in
	// another run at most this long before the run's creation take that
	// result (runs.reuse_since; ClaimContent).
	ReuseWithin time.Duration
	Limits      reverify.RunLimits // the run's own caps on its API calls
}

// runColumns selects a runs row as runRow reads it.
const runColumns = `id::text AS id, name, status, queue, source, options, total, created_at, started_at, finished_at,
	labels, priority, fail_percent::float8 AS fail_percent, fail_min_done, coalesce(fail_count, 0) AS fail_count,
	coalesce(report_to, '') AS report_to, coalesce(plan_token, '') AS plan_token, planned_at, status_changed_at, notify,
	max_rate, rate_schedule, max_in_flight`

// runRow is a runs row; reverify.Run keeps its threshold in a struct of
// its own and carries no column names.
type runRow struct {
	ID              string             `db:"id"`
	Name            string             `db:"name"`
	Status          reverify.RunStatus `db:"status"`
	Queue           string             `db:"queue"`
	Source          reverify.Source    `db:"source"`
	Options         json.RawMessage    `db:"options"`
	Total           int64              `db:"total"`
	CreatedAt       time.Time          `db:"created_at"`
	StartedAt       *time.Time         `db:"started_at"`
	FinishedAt      *time.Time         `db:"finished_at"`
	Labels          map[string]string  `db:"labels"`
	Priority        reverify.Priority  `db:"priority"`
	FailPercent     float64            `db:"fail_percent"`
	FailMinDone     int64              `db:"fail_min_done"`
	FailCount       int64              `db:"fail_count"`
	ReportTo        string             `db:"report_to"`
	PlanToken       string             `db:"plan_token"`
	PlannedAt       *time.Time         `db:"planned_at"`
	StatusChangedAt time.Time          `db:"status_changed_at"`
	Notify          []string           `db:"notify"`
	MaxRate         float64            `db:"max_rate"`
	RateSchedule    string             `db:"rate_schedule"`
	MaxInFlight     int                `db:"max_in_flight"`
}

func (r runRow) run() reverify.Run {
	lim := reverify.RunLimits{MaxRate: r.MaxRate, MaxInFlight: r.MaxInFlight}
	// Stored only after ParseRateSchedule read it; a zone the host no
	// longer knows leaves the run capped at max_rate alone.
	_ = lim.Schedule.UnmarshalText([]byte(r.RateSchedule))
	return reverify.Run{
		Limits: lim,
		ID:     r.ID, Name: r.Name, Status: r.Status, Queue: r.Queue, Source: r.Source, Options: r.Options,
		Total: r.Total, CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		Labels: r.Labels, Priority: r.Priority,
		Threshold: reverify.Threshold{Percent: r.FailPercent, MinDone: r.FailMinDone, Count: r.FailCount},
		ReportTo:  r.ReportTo, PlanToken: r.PlanToken, PlannedAt: r.PlannedAt, StatusChangedAt: r.StatusChangedAt,
		Notify: r.Notify,
	}
}

// querier is what a read needs: a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryRuns reads the runs a query selecting runColumns returns.
func queryRuns(ctx context.Context, q querier, sql string, args ...any) ([]reverify.Run, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[runRow])
	if err != nil {
		return nil, err
	}
	runs := make([]reverify.Run, len(rs))
	for i, r := range rs {
		runs[i] = r.run()
	}
	return runs, nil
}

// queryRun reads the one run a query selecting runColumns returns, or
// pgx.ErrNoRows.
func queryRun(ctx context.Context, q querier, sql string, args ...any) (reverify.Run, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return reverify.Run{}, err
	}
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[runRow])
	if err != nil {
		return reverify.Run{}, err
	}
	return r.run(), nil
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
	if nr.Notify == nil {
		nr.Notify = []string{}
	}
	th := reverify.DefaultThreshold()
	if nr.Threshold != nil {
		th = *nr.Threshold
	}
	var r reverify.Run
	err = s.withActor(ctx, nr.Actor, func(tx pgx.Tx) error {
		r, err = queryRun(ctx, tx, `
			INSERT INTO runs (name, queue, source, options, status, labels, priority, fail_percent, fail_min_done,
				fail_count, report_to, trigger_key, notify, reuse_since, max_rate, rate_schedule, max_in_flight)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, nullif($10, 0), nullif($11, ''), nullif($12, ''), $13,
				CASE WHEN $14::float8 > 0 THEN now() - make_interval(secs => $14::float8) END, $15, $16, $17)
			ON CONFLICT (trigger_key) DO NOTHING
			RETURNING `+runColumns,
			nr.Name, nr.Queue, source, options, nr.Status, nr.Labels, nr.Priority, th.Percent, th.MinDone,
			th.Count, nr.ReportTo, nr.TriggerKey, nr.Notify, nr.ReuseWithin.Seconds(),
			nr.Limits.MaxRate, nr.Limits.Schedule.String(), nr.Limits.MaxInFlight)
		if errors.Is(err, pgx.ErrNoRows) {
			r, err = queryRun(ctx, tx, `SELECT `+runColumns+` FROM runs WHERE trigger_key = $1`, nr.TriggerKey)
			return err
		}
		if err != nil {
			return err
		}
		// The run's objects and calls live in partitions of their own.
		if _, err = tx.Exec(ctx, `SELECT reverify_add_run_partitions($1::uuid)`, r.ID); err != nil {
			return err
		}
		detail := map[string]any{"name": r.Name, "source": r.Source, "status": r.Status}
		if !nr.Limits.IsZero() {
			detail["limits"] = limitsDetail(nr.Limits)
		}
		return audit(ctx, tx, nr.Actor, reverify.AuditRunCreate, r.ID, nil, detail)
	})
	if err != nil {
		return reverify.Run{}, fmt.Errorf("create run: %w", err)
	}
	return r, nil
}

// Run returns one run, or ErrRunNotFound.
func (s *Store) Run(ctx context.Context, id string) (reverify.Run, error) {
	if err := checkRunID(id); err != nil {
		return reverify.Run{}, err
	}
	r, err := queryRun(ctx, s.pool, `SELECT `+runColumns+` FROM runs WHERE id = $1::uuid`, id)
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
	runs, err := queryRuns(ctx, s.pool, `SELECT `+runColumns+` FROM runs
		WHERE labels @> $2 AND ($3 = '' OR status = $3)
		ORDER BY created_at DESC LIMIT $1`, f.Limit, f.Labels, f.Status)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// StartRun moves a run from enqueuing to running once all its objects are
// recorded. A run paused meanwhile stays paused (and resumes as running).
func (s *Store) StartRun(ctx context.Context, id string) error {
	if err := checkRunID(id); err != nil {
		return err
	}
	err := s.withActor(ctx, reverify.Actor{Who: "reverify", Why: "all objects recorded and queued"}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx,
			`UPDATE runs SET status = CASE WHEN status = 'enqueuing' THEN 'running' ELSE status END,
				started_at = coalesce(started_at, now())
			 WHERE id = $1::uuid AND status IN ('enqueuing', 'paused')`, id)
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
			UPDATE runs r SET status = 'completed', finished_at = now()
			WHERE r.status = 'running'
			  AND coalesce((SELECT sum(objects) FROM run_counts c WHERE c.run_id = r.id AND c.status = 'pending'), 0) = 0
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

// RunCounts is a run with its objects counted by verification status.
type RunCounts struct {
	Run      reverify.Run
	ByStatus map[reverify.Status]int64 // verification status -> rows
	Pending  int64
	Done     int64 // objects with a terminal result
}

// RunWithCounts returns one run with its objects counted by status, or
// ErrRunNotFound.
func (s *Store) RunWithCounts(ctx context.Context, id string) (RunCounts, error) {
	run, err := s.Run(ctx, id)
	if err != nil {
		return RunCounts{}, err
	}
	counts, err := s.countByStatus(ctx, []reverify.Run{run})
	if err != nil {
		return RunCounts{}, err
	}
	return counts[0], nil
}

// RunsWithCounts returns the newest runs matching f first, each with its
// objects counted by status.
func (s *Store) RunsWithCounts(ctx context.Context, f RunFilter) ([]RunCounts, error) {
	runs, err := s.Runs(ctx, f)
	if err != nil {
		return nil, err
	}
	return s.countByStatus(ctx, runs)
}

// countByStatus reads the runs' counters by status in one query: a few rows
// per run, however many objects it has.
func (s *Store) countByStatus(ctx context.Context, runs []reverify.Run) ([]RunCounts, error) {
	out := make([]RunCounts, len(runs))
	if len(runs) == 0 {
		return out, nil
	}
	ids := make([]string, len(runs))
	index := make(map[string]int, len(runs))
	for i, r := range runs {
		out[i] = RunCounts{Run: r, ByStatus: map[reverify.Status]int64{}}
		ids[i], index[r.ID] = r.ID, i
	}
	rows, err := s.pool.Query(ctx, `SELECT run_id::text, status, sum(objects)::bigint FROM run_counts
		WHERE run_id = ANY($1::uuid[]) GROUP BY 1, 2 HAVING sum(objects) <> 0`, ids)
	if err != nil {
		return nil, fmt.Errorf("count objects by status: %w", err)
	}
	var id string
	var status reverify.Status
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&id, &status, &n}, func() error {
		c := &out[index[id]]
		c.ByStatus[status] = n
		if status.Terminal() {
			c.Done += n
		} else {
			c.Pending += n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count objects by status: %w", err)
	}
	return out, nil
}

// Progress is a run's state at one moment.
type Progress struct {
	RunCounts
	// RecentPerSecond is the completion rate over the last sampling
	// interval (SampleRates), 0 before the first.
	RecentPerSecond float64
	// Score statistics over scored rows; zero when none.
	ScoreMin, ScoreAvg, ScoreMax float64
	// APICalls counts the calls made to the API for the run, whatever
	// their outcome (429, 401/403, 5xx and calls in flight included).
	APICalls int64
	// BillableAnswers counts the answers that carried a transaction ID:
	// what the vendor bills.
	BillableAnswers int64
}

// Progress reads a run's counters: its objects by status, scores, API calls
// and recent rate, without counting rows.
func (s *Store) Progress(ctx context.Context, id string) (Progress, error) {
	counts, err := s.RunWithCounts(ctx, id)
	if err != nil {
		return Progress{}, err
	}
	p := Progress{RunCounts: counts}
	err = s.pool.QueryRow(ctx, `
		SELECT coalesce(min(score_min) FILTER (WHERE status = 'scored' AND objects > 0), 0)::float8,
		       coalesce(sum(score_sum) FILTER (WHERE status = 'scored')
		                / nullif(sum(objects) FILTER (WHERE status = 'scored'), 0), 0)::float8,
		       coalesce(max(score_max) FILTER (WHERE status = 'scored' AND objects > 0), 0)::float8,
		       (SELECT coalesce(sum(calls), 0) FROM run_calls WHERE run_id = $1::uuid)::bigint,
		       (SELECT coalesce(sum(billable), 0) FROM run_calls WHERE run_id = $1::uuid)::bigint,
		       (SELECT coalesce(rate_per_second, 0) FROM runs WHERE id = $1::uuid)::float8
		FROM run_counts WHERE run_id = $1::uuid`, p.Run.ID).
		Scan(&p.ScoreMin, &p.ScoreAvg, &p.ScoreMax, &p.APICalls, &p.BillableAnswers, &p.RecentPerSecond)
	if err != nil {
		return Progress{}, fmt.Errorf("summarise run %s: %w", id, err)
	}
	return p, nil
}

// SampleRates updates the recent completion rate of every run that is
// being sent, at most once per interval: objects finished since the last
// sample, per second. One process of the fleet calls it (the feeder).
func (s *Store) SampleRates(ctx context.Context, interval time.Duration) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE runs r SET rate_per_second = CASE WHEN r.rate_at IS NULL THEN NULL
		           ELSE greatest(d.done - r.rate_done, 0) / greatest(extract(epoch FROM now() - r.rate_at), 0.001) END,
		       rate_at = now(), rate_done = d.done
		FROM (SELECT c.run_id, coalesce(sum(c.objects) FILTER (WHERE c.status <> 'pending'), 0) AS done
		      FROM run_counts c JOIN runs x ON x.id = c.run_id
		      WHERE x.status IN ('enqueuing', 'running', 'paused') GROUP BY c.run_id) d
		WHERE r.id = d.run_id AND (r.rate_at IS NULL OR r.rate_at <= now() - make_interval(secs => $1))`,
		interval.Seconds())
	if err != nil {
		return classify(fmt.Errorf("sample run rates: %w", err))
	}
	return nil
}
