package postgres

import (
	"context"
	"fmt"
	"reverify"
)

// ActiveRuns returns the runs whose objects may still need tasks: those
// enqueuing or running.
func (s *Store) ActiveRuns(ctx context.Context) ([]reverify.Run, error) {
	runs, err := queryRuns(ctx, s.pool, `SELECT `+runColumns+` FROM runs WHERE status IN ('enqueuing', 'running') ORDER BY created_at`)
	if err != nil {
		return nil, classify(fmt.Errorf("list active runs: %w", err))
	}
	return runs, nil
}
