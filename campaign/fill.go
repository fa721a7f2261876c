package campaign

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"reverify"
	"reverify/tasks"
)

// Filled is what filling a run did.
type Filled struct {
	Run reverify.Run // as it stands afterwards
	tasks.Stats
	// Recent counts objects left out because they were scored recently
	// (the run's not_verified_since filter).
	Recent int64
	// Held is set when the run waits for `runs confirm`.
	Held bool
}

// FillOptions tune Fill.
type FillOptions struct {
	Resume   bool              // finish an interrupted fill
	Progress func(tasks.Stats) // told the running totals; may be nil
	Actor    reverify.Actor    // who fills it, for a hold's history entry
}

// Fill streams src into a run created with Create: every object the run's
// filters keep becomes a pending row. A run its gate holds then waits for
// Confirm; any other run starts, its objects dispatched to the task queue.
// Filling the same source again adds only what is missing, so an
// interrupted Fill is finished by calling it again with Resume, which also
// puts back tasks the interrupted one may have lost.
func (s *Service) Fill(ctx context.Context, run reverify.Run, src tasks.Source, o FillOptions) (Filled, error) {
	resume, progress := o.Resume, o.Progress
	opts, err := OptionsOf(run)
	if err != nil {
		return Filled{}, err
	}
	var recent atomic.Int64
	src = s.skipRecent(run, opts.Filters, src, &recent)
	keep := opts.Filters.Keep()
	popts := []tasks.ProducerOption{}
	if progress != nil {
		popts = append(popts, tasks.WithProgress(progress))
	}
	p, err := s.producer(popts...)
	if err != nil {
		return Filled{}, err
	}
	f := Filled{Run: run}
	if opts.Gate.counts() && !resume {
		// Count first: the run may have to wait before anything is sent.
		f.Stats, err = p.Record(ctx, run, src, keep)
		f.Recent = recent.Load()
		if err != nil {
			return f, interrupted(run, f.Recorded, err)
		}
		if f.Run, err = s.ledger.Run(ctx, run.ID); err != nil {
			return f, err
		}
		if opts.Gate.holds(f.Run.Total) {
			why := fmt.Sprintf("%d paid calls at most; confirmation required", f.Run.Total)
			f.Run, err = s.ledger.HoldForConfirmation(ctx, run.ID, reverify.Actor{Who: o.Actor.Who, Why: why})
			f.Held = err == nil
			return f, err
		}
		qs, err := s.start(ctx, f.Run, progress)
		f.Enqueued, f.Duplicate = qs.Enqueued, qs.Duplicate
		if err != nil {
			return f, err
		}
		f.Run, err = s.ledger.Run(ctx, run.ID)
		return f, err
	}
	f.Stats, err = p.Enqueue(ctx, run, src, keep)
	f.Recent = recent.Load()
	if err != nil {
		return f, interrupted(run, f.Recorded, err)
	}
	if resume {
		// Objects recorded earlier whose tasks may never have reached Redis.
		more, err := p.Requeue(ctx, run)
		if err != nil {
			return f, fmt.Errorf("requeue pending objects of run %s: %w", run.ID, err)
		}
		f.Enqueued += more.Enqueued
		f.Duplicate += more.Duplicate
	}
	f.Run, err = s.ledger.Run(ctx, run.ID)
	return f, err
}

// skipRecent drops objects scored within the run's not_verified_since
// window before the run was created.
func (s *Service) skipRecent(run reverify.Run, f tasks.Filters, src tasks.Source, n *atomic.Int64) tasks.Source {
	if f.NotVerifiedSince <= 0 {
		return src
	}
	since := run.CreatedAt.Add(-time.Duration(f.NotVerifiedSince))
	return tasks.SkipRecentlyScored(src, s.ledger, since, func(k int) { n.Add(int64(k)) })
}

// Confirm releases a run that waits for confirmation and starts it.
func (s *Service) Confirm(ctx context.Context, id string, who reverify.Actor, progress func(tasks.Stats)) (reverify.Run, tasks.Stats, error) {
	run, err := s.ledger.ConfirmRun(ctx, id, who)
	if err != nil {
		return reverify.Run{}, tasks.Stats{}, err
	}
	stats, err := s.start(ctx, run, progress)
	if err != nil {
		return run, stats, err
	}
	run, err = s.ledger.Run(ctx, run.ID)
	return run, stats, err
}

// start dispatches every recorded pending object of a run and marks it
// running.
func (s *Service) start(ctx context.Context, run reverify.Run, progress func(tasks.Stats)) (tasks.Stats, error) {
	var popts []tasks.ProducerOption
	if progress != nil {
		popts = append(popts, tasks.WithProgress(progress))
	}
	p, err := s.producer(popts...)
	if err != nil {
		return tasks.Stats{}, err
	}
	stats, err := p.Requeue(ctx, run)
	if err != nil {
		return stats, fmt.Errorf("run %s: queue its objects (finish with `reverify enqueue --run %s` and the same source): %w", run.ID, run.ID, err)
	}
	return stats, s.ledger.StartRun(ctx, run.ID)
}
