package tasks

import (
	"context"
	"errors"
	"fmt"
	"reverify"
	"sync/atomic"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"reverify/storage/objects"
)

// Ledger is where the producer records a run's objects before enqueuing them.
type Ledger interface {
	AddObjects(ctx context.Context, runID string, objs []reverify.ObjectRef) ([]reverify.ObjectRef, error)
	StartRun(ctx context.Context, runID string) error
	PendingObjects(ctx context.Context, runID string, fn func(reverify.ObjectRef) error) error
}

// Enqueuer sends tasks to Redis; *asynq.Client satisfies it.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Filter keeps an object when it returns true.
type Filter func(Object) bool

// Stats counts what a producer did.
type Stats struct {
	Seen      int64 // objects the source yielded
	Filtered  int64 // objects the filter dropped
	Recorded  int64 // new pending rows written to the ledger
	Enqueued  int64 // tasks added to Redis
	Duplicate int64 // tasks Redis already had (same task ID)
}

// Producer records objects in the ledger, then enqueues their tasks.
// Ledger writes are batched and overlap with a pool of concurrent enqueuers,
// so a million keys do not wait on one round trip at a time.
type Producer struct {
	ledger     Ledger
	queue      Enqueuer
	batchSize  int
	concurrent int
	progress   func(Stats)
	taskOpts   []asynq.Option
	replace    TaskDeleter
}

// ProducerOption configures a Producer.
type ProducerOption func(*Producer)

// WithConcurrency sets how many enqueue round trips are in flight at once.
func WithConcurrency(n int) ProducerOption { return func(p *Producer) { p.concurrent = max(1, n) } }

// WithProgress is called after every batch with the running totals.
func WithProgress(fn func(Stats)) ProducerOption { return func(p *Producer) { p.progress = fn } }

// WithTaskOptions adds asynq options (e.g. MaxRetry) to every task.
func WithTaskOptions(opts ...asynq.Option) ProducerOption {
	return func(p *Producer) { p.taskOpts = append(p.taskOpts, opts...) }
}

// NewProducer returns a producer over a ledger and a queue.
func NewProducer(ledger Ledger, queue Enqueuer, opts ...ProducerOption) *Producer {
	p := &Producer{ledger: ledger, queue: queue, batchSize: 1000, concurrent: 64, progress: func(Stats) {}}
	for _, o := range opts {
		o(p)
	}
	return p
}

type counters struct {
	seen, filtered, recorded, enqueued, duplicate atomic.Int64
}

func (c *counters) stats() Stats {
	return Stats{
		Seen: c.seen.Load(), Filtered: c.filtered.Load(), Recorded: c.recorded.Load(),
		Enqueued: c.enqueued.Load(), Duplicate: c.duplicate.Load(),
	}
}

// Enqueue streams src into the run: each batch of objects is recorded as
// pending rows, then its new objects are enqueued. When the source is done
// the run moves to running. Objects already recorded for the run are not
// enqueued again, so enqueuing the same source twice adds nothing.
func (p *Producer) Enqueue(ctx context.Context, run reverify.Run, src Source, keep Filter) (Stats, error) {
	var c counters
	err := p.pipeline(ctx, run, &c, func(ctx context.Context, out chan<- reverify.ObjectRef) error {
		return p.recordAll(ctx, run.ID, src, keep, &c, out)
	})
	if err != nil {
		return c.stats(), err
	}
	if err := p.ledger.StartRun(ctx, run.ID); err != nil {
		return c.stats(), err
	}
	p.progress(c.stats())
	return c.stats(), nil
}

// recordAll records src as pending rows of the run, handing new objects to
// out (when not nil). Reading the source (the next listing page, say)
// overlaps with recording the batch before it; at most two batches wait
// between them, so memory stays bounded.
func (p *Producer) recordAll(ctx context.Context, runID string, src Source, keep Filter, c *counters, out chan<- reverify.ObjectRef) error {
	g, ctx := errgroup.WithContext(ctx)
	batches := make(chan []reverify.ObjectRef, 2)
	g.Go(func() error {
		defer close(batches)
		return p.readBatches(ctx, src, keep, c, batches)
	})
	g.Go(func() error {
		for batch := range batches {
			if err := p.record(ctx, runID, batch, c, out); err != nil {
				return err
			}
		}
		return nil
	})
	return g.Wait()
}

