package tasks

import (
	"context"
	"fmt"
	"reverify"
)

// ActiveRunLister lists runs whose objects may still need tasks.
type ActiveRunLister interface {
	ActiveRuns(ctx context.Context) ([]reverify.Run, error)
}

// RequeueActive re-enqueues every pending object of every active run, for
// when Redis lost its data. Task IDs make it a no-op for tasks Redis still
// holds. It returns the totals over all runs.
func (p *Producer) RequeueActive(ctx context.Context, runs ActiveRunLister) (Stats, error) {
	active, err := runs.ActiveRuns(ctx)
	if err != nil {
		return Stats{}, err
	}
	var total Stats
	for _, run := range active {
		s, err := p.Requeue(ctx, run)
		total.Seen += s.Seen
		total.Enqueued += s.Enqueued
		total.Duplicate += s.Duplicate
		if err != nil {
			return total, fmt.Errorf("requeue run %s: %w", run.ID, err)
		}
	}
	return total, nil
}
