package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"

	"reverify/tasks"
	"reverify/worker/fleet"
)

// Deps are what a worker works with. Objects, API, Ledger, Redis and Runs
// are required; the rest may be left nil.
type Deps struct {
	Objects ObjectGetter // the object store the images are read from
	API     Verifier     // the liveness API client
	Ledger  Ledger       // calls and results
	// Redis holds the tasks, the fleet's shared limits and the answer stash.
	Redis asynq.RedisConnOpt
	Runs  RunCloser // ends runs with nothing left to do

	RunGate RunGate // pause and cancel checks, cached for Config.RunGateTTL; nil: every run is active
	// RunLimits gives runs' own caps, cached for Config.RunGateTTL; nil:
	// no run has caps of its own.
	RunLimits RunLimiter
	RunEnded  RunEndHook // told of each run this process ended
	Feeder    Feeder     // runs beside the lanes: keeps the queue supplied
	// Background run beside the lanes until the worker stops, e.g. the
	// notification sender.
	Background []Runner
	Observer   Observer // metrics
	// Handlers serve other task types on the same lanes (e.g. run:plan), by
	// task type.
	Handlers map[string]asynq.Handler
}

// Config tunes a worker. Zero values take the defaults given.
type Config struct {
	Concurrency int // tasks processed at once; default 100 (the work is I/O bound)
	// Lanes is how many asynq servers share Concurrency in this process.
	// One asynq server fetches tasks one Redis round trip at a time, so it
	// tops out near 1/RTT tasks per second however high its concurrency;
	// lanes fetch side by side. Default: one per 50 slots.
	Lanes           int
	Queues          map[string]int // queue name -> priority weight; default {tasks.DefaultQueue: 1}
	ShutdownTimeout time.Duration  // how long SIGTERM waits for in-flight tasks; default 30s
	CloseRunsEvery  time.Duration  // how often finished runs are closed; default 2s
	// RetryCheckEvery is how often due retries move back to their queue;
	// default 1s.
	RetryCheckEvery time.Duration
	Backoff         Backoff // of counted failures; default DefaultBackoff()
	Logger          *slog.Logger

	MaxObjectBytes int64 // larger objects are invalid_image, never read whole; default 15 MiB
	// CallTimeout bounds one API call; a call recorded longer ago than
	// twice this without an answer is taken as lost (its worker died).
	// Default 30s.
	CallTimeout time.Duration
	// LedgerRetryFor is how long a finished call's record is retried while
	// PostgreSQL is unreachable before the task is put back (its answer
	// stashed); default 30s.
	LedgerRetryFor time.Duration
	// DeniedWait is how long tasks wait while their bucket denies access
	// (a configuration problem); default 1m.
	DeniedWait time.Duration
	RunGateTTL time.Duration // how long a run's status is cached; default 2s
	// ContentWait is how long a copy waits before it looks again at an
	// owner still being analysed (an object of its run with the same
	// bytes); default 1s. KeepDuplicates analyses every object, copies
	// included (for comparisons: it pays for each copy).
	ContentWait    time.Duration
	KeepDuplicates bool

	// Fleet are the limits every worker shares through Redis, under
	// Fleet.Prefix. Fleet.SlotLease defaults to 2×CallTimeout + 5s: a slot
	// held by a worker that died frees itself once its call must be over.
	Fleet fleet.Config
	// StashPrefix and StashTTL place and keep the answers of paid calls
	// the ledger could not take yet (fleet.NewStash's defaults).
	StashPrefix string
	StashTTL    time.Duration
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 100
	}
	if c.Lanes <= 0 {
		c.Lanes = (c.Concurrency + perLane - 1) / perLane
	}
	c.Lanes = min(c.Lanes, c.Concurrency)
	if len(c.Queues) == 0 {
		c.Queues = map[string]int{tasks.DefaultQueue: 1}
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.CloseRunsEvery <= 0 {
		c.CloseRunsEvery = 2 * time.Second
	}
	if c.RetryCheckEvery <= 0 {
		c.RetryCheckEvery = time.Second
	}
	if c.Backoff == (Backoff{}) {
		c.Backoff = DefaultBackoff()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxObjectBytes <= 0 {
		c.MaxObjectBytes = 15 << 20
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 30 * time.Second
	}
	if c.LedgerRetryFor <= 0 {
		c.LedgerRetryFor = 30 * time.Second
	}
	if c.DeniedWait <= 0 {
		c.DeniedWait = time.Minute
	}
	if c.ContentWait <= 0 {
		c.ContentWait = time.Second
	}
	if c.RunGateTTL <= 0 {
		c.RunGateTTL = 2 * time.Second
	}
	if c.Fleet.SlotLease <= 0 {
		c.Fleet.SlotLease = 2*c.CallTimeout + 5*time.Second
	}
}

// Worker is one worker process: asynq lanes serving verify tasks (and any
// others), the fleet's limits and answer stash in Redis, and the
// housekeeping that ends runs.
type Worker struct {
	server *Server
	fleet  goredis.UniversalClient // the governor's and the stash's
}

// New builds a worker over deps. Run it once: it holds Redis connections
// until Run returns.
func New(deps Deps, cfg Config) (*Worker, error) {
	if deps.Objects == nil || deps.API == nil || deps.Ledger == nil || deps.Redis == nil || deps.Runs == nil {
		return nil, errors.New("worker: Objects, API, Ledger, Redis and Runs are required")
	}
	for typ, h := range deps.Handlers {
		if typ == tasks.TypeVerify || h == nil {
			return nil, fmt.Errorf("worker: invalid extra handler for %q", typ)
		}
	}
	cfg.defaults()
	// The lanes and the fleet get a client each: admissions do not wait
	// for connections the lanes' task fetches hold.
	lanes, ok := deps.Redis.MakeRedisClient().(goredis.UniversalClient)
	if !ok {
		return nil, errors.New("worker: unsupported Redis connection type")
	}
	rdb := deps.Redis.MakeRedisClient().(goredis.UniversalClient)

	var gate RunGate
	if deps.RunGate != nil {
		gate = NewCachedRunGate(deps.RunGate, cfg.RunGateTTL)
	}
	var limits RunLimiter
	if deps.RunLimits != nil {
		limits = NewCachedRunLimits(deps.RunLimits, cfg.RunGateTTL)
	}
	h := newHandler(deps.Objects, deps.API, deps.Ledger, fleet.New(rdb, cfg.Fleet),
		fleet.NewStash(rdb, cfg.StashPrefix, cfg.StashTTL), gate, limits, deps.Observer, cfg)
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeVerify, h)
	for typ, th := range deps.Handlers {
		mux.Handle(typ, th)
	}
	hk := housekeeping{runs: deps.Runs, ended: deps.RunEnded, feeder: deps.Feeder, background: deps.Background}
	return &Worker{server: newServer(lanes, mux, hk, cfg), fleet: rdb}, nil
}

// Run processes tasks until ctx is done, then finishes in-flight tasks
// (bounded by the shutdown timeout; unfinished ones go back to the queue).
func (w *Worker) Run(ctx context.Context) error {
	defer w.fleet.Close()
	return w.server.Run(ctx)
}
