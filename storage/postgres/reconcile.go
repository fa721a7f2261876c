package postgres

import (
	"context"
	"fmt"
	"reverify"

	"github.com/jackc/pgx/v5"
)

// ActiveRuns returns the runs whose objects may still need tasks: those
// enqueuing or running.
func (s *Store) ActiveRuns(ctx context.Context) ([]reverify.Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+runColumns+` FROM runs WHERE status IN ('enqueuing', 'running') ORDER BY created_at`)
	if err != nil {
		return nil, classify(fmt.Errorf("list active runs: %w", err))
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (reverify.Run, error) { return scanRun(row) })
	if err != nil {
		return nil, classify(fmt.Errorf("list active runs: %w", err))
	}
	return runs, nil
}
