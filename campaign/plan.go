package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/hibiken/asynq"

	"reverify"
	"reverify/storage/objects"
	"reverify/storage/postgres"
	"reverify/tasks"
)

// Plan lists a run's bucket/prefix page by page inside the worker fleet:
// each page's objects are recorded before its continuation token is saved,
// so a planner that crashes resumes where it stopped, and the feeder
// dispatches them as they come. When the listing is done the run starts
// (or waits for confirmation, when its gate says so). A run planned
// before, or no longer enqueuing, is left alone.
func (s *Service) Plan(ctx context.Context, id string) error {
	run, err := s.ledger.Run(ctx, id)
	if err != nil {
		return err
	}
	if run.PlannedAt != nil || (run.Status != reverify.RunEnqueuing && run.Status != reverify.RunPaused) {
		return nil // done before, or cancelled
	}
	if run.Source.Kind != reverify.SourcePrefix {
		return fmt.Errorf("%w: plan run %s: only prefix sources are listed in the fleet (got %q)", ErrInvalidSpec, run.ID, run.Source.Kind)
	}
	if s.objects == nil {
		return ErrNoObjects
	}
	opts, err := OptionsOf(run)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	log := s.log.With("run_id", run.ID)
	src := run.Source
	resumed := run.PlanToken != ""
	if resumed {
		log.InfoContext(ctx, "resuming listing from the stored continuation token")
	}
	pages := 0
	err = s.objects.ListPages(ctx, src.Bucket, src.Prefix, run.PlanToken, func(page []objects.Object, next string) error {
		if err := s.planPage(ctx, run, opts.Filters, page); err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		if err := s.ledger.SavePlanToken(ctx, run.ID, next); err != nil {
			return err
		}
		if pages++; pages%20 == 0 {
			log.InfoContext(ctx, "listing", "pages", pages)
		}
		return nil
	})
	if errors.Is(err, objects.ErrBucketNotFound) {
		// Retrying cannot bring a bucket back: the run ends here.
		why := fmt.Sprintf("source bucket %q not found", src.Bucket)
		if _, _, ferr := s.ledger.FailRun(ctx, run.ID, reverify.Actor{Who: "reverify-planner", Why: why}); ferr != nil {
			return fmt.Errorf("plan run %s: %w (and could not fail the run: %w)", run.ID, err, ferr)
		}
		log.ErrorContext(ctx, "run failed: its source bucket does not exist", "bucket", src.Bucket)
		s.ended(ctx, run.ID, reverify.RunFailed)
		return fmt.Errorf("plan run %s: %w: %w", run.ID, err, ErrUnplannable)
	}
	if err != nil {
		return fmt.Errorf("plan run %s: %w", run.ID, err)
	}
	if run, err = s.ledger.Run(ctx, run.ID); err != nil {
		return err
	}
	if run.Status == reverify.RunEnqueuing && opts.Gate.holds(run.Total) {
		why := fmt.Sprintf("%d paid calls at most; confirmation required", run.Total)
		if _, err := s.ledger.HoldForConfirmation(ctx, run.ID, reverify.Actor{Who: "reverify-planner", Why: why}); err != nil {
			return err
		}
	} else if err := s.ledger.StartRun(ctx, run.ID); err != nil {
		return err
	}
	if err := s.ledger.FinishPlan(ctx, run.ID); err != nil {
		return err
	}
	log.InfoContext(ctx, "listing finished")
	return nil
}

// ErrUnplannable means a run cannot be listed however often it is tried
// (its bucket is gone); the run has been failed.
var ErrUnplannable = errors.New("run cannot be planned")

// planPage records one listed page's kept objects as pending rows of the
// run.
func (s *Service) planPage(ctx context.Context, run reverify.Run, f tasks.Filters, page []objects.Object) error {
	keep := f.Keep()
	var src tasks.Source = func(ctx context.Context, fn func(tasks.Object) error) error {
		for _, o := range page {
			obj := tasks.Object{Bucket: o.Bucket, Key: o.Key, Size: o.Size, LastModified: o.LastModified}
			if keep != nil && !keep(obj) {
				continue
			}
			if err := fn(obj); err != nil {
				return err
			}
		}
		return nil
	}
	var recent atomic.Int64
	src = s.skipRecent(run, f, src, &recent)
	var refs []reverify.ObjectRef
	if err := src(ctx, func(o tasks.Object) error {
		refs = append(refs, reverify.ObjectRef{Bucket: o.Bucket, Key: o.Key})
		return nil
	}); err != nil {
		return err
	}
	_, err := s.ledger.AddObjects(ctx, run.ID, refs)
	return err
}

// PlanHandler handles run:plan tasks with a Service.
type PlanHandler struct{ s *Service }

// NewPlanHandler returns the run:plan task handler.
func NewPlanHandler(s *Service) *PlanHandler { return &PlanHandler{s: s} }

// ProcessTask implements asynq.Handler: a task that cannot succeed however
// often it is retried (bad payload, unknown run, gone bucket) is not retried.
func (h *PlanHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var pl tasks.PlanPayload
	if err := json.Unmarshal(t.Payload(), &pl); err != nil || pl.RunID == "" {
		return fmt.Errorf("%w: plan task: %w", tasks.ErrBadPayload, errors.Join(err, asynq.SkipRetry))
	}
	err := h.s.Plan(ctx, pl.RunID)
	if errors.Is(err, postgres.ErrRunNotFound) || errors.Is(err, ErrUnplannable) || errors.Is(err, ErrInvalidSpec) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}
