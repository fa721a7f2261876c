package campaign

import (
	"context"
	"fmt"
	"time"

	"reverify"
	"reverify/tasks"
)

// Pause stops a run's objects from being sent until Resume; its tasks wait
// in the queue.
func (s *Service) Pause(ctx context.Context, id string, who reverify.Actor) (reverify.Run, error) {
	return s.ledger.PauseRun(ctx, id, who)
}

// Resume continues a paused run.
func (s *Service) Resume(ctx context.Context, id string, who reverify.Actor) (reverify.Run, error) {
	return s.ledger.ResumeRun(ctx, id, who)
}

// Cancel ends a run that has not ended: nothing more of it reaches the API
// and its pending objects become cancelled. It returns the run and how many
// objects were cancelled; the completion report is written when the run
// asked for one.
func (s *Service) Cancel(ctx context.Context, id string, who reverify.Actor) (reverify.Run, int64, error) {
	run, n, err := s.ledger.CancelRun(ctx, id, who)
	if err != nil {
		return run, n, err
	}
	s.ended(ctx, run.ID, reverify.RunCancelled)
	return run, n, nil
}

// Retried is what Retry did.
type Retried struct {
	Run   reverify.Run
	Reset int64 // objects put back to pending
	tasks.Stats
}

// Retry re-drives a run's objects in the given statuses: they become
// pending again (the run running again, unless paused) and their tasks are
// queued, replacing a task of the same object that failed for good and
// stayed archived.
func (s *Service) Retry(ctx context.Context, id string, statuses []reverify.Status, who reverify.Actor) (Retried, error) {
	if s.queue == nil {
		return Retried{}, ErrNoQueue
	}
	run, n, err := s.ledger.RetryObjects(ctx, id, statuses, who)
	if err != nil {
		return Retried{}, err
	}
	var opts []tasks.ProducerOption
	if s.archive != nil {
		opts = append(opts, tasks.WithReplaceArchived(s.archive))
	}
	p, err := s.producer(opts...)
	if err != nil {
		return Retried{}, err
	}
	stats, err := p.Requeue(ctx, run)
	if err != nil {
		return Retried{Run: run, Reset: n, Stats: stats},
			fmt.Errorf("run %s: %d objects reset but not all queued (run `reverify runs retry %s` again): %w", run.ID, n, run.ID, err)
	}
	return Retried{Run: run, Reset: n, Stats: stats}, nil
}

// Reconcile puts back the task of every object of a run that has no result
// yet. Tasks the queue still holds are not duplicated (their IDs collide),
// so it is safe at any time, e.g. after Redis lost its data.
func (s *Service) Reconcile(ctx context.Context, id string) (tasks.Stats, error) {
	run, err := s.ledger.Run(ctx, id)
	if err != nil {
		return tasks.Stats{}, err
	}
	p, err := s.producer()
	if err != nil {
		return tasks.Stats{}, err
	}
	return p.Requeue(ctx, run)
}

// ReconcileActive reconciles every run that is enqueuing or running. Across
// a fleet that calls it every `every`, one process does the work per
// period (the Lock); the others return at once.
func (s *Service) ReconcileActive(ctx context.Context, every time.Duration) (tasks.Stats, error) {
	if s.lock != nil {
		ok, err := s.lock.TryLock(ctx, "reconcile", every*9/10)
		if err != nil || !ok {
			return tasks.Stats{}, err
		}
	}
	p, err := s.producer()
	if err != nil {
		return tasks.Stats{}, err
	}
	st, err := p.RequeueActive(ctx, s.ledger)
	if st.Enqueued > 0 {
		s.log.WarnContext(ctx, "reconcile re-enqueued tasks Redis had lost", "tasks", st.Enqueued, "pending", st.Seen)
	}
	return st, err
}
