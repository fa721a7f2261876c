package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"reverify"
)

// Backlog returns the pending objects of the runs being sent (enqueuing or
// running) by run priority: the work the fleet has left, read from the
// counters (a few rows per run, however many objects it has). It is the
// backlog view split by priority; a priority without such runs is absent.
func (s *Store) Backlog(ctx context.Context) (map[reverify.Priority]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT r.priority, sum(c.objects)::bigint
		FROM run_counts c JOIN runs r ON r.id = c.run_id
		WHERE c.status = 'pending' AND r.status IN ('enqueuing', 'running')
		GROUP BY r.priority`)
	if err != nil {
		return nil, classify(fmt.Errorf("read the backlog: %w", err))
	}
	out := map[reverify.Priority]int64{}
	var p reverify.Priority
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&p, &n}, func() error {
		out[p] = n
		return nil
	}); err != nil {
		return nil, classify(fmt.Errorf("read the backlog: %w", err))
	}
	return out, nil
}

// RunsByStatus counts the runs in each status (a status without runs is
// absent): a failed run shows as a rise of the failed count.
func (s *Store) RunsByStatus(ctx context.Context) (map[reverify.RunStatus]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM runs GROUP BY status`)
	if err != nil {
		return nil, classify(fmt.Errorf("count runs by status: %w", err))
	}
	out := map[reverify.RunStatus]int64{}
	var st reverify.RunStatus
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&st, &n}, func() error {
		out[st] = n
		return nil
	}); err != nil {
		return nil, classify(fmt.Errorf("count runs by status: %w", err))
	}
	return out, nil
}

// OldestCallInFlight returns how long ago the oldest call still recorded
// in flight was sent (0 when none): a call whose answer was never recorded
// (its worker died mid-call) has an outcome nobody knows, billed or not.
// The partial index api_calls_in_flight_idx answers it in each partition.
func (s *Store) OldestCallInFlight(ctx context.Context) (time.Duration, error) {
	var secs float64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(extract(epoch FROM now() - min(called_at)), 0)::float8
		FROM api_calls WHERE outcome = 'in_flight'`).Scan(&secs)
	if err != nil {
		return 0, classify(fmt.Errorf("read the oldest call in flight: %w", err))
	}
	return time.Duration(max(secs, 0) * float64(time.Second)), nil
}