// readBatches reads src into batches of p.batchSize kept objects.
func (p *Producer) readBatches(ctx context.Context, src Source, keep Filter, c *counters, batches chan<- []reverify.ObjectRef) error {
	batch := make([]reverify.ObjectRef, 0, p.batchSize)
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case batches <- batch:
			batch = make([]reverify.ObjectRef, 0, p.batchSize)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := src(ctx, func(o Object) error {
		c.seen.Add(1)
		if keep != nil && !keep(o) {
			c.filtered.Add(1)
			return nil
		}
		batch = append(batch, reverify.ObjectRef{Bucket: o.Bucket, Key: o.Key, Version: o.Version})
		if len(batch) == p.batchSize {
			return send()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return send()
}

// record writes one batch as pending rows and hands its new objects to the
// enqueuers (out), if any.
func (p *Producer) record(ctx context.Context, runID string, batch []reverify.ObjectRef, c *counters, out chan<- reverify.ObjectRef) error {
	added, err := p.ledger.AddObjects(ctx, runID, batch)
	if err != nil {
		return err
	}
	c.recorded.Add(int64(len(added)))
	for _, o := range added {
		if out == nil {
			break
		}
		select {
		case out <- o:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.progress(c.stats())
	return nil
}

// Requeue enqueues a task for every object of the run that has no terminal
// result. Tasks Redis still holds are not duplicated (their IDs collide), so
// it is safe to run at any time, e.g. after Redis lost its data or an
// enqueue was interrupted.
func (p *Producer) Requeue(ctx context.Context, run reverify.Run) (Stats, error) {
	var c counters
	err := p.pipeline(ctx, run, &c, func(ctx context.Context, out chan<- reverify.ObjectRef) error {
		return p.ledger.PendingObjects(ctx, run.ID, func(o reverify.ObjectRef) error {
			c.seen.Add(1)
			if c.seen.Load()%int64(p.batchSize) == 0 {
				p.progress(c.stats())
			}
			select {
			case out <- o:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
	p.progress(c.stats())
	return c.stats(), err
}

// pipeline runs produce and a pool of enqueuers side by side.
func (p *Producer) pipeline(ctx context.Context, run reverify.Run, c *counters, produce func(context.Context, chan<- reverify.ObjectRef) error) error {
	g, ctx := errgroup.WithContext(ctx)
	refs := make(chan reverify.ObjectRef, p.batchSize)
	g.Go(func() error {
		defer close(refs)
		return produce(ctx, refs)
	})
	for range p.concurrent {
		g.Go(func() error {
			for o := range refs {
				dup, err := p.enqueue(ctx, run, o)
				if err != nil {
					return err
				}
				if dup {
					c.duplicate.Add(1)
				} else {
					c.enqueued.Add(1)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

func (p *Producer) enqueue(ctx context.Context, run reverify.Run, o reverify.ObjectRef) (duplicate bool, err error) {
	payload := VerifyPayload{RunID: run.ID, Bucket: o.Bucket, Key: o.Key, Version: o.Version}
	task, err := NewVerifyTask(payload, run.Queue, p.taskOpts...)
	if err != nil {
		return false, err
	}
	_, err = p.queue.EnqueueContext(ctx, task)
	if errors.Is(err, asynq.ErrTaskIDConflict) && p.replace != nil {
		// Replace an archived (or queued) task holding the ID; one that is
		// active, or otherwise busy, will run anyway.
		derr := p.replace.DeleteTask(run.Queue, payload.TaskID())
		if derr != nil && !errors.Is(derr, asynq.ErrTaskNotFound) {
			return true, nil
		}
		_, err = p.queue.EnqueueContext(ctx, task)
	}
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("enqueue %s key_hash=%s: %w", o.Bucket, objects.KeyHash(o.Bucket, o.Key), err)
	}
	return false, nil
}
