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
	Progress func(tasks.Stats) // told the running totals; may be nil
	Actor    reverify.Actor    // who fills it, for a hold's history entry
}

// Fill streams src into a run created with Create: every object the run's
// filters keep becomes a pending row, recorded in bulk. A run its gate
// holds then waits for Confirm; any other run starts, and the Feeder
// dispatches its objects to the task queue a window at a time — already
// while it is being filled, unless its gate must count it first. Filling
// the same source again adds only what is missing, so an interrupted Fill
// is finished by calling it again.
func (s *Service) Fill(ctx context.Context, run reverify.Run, src tasks.Source, o FillOptions) (Filled, error) {
	opts, err := OptionsOf(run)
	if err != nil {
		return Filled{}, err
	}
	var recent atomic.Int64
	src = s.skipRecent(run, opts.Filters, src, &recent)
	var ropts []tasks.RecorderOption
	if o.Progress != nil {
		ropts = append(ropts, tasks.WithProgress(o.Progress))
	}
	f := Filled{Run: run}
	f.Stats, err = tasks.NewRecorder(s.ledger, ropts...).Record(ctx, run.ID, src, opts.Filters.Keep())
	f.Recent = recent.Load()
	if err != nil {
		return f, interrupted(run, f.Recorded, err)
	}
	if f.Run, err = s.ledger.Run(ctx, run.ID); err != nil {
		return f, err
	}
	if f.Run.Status == reverify.RunEnqueuing && opts.Gate.holds(f.Run.Total) {
		why := fmt.Sprintf("%d paid calls at most; confirmation required", f.Run.Total)
		f.Run, err = s.ledger.HoldForConfirmation(ctx, run.ID, reverify.Actor{Who: o.Actor.Who, Why: why})
		f.Held = err == nil
		return f, err
	}
	if err := s.ledger.StartRun(ctx, run.ID); err != nil {
		return f, err
	}
	f.Run, err = s.ledger.Run(ctx, run.ID)
	return f, err
}

// Gated reports whether a run must not be dispatched yet: it is being
// filled and its gate decides, once it is counted, whether it waits for
// confirmation.
func Gated(run reverify.Run) bool {
	if run.Status != reverify.RunEnqueuing {
		return false
	}
	opts, err := OptionsOf(run)
	return err != nil || opts.Gate.counts()
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

// Confirm releases a run that waits for confirmation and starts it; the
// Feeder dispatches its objects.
func (s *Service) Confirm(ctx context.Context, id string, who reverify.Actor) (reverify.Run, error) {
	run, err := s.ledger.ConfirmRun(ctx, id, who)
	if err != nil {
		return reverify.Run{}, err
	}
	if err := s.ledger.StartRun(ctx, run.ID); err != nil {
		return run, err
	}
	return s.ledger.Run(ctx, run.ID)
}
