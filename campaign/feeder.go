package campaign

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"reverify"
	"reverify/storage/postgres"
	"reverify/tasks"
	"reverify/worker/fleet"
)

// FeedLedger is what the feeder reads and writes; *postgres.Store
// satisfies it.
type FeedLedger interface {
	DispatchRuns(ctx context.Context) ([]postgres.DispatchRun, error)
	InWindow(ctx context.Context, runID string, upTo int64) (int64, error)
	NextPending(ctx context.Context, runID string, after int64, limit int) ([]postgres.Pending, error)
	Dispatched(ctx context.Context, runID string, upTo int64) ([]postgres.Pending, error)
	MarkDispatched(ctx context.Context, runID string, seq int64) error
	CancelPending(ctx context.Context, limit int64) (int64, error)
	SampleRates(ctx context.Context, interval time.Duration) error
}

// Leader is a fleet-wide lease: one holder at a time feeds;
// *fleet.Lease satisfies it.
type Leader interface {
	Hold(ctx context.Context) (bool, error)
	Release(ctx context.Context) error
}

// Marker tells whether the task queue lost its data since the feeder last
// filled it (Redis restarted without persistence, or was flushed);
// *fleet.Marker satisfies it.
type Marker interface {
	Lost(ctx context.Context) (bool, error)
	Set(ctx context.Context) error
}

// FleetLedger is a ledger a fleet's feeder serves; *postgres.Store
// satisfies it.
type FleetLedger interface {
	FeedLedger
	LedgerID(ctx context.Context) (string, error)
}

// NewFleetFeeder builds the feeder a worker process runs: its lease and
// marker live in Redis under the ledger's ID (so the workers of one ledger,
// and only they, share them), it is held in holder's name (host/pid), and
// it enqueues through an auto-pipelined client of its own, which close
// releases.
func NewFleetFeeder(ctx context.Context, ledger FleetLedger, opt asynq.RedisConnOpt, rdb redis.UniversalClient,
	holder string, cfg FeederConfig) (f *Feeder, close func(), err error) {
	id, err := ledger.LedgerID(ctx)
	if err != nil {
		return nil, nil, err
	}
	queue, closeQueue, err := tasks.NewPipelinedClient(opt)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to redis: %w", err)
	}
	lease, marker := fleet.FeederKeys(id)
	return NewFeeder(ledger, queue, fleet.NewLease(rdb, lease, holder, LeaseTTL), fleet.NewMarker(rdb, marker), cfg),
		func() { _ = closeQueue() }, nil
}

// DefaultWindow is the window for a worker of concurrency slots in a fleet
// whose in-flight cap is maxInFlight (0: none): four times the larger, at
// least 200, enough to keep every slot busy between two rounds.
func DefaultWindow(concurrency, maxInFlight int) int {
	return max(200, 4*max(concurrency, maxInFlight))
}

// LeaseTTL is how long a feeder that stopped renewing keeps the lease: the
// longest the fleet goes unfed after its leader dies.
const LeaseTTL = 10 * time.Second

// FleetRate reads the fleet's state, whose rate sizes the windows;
// *fleet.Governor satisfies it.
type FleetRate interface {
	Status(ctx context.Context) (fleet.Status, error)
}

// FeederConfig tunes the feeder. Zero values take the defaults given.
type FeederConfig struct {
	// Window is how many tasks of each run may wait in or be taken from
	// the queue at once; default 1000. A few times the fleet's in-flight
	// calls keeps every worker busy. With the fleet's rate known (Fleet),
	// the windows of all runs together are smaller still: Horizon's worth
	// of calls, shared by weight.
	Window int
	// Horizon is how many seconds of the fleet's calls the windows of all
	// runs hold together when the fleet's rate is known, so what waits
	// ahead of a new run's first tasks is bounded in time; default 2s.
	Horizon time.Duration
	// Fleet tells the fleet's current API rate (fixed, adaptive or
	// scheduled); nil or no rate known: every run gets Window.
	Fleet FleetRate
	// Every is how often windows are topped up; default 200ms.
	Every time.Duration
	// Refill is how often every window's tasks are put back, for tasks the
	// queue lost while its data survived otherwise; default 1m.
	Refill time.Duration
	// CancelBatch is how many pending objects of ended runs are cancelled
	// per round; default 20000.
	CancelBatch int64
	// SampleEvery is how often runs' recent rates are sampled; default 10s.
	SampleEvery time.Duration
	Logger      *slog.Logger
}

