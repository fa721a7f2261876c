package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reverify"
	"time"

	"github.com/hibiken/asynq"

	"reverify/storage/objects"
	"reverify/storage/postgres"
)

// TypePlan lists a run's source inside the worker fleet, page by page,
// recording and enqueuing each page before saving the continuation token,
// so a crashed planner resumes where it stopped.
const TypePlan = "run:plan"

// PlanPayload names the run to plan.
type PlanPayload struct {
	RunID string `json:"run_id"`
}

// RunOptions is the part of runs.options the planner reads.
type RunOptions struct {
	Filters Filters `json:"filters"`
}

// NewPlanTask builds the plan task of a run. Its ID is derived from the run,
// so planning a run twice is a no-op while the first task is known.
func NewPlanTask(runID, queue string) (*asynq.Task, error) {
	if runID == "" {
		return nil, fmt.Errorf("%w: missing run_id", ErrBadPayload)
	}
	b, err := json.Marshal(PlanPayload{RunID: runID})
	if err != nil {
		return nil, fmt.Errorf("encode plan payload: %w", err)
	}
	return asynq.NewTask(TypePlan, b, asynq.TaskID("plan:"+runID), asynq.Queue(queue),
		asynq.MaxRetry(25), asynq.Timeout(12*time.Hour)), nil
}

// PageLister lists a prefix a page at a time from a continuation token;
// *objects.Store satisfies it.
type PageLister interface {
	ListPages(ctx context.Context, bucket, prefix, token string, fn func(page []objects.Object, next string) error) error
}

// PlanLedger is what the planner reads and writes; *postgres.Store satisfies it.
type PlanLedger interface {
	Ledger
	RecentLookup
	Run(ctx context.Context, id string) (reverify.Run, error)
	SavePlanToken(ctx context.Context, id, token string) error
	FinishPlan(ctx context.Context, id string) error
	FailRun(ctx context.Context, id string, a reverify.Actor) (reverify.Run, int64, error)
}

// Planner handles run:plan tasks.
type Planner struct {
	ledger PlanLedger
	list   PageLister
	queue  Enqueuer
	log    *slog.Logger
}

// NewPlanner returns a run:plan handler.
func NewPlanner(ledger PlanLedger, list PageLister, queue Enqueuer, log *slog.Logger) *Planner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Planner{ledger: ledger, list: list, queue: queue, log: log}
}

// ProcessTask implements asynq.Handler.
func (p *Planner) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var pl PlanPayload
	if err := json.Unmarshal(t.Payload(), &pl); err != nil || pl.RunID == "" {
		return fmt.Errorf("%w: plan task: %w", ErrBadPayload, errors.Join(err, asynq.SkipRetry))
	}
	run, err := p.ledger.Run(ctx, pl.RunID)
	if errors.Is(err, postgres.ErrRunNotFound) {
		return fmt.Errorf("plan: %w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	if run.PlannedAt != nil || (run.Status != reverify.RunEnqueuing && run.Status != reverify.RunPaused) {
		return nil // done before, or cancelled
	}
	src := run.Source
	var opts RunOptions
	if src.Kind != reverify.SourcePrefix {
		return fmt.Errorf("plan run %s: only prefix sources are planned in the fleet (got %q): %w", run.ID, src.Kind, asynq.SkipRetry)
	}
	if err := json.Unmarshal(run.Options, &opts); err != nil {
		return fmt.Errorf("plan run %s: options: %w: %w", run.ID, err, asynq.SkipRetry)
	}
	return p.plan(ctx, run, src, opts.Filters)
}

func (p *Planner) plan(ctx context.Context, run reverify.Run, src reverify.Source, f Filters) error {
	log := p.log.With("run_id", run.ID)
	producer := NewProducer(p.ledger, p.queue)
	keep := f.Keep()
	resumed := run.PlanToken != ""
	if resumed {
		log.InfoContext(ctx, "resuming listing from the stored continuation token")
	}
	pages := 0
	err := p.list.ListPages(ctx, src.Bucket, src.Prefix, run.PlanToken, func(page []objects.Object, next string) error {
		if err := p.recordPage(ctx, producer, run, page, f, keep); err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		if err := p.ledger.SavePlanToken(ctx, run.ID, next); err != nil {
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
		if _, _, ferr := p.ledger.FailRun(ctx, run.ID, reverify.Actor{Who: "reverify-planner", Why: why}); ferr != nil {
			return fmt.Errorf("plan run %s: %w (and could not fail the run: %w)", run.ID, err, ferr)
		}
		log.ErrorContext(ctx, "run failed: its source bucket does not exist", "bucket", src.Bucket)
		return fmt.Errorf("plan run %s: %w: %w", run.ID, err, asynq.SkipRetry)
	}
	if err != nil {
		return fmt.Errorf("plan run %s: %w", run.ID, err)
	}
	if resumed {
		// Objects recorded just before a crash may have missed their tasks.
		if _, err := producer.Requeue(ctx, run); err != nil {
			return err
		}
	}
	if err := p.ledger.StartRun(ctx, run.ID); err != nil {
		return err
	}
	if err := p.ledger.FinishPlan(ctx, run.ID); err != nil {
		return err
	}
	log.InfoContext(ctx, "listing finished")
	return nil
}

// recordPage records one listed page's kept objects as the run's pending
// rows and queues their tasks.
func (p *Planner) recordPage(ctx context.Context, producer *Producer, run reverify.Run, page []objects.Object, f Filters, keep Filter) error {
	var s Source = func(ctx context.Context, fn func(Object) error) error {
		for _, o := range page {
			obj := Object{Bucket: o.Bucket, Key: o.Key, Size: o.Size, LastModified: o.LastModified}
			if keep != nil && !keep(obj) {
				continue
			}
			if err := fn(obj); err != nil {
				return err
			}
		}
		return nil
	}
	if f.NotVerifiedSince > 0 {
		s = SkipRecentlyScored(s, p.ledger, run.CreatedAt.Add(-time.Duration(f.NotVerifiedSince)), nil)
	}
	var refs []reverify.ObjectRef
	if err := s(ctx, func(o Object) error {
		refs = append(refs, reverify.ObjectRef{Bucket: o.Bucket, Key: o.Key})
		return nil
	}); err != nil {
		return err
	}
	added, err := p.ledger.AddObjects(ctx, run.ID, refs)
	if err != nil {
		return err
	}
	_, err = producer.EnqueueObjects(ctx, run, added)
	return err
}
