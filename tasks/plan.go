package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hibiken/asynq"

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

// SourceSpec is a run's source as stored in runs.source.
type SourceSpec struct {
	Kind     string `json:"kind"` // prefix, manifest, inventory
	Bucket   string `json:"bucket,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	Manifest string `json:"manifest,omitempty"`
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

// ListObjectsV2API lists one page; *s3.Client satisfies it.
type ListObjectsV2API interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// PlanLedger is what the planner reads and writes; *postgres.Store satisfies it.
type PlanLedger interface {
	Ledger
	RecentLookup
	Run(ctx context.Context, id string) (postgres.Run, error)
	SavePlanToken(ctx context.Context, id, token string) error
	FinishPlan(ctx context.Context, id string) error
}

// Planner handles run:plan tasks.
type Planner struct {
	ledger   PlanLedger
	s3       ListObjectsV2API
	queue    Enqueuer
	log      *slog.Logger
	pageSize int32
}

// NewPlanner returns a run:plan handler. pageSize <= 0 keeps S3's 1,000.
func NewPlanner(ledger PlanLedger, s3 ListObjectsV2API, queue Enqueuer, log *slog.Logger, pageSize int32) *Planner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Planner{ledger: ledger, s3: s3, queue: queue, log: log, pageSize: pageSize}
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
	if run.PlannedAt != nil || (run.Status != postgres.RunEnqueuing && run.Status != postgres.RunPaused) {
		return nil // done before, or cancelled
	}
	var src SourceSpec
	var opts RunOptions
	if err := json.Unmarshal(run.Source, &src); err != nil || src.Kind != "prefix" {
		return fmt.Errorf("plan run %s: only prefix sources are planned in the fleet (got %s): %w", run.ID, run.Source, asynq.SkipRetry)
	}
	if err := json.Unmarshal(run.Options, &opts); err != nil {
		return fmt.Errorf("plan run %s: options: %w: %w", run.ID, err, asynq.SkipRetry)
	}
	return p.plan(ctx, run, src, opts.Filters)
}

func (p *Planner) plan(ctx context.Context, run postgres.Run, src SourceSpec, f Filters) error {
	log := p.log.With("run_id", run.ID)
	producer := NewProducer(p.ledger, p.queue)
	keep := f.Keep()
	resumed := run.PlanToken != ""
	if resumed {
		log.InfoContext(ctx, "resuming listing from the stored continuation token")
	}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(src.Bucket)}
	if src.Prefix != "" {
		in.Prefix = aws.String(src.Prefix)
	}
	if p.pageSize > 0 {
		in.MaxKeys = aws.Int32(p.pageSize)
	}
	token := run.PlanToken
	for pages := 0; ; pages++ {
		if token != "" {
			in.ContinuationToken = aws.String(token)
		}
		out, err := p.s3.ListObjectsV2(ctx, in)
		if err != nil {
			return fmt.Errorf("plan run %s: list s3://%s/%s: %w", run.ID, src.Bucket, src.Prefix, err)
		}
		var objs []Object
		for _, c := range out.Contents {
			o := Object{Bucket: src.Bucket, Key: aws.ToString(c.Key), Size: aws.ToInt64(c.Size), LastModified: aws.ToTime(c.LastModified)}
			if o.Size == 0 && strings.HasSuffix(o.Key, "/") {
				continue
			}
			if keep == nil || keep(o) {
				objs = append(objs, o)
			}
		}
		page := func(ctx context.Context, fn func(Object) error) error {
			for _, o := range objs {
				if err := fn(o); err != nil {
					return err
				}
			}
			return nil
		}
		var s Source = page
		if f.NotVerifiedSince > 0 {
			s = SkipRecentlyScored(s, p.ledger, run.CreatedAt.Add(-time.Duration(f.NotVerifiedSince)), nil)
		}
		var refs []postgres.ObjectRef
		if err := s(ctx, func(o Object) error {
			refs = append(refs, postgres.ObjectRef{Bucket: o.Bucket, Key: o.Key})
			return nil
		}); err != nil {
			return err
		}
		added, err := p.ledger.AddObjects(ctx, run.ID, refs)
		if err != nil {
			return err
		}
		if _, err := producer.EnqueueObjects(ctx, run, added); err != nil {
			return err
		}
		token = aws.ToString(out.NextContinuationToken)
		if !aws.ToBool(out.IsTruncated) || token == "" {
			break
		}
		if err := p.ledger.SavePlanToken(ctx, run.ID, token); err != nil {
			return err
		}
		if pages%20 == 19 {
			log.InfoContext(ctx, "listing", "pages", pages+1)
		}
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
