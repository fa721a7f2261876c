package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"

	"reverify/tasks"
)

// RunCloser ends runs: completed when nothing is left to do, failed when
// their failures passed the run's threshold.
type RunCloser interface {
	CompleteFinishedRuns(ctx context.Context) ([]string, error)
	FailRunsOverThreshold(ctx context.Context) ([]string, error)
}

// Config configures the asynq server.
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
	Backoff         Backoff
	Logger          *slog.Logger
	// RunEnded, when set, is called once per run this process ended
	// (status completed or failed), e.g. to write its completion report.
	RunEnded func(ctx context.Context, runID, status string)
	// Reconcile, when set, runs every ReconcileEvery (default 5m): it puts
	// back tasks Redis lost (see tasks.Producer.RequeueActive).
	Reconcile      func(ctx context.Context) error
	ReconcileEvery time.Duration
}

// Server processes verify tasks until its context ends.
type Server struct {
	redis goredis.UniversalClient // shared by the lanes
	lanes []*asynq.Server
	mux   *asynq.ServeMux
	runs  RunCloser
	cfg   Config
	log   *slog.Logger
}

// perLane is the concurrency one lane serves by default: at a 200 ms API
// latency that is 250 tasks/s, well inside one lane's fetch rate on a busy
// machine (make bench, latency case).
const perLane = 50

// NewServer builds a server on redis that runs h (a *Handler in
// production) for verify tasks.
func NewServer(redis asynq.RedisConnOpt, h asynq.Handler, runs RunCloser, cfg Config) *Server {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 100
	}
	if cfg.Lanes <= 0 {
		cfg.Lanes = (cfg.Concurrency + perLane - 1) / perLane
	}
	cfg.Lanes = min(cfg.Lanes, cfg.Concurrency)
	if len(cfg.Queues) == 0 {
		cfg.Queues = map[string]int{tasks.DefaultQueue: 1}
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.CloseRunsEvery <= 0 {
		cfg.CloseRunsEvery = 2 * time.Second
	}
	if cfg.RetryCheckEvery <= 0 {
		cfg.RetryCheckEvery = time.Second
	}
	if cfg.ReconcileEvery <= 0 {
		cfg.ReconcileEvery = 5 * time.Minute
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = DefaultBackoff()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	rdb := redis.MakeRedisClient().(goredis.UniversalClient)
	s := &Server{redis: rdb, mux: asynq.NewServeMux(), runs: runs, cfg: cfg, log: cfg.Logger}
	lane := asynq.Config{
		Queues:                   cfg.Queues,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		RetryDelayFunc:           cfg.Backoff.Delay,
		IsFailure:                IsFailure,
		DelayedTaskCheckInterval: cfg.RetryCheckEvery,
		Logger:                   asynqLogger{cfg.Logger.With("component", "asynq")},
		LogLevel:                 asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if IsFailure(err) {
				cfg.Logger.WarnContext(ctx, "task failed", "task_type", t.Type(), "err", err)
			}
		}),
	}
	for i := range cfg.Lanes {
		lane.Concurrency = laneShare(cfg.Concurrency, cfg.Lanes, i)
		s.lanes = append(s.lanes, asynq.NewServerFromRedisClient(rdb, lane))
	}
	s.mux.Handle(tasks.TypeVerify, h)
	return s
}

// LedgerConns sizes a worker's PostgreSQL pool for a concurrency. Each
// image holds a connection only for two short writes, which share commits
// (see LedgerFlushers); a connection per in-flight image would exhaust
// max_connections (100 by default) across a fleet.
func LedgerConns(concurrency int) int { return min(max(4, concurrency/16), 32) }

// LedgerFlushers is how many of a pool's conns commit grouped writes
// (postgres.Store.GroupWrites). Each commit costs PostgreSQL CPU of its
// own, so fewer, fuller groups win; a second flusher lets the next group
// start while one waits for its commit. More flushers only split the
// groups: at C=500 in bench case 3, seven flushers cost PostgreSQL 0.27 ms
// of CPU per image, two 0.20. Two still commit 9,000 results a second
// (bench case 5), over three times what C=500 asks.
func LedgerFlushers(conns int) int { return min(2, max(1, conns/4)) }

// laneShare splits n slots over lanes as evenly as can be.
func laneShare(n, lanes, i int) int {
	share := n / lanes
	if i < n%lanes {
		share++
	}
	return share
}

// Run processes tasks until ctx is done, then finishes in-flight tasks
// (bounded by the shutdown timeout; unfinished ones go back to the queue).
func (s *Server) Run(ctx context.Context) error {
	defer s.redis.Close()
	for i, lane := range s.lanes {
		if err := lane.Start(s.mux); err != nil {
			s.shutdown(s.lanes[:i])
			return fmt.Errorf("start worker: %w", err)
		}
	}
	s.log.InfoContext(ctx, "worker started", "concurrency", s.cfg.Concurrency, "lanes", len(s.lanes), "queues", s.cfg.Queues)
	tick := time.NewTicker(s.cfg.CloseRunsEvery)
	defer tick.Stop()
	reconcile := time.NewTicker(s.cfg.ReconcileEvery)
	defer reconcile.Stop()
	for {
		select {
		case <-reconcile.C:
			if s.cfg.Reconcile != nil {
				if err := s.cfg.Reconcile(ctx); err != nil && ctx.Err() == nil {
					s.log.WarnContext(ctx, "reconcile failed; will try again", "err", err)
				}
			}
		case <-ctx.Done():
			s.log.Info("shutting down: finishing in-flight tasks", "timeout", s.cfg.ShutdownTimeout.String())
			s.shutdown(s.lanes)
			s.closeRuns(context.WithoutCancel(ctx))
			return nil
		case <-tick.C:
			s.closeRuns(ctx)
		}
	}
}

// shutdown stops lanes side by side, so the whole takes at most one
// shutdown timeout.
func (s *Server) shutdown(lanes []*asynq.Server) {
	var wg sync.WaitGroup
	for _, lane := range lanes {
		wg.Go(lane.Shutdown)
	}
	wg.Wait()
}

func (s *Server) closeRuns(ctx context.Context) {
	failed, err := s.runs.FailRunsOverThreshold(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.WarnContext(ctx, "could not check failure thresholds", "err", err)
	}
	for _, id := range failed {
		s.log.WarnContext(ctx, "run failed: failure threshold crossed", "run_id", id)
		s.runEnded(ctx, id, "failed")
	}
	ids, err := s.runs.CompleteFinishedRuns(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.WarnContext(ctx, "could not close finished runs", "err", err)
	}
	for _, id := range ids {
		s.log.InfoContext(ctx, "run completed", "run_id", id)
		s.runEnded(ctx, id, "completed")
	}
}

func (s *Server) runEnded(ctx context.Context, id, status string) {
	if s.cfg.RunEnded != nil {
		s.cfg.RunEnded(ctx, id, status)
	}
}

// Handle registers another task handler (e.g. run:plan) before Run.
func (s *Server) Handle(taskType string, h asynq.Handler) { s.mux.Handle(taskType, h) }

// asynqLogger routes asynq's own logs through slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
