package campaign

import (
	"context"
	"fmt"

	"reverify"
)

// Pause stops a run's objects from being sent until Resume: the feeder
// dispatches no more of them and the tasks already queued wait.
func (s *Service) Pause(ctx context.Context, id string, who reverify.Actor) (reverify.Run, error) {
	return s.ledger.PauseRun(ctx, id, who)
}

// Resume continues a paused run.
func (s *Service) Resume(ctx context.Context, id string, who reverify.Actor) (reverify.Run, error) {
	return s.ledger.ResumeRun(ctx, id, who)
}

// Cancel ends a run that has not ended: nothing more of it reaches the API
// and its pending objects become cancelled (at once when they are few, in
// the background otherwise). It returns the run and how many objects were
// pending; the completion report is written when the run asked for one.
func (s *Service) Cancel(ctx context.Context, id string, who reverify.Actor) (reverify.Run, int64, error) {
	run, n, err := s.ledger.CancelRun(ctx, id, who)
	if err != nil {
		return run, n, err
	}
	s.ended(ctx, run.ID, reverify.RunCancelled)
	return run, n, nil
}

// Retry re-drives a run's objects in the given statuses: they become
// pending again, at the back of the run's dispatch order, and the run
// running again (unless paused), so the feeder dispatches them. It returns
// the run and how many objects were reset.
func (s *Service) Retry(ctx context.Context, id string, statuses []reverify.Status, who reverify.Actor) (reverify.Run, int64, error) {
	return s.ledger.RetryObjects(ctx, id, statuses, who)
}

// SetPriority changes the priority of a run that has not ended; the
// feeder's next top-up sends its tasks to the new priority's queue.
func (s *Service) SetPriority(ctx context.Context, id string, p reverify.Priority, who reverify.Actor) (reverify.Run, error) {
	p, err := reverify.ParsePriority(string(p))
	if err != nil {
		return reverify.Run{}, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	run, err := s.ledger.Run(ctx, id)
	if err != nil {
		return reverify.Run{}, err
	}
	base := run.Priority.BaseQueue(run.Queue)
	return s.ledger.SetPriority(ctx, id, p, p.Queue(base), who)
}

// SetLimits changes the caps of a run that has not ended (zero fields:
// no cap); the workers follow within seconds.
func (s *Service) SetLimits(ctx context.Context, id string, lim reverify.RunLimits, who reverify.Actor) (reverify.Run, error) {
	if err := lim.Validate(); err != nil {
		return reverify.Run{}, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	return s.ledger.SetLimits(ctx, id, lim, who)
}

// Delete removes an ended run and everything recorded under it.
func (s *Service) Delete(ctx context.Context, id string, who reverify.Actor) (int64, error) {
	return s.ledger.DeleteRun(ctx, id, who)
}

// Reconciled is what Reconcile did.
type Reconciled struct {
	Dispatched int64 // objects handed to the queue that have no result
	Enqueued   int64 // tasks put back
	Duplicate  int64 // tasks the queue still held
}

// Reconcile puts back the task of every object of a run that was
// dispatched and has no result yet, e.g. after Redis lost its data. Tasks
// the queue still holds are not duplicated (their IDs collide), so it is
// safe at any time; the feeder does the same for every run it feeds.
func (s *Service) Reconcile(ctx context.Context, id string) (Reconciled, error) {
	if s.queue == nil {
		return Reconciled{}, ErrNoQueue
	}
	run, err := s.ledger.Run(ctx, id)
	if err != nil {
		return Reconciled{}, err
	}
	hw, err := s.ledger.DispatchedSeq(ctx, run.ID)
	if err != nil {
		return Reconciled{}, err
	}
	objs, err := s.ledger.Dispatched(ctx, run.ID, hw)
	if err != nil {
		return Reconciled{}, err
	}
	enq, dup, err := dispatch(ctx, s.queue, run, objs, dispatchConcurrency)
	return Reconciled{Dispatched: int64(len(objs)), Enqueued: enq, Duplicate: dup}, err
}
