package postgres

import (
	"context"
	"fmt"

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
