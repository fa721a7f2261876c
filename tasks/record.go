package tasks

import (
	"context"
	"reverify"
)

// TaskDeleter removes a task from a queue; *asynq.Inspector satisfies it.
type TaskDeleter interface {
	DeleteTask(queue, id string) error
}

// WithReplaceArchived makes the producer replace a task whose ID is taken by
// an archived (or still queued) task instead of counting it as a duplicate.
// Retrying objects needs it: a task that failed for good stays archived
// under the ID a new task must use. Active tasks are never replaced.
func WithReplaceArchived(d TaskDeleter) ProducerOption {
	return func(p *Producer) { p.replace = d }
}

// Record streams src into the run's ledger as pending rows without
// enqueuing anything, e.g. to count a run before it is confirmed. Queue
// them later with Requeue.
func (p *Producer) Record(ctx context.Context, run reverify.Run, src Source, keep Filter) (Stats, error) {
	var c counters
	err := p.recordAll(ctx, run.ID, src, keep, &c, nil)
	return c.stats(), err
}

// EnqueueObjects enqueues tasks for objects already recorded for the run.
func (p *Producer) EnqueueObjects(ctx context.Context, run reverify.Run, objs []reverify.ObjectRef) (Stats, error) {
	var c counters
	err := p.pipeline(ctx, run, &c, func(ctx context.Context, out chan<- reverify.ObjectRef) error {
		for _, o := range objs {
			c.seen.Add(1)
			select {
			case out <- o:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	return c.stats(), err
}
