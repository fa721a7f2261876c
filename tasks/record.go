package tasks

import (
	"context"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"reverify"
)

// Ledger is where a run's objects are recorded; *postgres.Store satisfies it.
type Ledger interface {
	// AddObjects records objects as pending rows of a run and returns how
	// many were new (an object recorded before is left as it is).
	AddObjects(ctx context.Context, runID string, objs []reverify.ObjectRef) (int64, error)
}

// Filter keeps an object when it returns true.
type Filter func(Object) bool

// Stats counts what a Recorder did.
type Stats struct {
	Seen     int64 // objects the source yielded
	Filtered int64 // objects the filter dropped
	Recorded int64 // new pending rows written to the ledger
}

// Recorder streams a source into a run's ledger rows. Reading the source
// (the next listing page, say) overlaps with recording the batches before
// it, which go to the ledger over several connections at once (a batch's
// write is one PostgreSQL backend's work, so one writer leaves the
// database's other cores idle); at most two batches wait beside those being
// written, so memory stays flat however large the source.
type Recorder struct {
	ledger    Ledger
	batchSize int
	writers   int
	progress  func(Stats)
}

// RecorderOption configures a Recorder.
type RecorderOption func(*Recorder)

// WithProgress is called after every batch with the running totals.
func WithProgress(fn func(Stats)) RecorderOption { return func(r *Recorder) { r.progress = fn } }

// WithBatchSize sets how many objects one ledger write records.
func WithBatchSize(n int) RecorderOption { return func(r *Recorder) { r.batchSize = max(1, n) } }

// WithWriters sets how many batches are written to the ledger at once.
func WithWriters(n int) RecorderOption { return func(r *Recorder) { r.writers = max(1, n) } }

// NewRecorder returns a recorder over a ledger.
func NewRecorder(ledger Ledger, opts ...RecorderOption) *Recorder {
	r := &Recorder{ledger: ledger, batchSize: 10000, writers: 2, progress: func(Stats) {}}
	for _, o := range opts {
		o(r)
	}
	return r
}

type counters struct{ seen, filtered, recorded atomic.Int64 }

func (c *counters) stats() Stats {
	return Stats{Seen: c.seen.Load(), Filtered: c.filtered.Load(), Recorded: c.recorded.Load()}
}

// Record streams src into the run: every object keep keeps becomes a
// pending row. Recording the same source twice adds nothing the second time.
func (r *Recorder) Record(ctx context.Context, runID string, src Source, keep Filter) (Stats, error) {
	var c counters
	g, ctx := errgroup.WithContext(ctx)
	batches := make(chan []reverify.ObjectRef, 2)
	g.Go(func() error {
		defer close(batches)
		return r.readBatches(ctx, src, keep, &c, batches)
	})
	var mu sync.Mutex // progress is told the totals one call at a time
	for range r.writers {
		g.Go(func() error {
			for batch := range batches {
				n, err := r.ledger.AddObjects(ctx, runID, batch)
				if err != nil {
					return err
				}
				c.recorded.Add(n)
				mu.Lock()
				r.progress(c.stats())
				mu.Unlock()
			}
			return nil
		})
	}
	err := g.Wait()
	return c.stats(), err
}

// readBatches reads src into batches of kept objects.
func (r *Recorder) readBatches(ctx context.Context, src Source, keep Filter, c *counters, batches chan<- []reverify.ObjectRef) error {
	batch := make([]reverify.ObjectRef, 0, r.batchSize)
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case batches <- batch:
			batch = make([]reverify.ObjectRef, 0, r.batchSize)
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
		if len(batch) == r.batchSize {
			return send()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return send()
}