func (c *FeederConfig) defaults() {
	if c.Window <= 0 {
		c.Window = 1000
	}
	if c.Every <= 0 {
		c.Every = 200 * time.Millisecond
	}
	if c.Horizon <= 0 {
		c.Horizon = 2 * time.Second
	}
	if c.Refill <= 0 {
		c.Refill = time.Minute
	}
	if c.CancelBatch <= 0 {
		c.CancelBatch = 20000
	}
	if c.SampleEvery <= 0 {
		c.SampleEvery = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// FeedStats counts what a feeder did.
type FeedStats struct {
	Cycles     int64 // top-up rounds while leading
	Dispatched int64 // tasks added to the queue
	Refilled   int64 // tasks put back after the queue lost them
	Cancelled  int64 // pending objects of ended runs cancelled
	// Total is what the windows of all runs could hold together at the
	// last round (Horizon of the fleet's rate); 0: the rate was not known
	// and every run had Window.
	Total int64
}

// Feeder keeps a bounded window of each run's tasks in the task queue,
// topped up from the ledger's pending objects in dispatch order as tasks
// finish, so a run of any size costs the queue no more than a small one.
// Every worker runs one; the one that holds the lease feeds. The ledger
// alone says what is left to do, so a feeder that crashes, restarts or
// finds the queue emptied just fills the windows again.
type Feeder struct {
	ledger FeedLedger
	queue  Queue
	lease  Leader
	marker Marker
	cfg    FeederConfig
	log    *slog.Logger

	leading    atomic.Bool
	lastRefill time.Time
	lastSample time.Time
	stats      struct{ cycles, dispatched, refilled, cancelled, total atomic.Int64 }
}

// NewFeeder returns a feeder over the ledger and the task queue.
func NewFeeder(ledger FeedLedger, queue Queue, lease Leader, marker Marker, cfg FeederConfig) *Feeder {
	cfg.defaults()
	return &Feeder{ledger: ledger, queue: queue, lease: lease, marker: marker, cfg: cfg, log: cfg.Logger}
}

// Stats returns what the feeder did so far.
func (f *Feeder) Stats() FeedStats {
	return FeedStats{Cycles: f.stats.cycles.Load(), Dispatched: f.stats.dispatched.Load(),
		Refilled: f.stats.refilled.Load(), Cancelled: f.stats.cancelled.Load(), Total: f.stats.total.Load()}
}

// Leading reports whether this feeder held the lease at its last round.
func (f *Feeder) Leading() bool { return f.leading.Load() }

// Run feeds until ctx ends, while it holds the lease; it stands by
// otherwise. Errors are logged and the round tried again.
func (f *Feeder) Run(ctx context.Context) error {
	defer func() {
		if f.leading.Load() {
			_ = f.lease.Release(context.WithoutCancel(ctx))
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	// Cancelling a large ended run's objects can take a while a batch; it
	// goes on beside the top-ups so they never wait for it.
	wg.Go(func() { f.cancelLoop(ctx) })
	tick := time.NewTicker(f.cfg.Every)
	defer tick.Stop()
	for {
		held, err := f.lease.Hold(ctx)
		if err != nil && ctx.Err() == nil {
			f.log.WarnContext(ctx, "feeder lease check failed; standing by", "err", err)
		}
		if held != f.leading.Swap(held) {
			f.log.InfoContext(ctx, "feeder lease changed hands", "leading", held)
			f.lastRefill = time.Time{} // a new leader fills every window first
		}
		if held {
			if err := f.Cycle(ctx); err != nil && ctx.Err() == nil {
				f.log.WarnContext(ctx, "feeding the task queue failed; will try again", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (f *Feeder) cancelLoop(ctx context.Context) {
	tick := time.NewTicker(f.cfg.Every)
	defer tick.Stop()
	for {
		if f.leading.Load() {
			n, err := f.ledger.CancelPending(ctx, f.cfg.CancelBatch)
			f.stats.cancelled.Add(n)
			if err != nil && ctx.Err() == nil {
				f.log.WarnContext(ctx, "cancelling pending objects of ended runs failed; will try again", "err", err)
			}
			if n > 0 {
				continue // more may be left: no pause between batches
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Cycle is one round of feeding: every run being sent gets its window
// topped up, most urgent first; every window is filled again when the
// queue lost its data or the refill period passed. Run calls it while it
// leads; tests call it directly.
func (f *Feeder) Cycle(ctx context.Context) error {
	f.stats.cycles.Add(1)
	refill := time.Since(f.lastRefill) >= f.cfg.Refill
	if f.marker != nil && !refill {
		lost, err := f.marker.Lost(ctx)
		if err != nil {
			return err
		}
		if lost {
			f.log.WarnContext(ctx, "the task queue lost its data; filling every window again")
			refill = true
		}
	}
	all, err := f.ledger.DispatchRuns(ctx)
	if err != nil {
		return err
	}
	var runs []postgres.DispatchRun
	for _, r := range all {
		if !Gated(r.Run) {
			runs = append(runs, r)
		}
	}
	var errs []error
	shares := f.shares(ctx, runs)
	// First every run up to its share; then what runs short of work left
	// over goes to the runs that could use more, by weight.
	state := make([]windowState, len(runs))
	for i, r := range runs {
		st, err := f.topUp(ctx, r, shares[i], refill)
		st.err = err != nil
		if err != nil {
			errs = append(errs, fmt.Errorf("run %s: %w", r.ID, err))
		}
		state[i] = st
	}
	if extra := spare(shares, weights(runs), state, f.cfg.Window); extra != nil {
		for i, r := range runs {
			if extra[i] == 0 {
				continue
			}
			r.DispatchedSeq = state[i].mark
			if _, err := f.topUp(ctx, r, shares[i]+extra[i], false); err != nil {
				errs = append(errs, fmt.Errorf("run %s: %w", r.ID, err))
			}
		}
	}
	if refill && len(errs) == 0 {
		f.lastRefill = time.Now()
		if f.marker != nil {
			if err := f.marker.Set(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if time.Since(f.lastSample) >= f.cfg.SampleEvery {
		f.lastSample = time.Now()
		if err := f.ledger.SampleRates(ctx, f.cfg.SampleEvery); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// windowState is a run's window after a top-up: its tasks, its mark,
// whether it has no more pending objects to send, and whether the top-up
// failed.
type windowState struct {
	tasks  int
	mark   int64
	dry    bool
	err    bool
	capped int // the run's caps held its window to this (0: they did not)
}

// topUp brings a run's window back to want tasks: pending objects past
// its high-water mark are dispatched in order and the mark raised.
func (f *Feeder) topUp(ctx context.Context, r postgres.DispatchRun, want int, refill bool) (windowState, error) {
	st := windowState{mark: r.DispatchedSeq}
	if refill {
		objs, err := f.ledger.Dispatched(ctx, r.ID, r.DispatchedSeq)
		if err != nil {
			return st, err
		}
		enq, _, err := dispatch(ctx, f.queue, r.Run, objs, dispatchConcurrency)
		f.stats.refilled.Add(enq)
		if enq > 0 {
			f.log.WarnContext(ctx, "put back tasks the queue had lost", "run_id", r.ID, "tasks", enq)
		}
		if err != nil {
			return st, err
		}
	}
	in, err := f.ledger.InWindow(ctx, r.ID, r.DispatchedSeq)
	if err != nil {
		return st, err
	}
	// A run's own caps keep its window small (RunWindow); what that leaves
	// of its share goes to the others (spare).
	if capped := RunWindow(r.Run, want, time.Now()); capped < want {
		want, st.capped = capped, capped
	}
	st.tasks = int(in)
	need := want - int(in)
	if need <= 0 {
		return st, nil
	}
	next, err := f.ledger.NextPending(ctx, r.ID, r.DispatchedSeq, need)
	if err != nil {
		return st, err
	}
	st.dry = len(next) < need
	if len(next) == 0 {
		return st, nil
	}
	enq, _, err := dispatch(ctx, f.queue, r.Run, next, dispatchConcurrency)
	f.stats.dispatched.Add(enq)
	if err != nil {
		return st, err // the mark stays: the next round sends them again, duplicates being no-ops
	}
	if err := f.ledger.MarkDispatched(ctx, r.ID, next[len(next)-1].Seq); err != nil {
		return st, err
	}
	st.tasks += len(next)
	st.mark = next[len(next)-1].Seq
	return st, nil
}

// RunWindow is the window of a run: window, or less for a run with caps
// of its own — a few times its in-flight cap, or two seconds of its rate
// now — so that few of its tasks churn through the workers waiting for
// their turn (each gives its slot back and comes back later).
func RunWindow(run reverify.Run, window int, now time.Time) int {
	lim, w := run.Limits, window
	if lim.MaxInFlight > 0 {
		w = min(w, 4*lim.MaxInFlight)
	}
	if rate, ok := lim.RateAt(now); ok {
		w = min(w, int(math.Ceil(2*rate)))
	}
	return max(w, min(window, minRunWindow))
}

// minRunWindow keeps a run capped at a very low rate (or at 0 for now)
// moving when its cap goes up.
const minRunWindow = 4

// dispatchConcurrency is how many enqueue round trips a dispatch has in
// flight.
const dispatchConcurrency = 32

// dispatch enqueues the verify task of each object of run in its queue; a
// task the queue already holds (same ID) is counted as a duplicate.
func dispatch(ctx context.Context, q Queue, run reverify.Run, objs []postgres.Pending, concurrency int) (enqueued, duplicate int64, err error) {
	var enq, dup atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, o := range objs {
		g.Go(func() error {
			task, err := tasks.NewVerifyTask(tasks.VerifyPayload{RunID: run.ID, Bucket: o.Object.Bucket, Key: o.Object.Key,
				Version: o.Object.Version, Seq: o.Seq}, run.Queue)
			if err != nil {
				return err
			}
			_, err = q.EnqueueContext(ctx, task)
			switch {
			case errors.Is(err, asynq.ErrTaskIDConflict):
				dup.Add(1)
			case err != nil:
				return fmt.Errorf("enqueue the task of object %d: %w", o.Seq, err)
			default:
				enq.Add(1)
			}
			return nil
		})
	}
	err = g.Wait()
	return enq.Load(), dup.Load(), err
}
