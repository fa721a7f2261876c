package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reverify"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"

	"reverify/tasks"
)

// Server is a worker's asynq lanes and the housekeeping of runs.
type Server struct {
	redis goredis.UniversalClient // shared by the lanes
	lanes []*asynq.Server
	mux   *asynq.ServeMux
	hk    housekeeping
	cfg   Config
	log   *slog.Logger
}

// housekeeping is what the server does besides tasks.
type housekeeping struct {
	runs   RunCloser
	ended  RunEndHook // may be nil
	feeder Feeder     // may be nil
	// background run beside the lanes.
	background []Runner
}

// perLane is the concurrency one lane serves by default: the tasks per
// second its slots ask for at a typical API latency stay well inside what
// one lane's fetch loop, a Redis round trip per task, hands out (make
// bench, latency case).
const perLane = 50

// NewServer builds the lanes and the run housekeeping around h alone for
// verify tasks (e.g. to measure the queueing layer); New builds a whole
// worker.
func NewServer(redis asynq.RedisConnOpt, h asynq.Handler, runs RunCloser, cfg Config) *Server {
	cfg.defaults()
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeVerify, h)
	return newServer(redis.MakeRedisClient().(goredis.UniversalClient), mux, housekeeping{runs: runs}, cfg)
}

// newServer builds a server on rdb, which it closes when Run returns; cfg
// has its defaults.
func newServer(rdb goredis.UniversalClient, mux *asynq.ServeMux, hk housekeeping, cfg Config) *Server {
	s := &Server{redis: rdb, mux: mux, hk: hk, cfg: cfg, log: cfg.Logger}
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
// groups, at more PostgreSQL CPU per image, and two keep up with what a
// worker at high concurrency asks (make bench, cases 3 and 5).
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
	var wg sync.WaitGroup
	defer wg.Wait()
	if s.hk.feeder != nil {
		wg.Go(func() {
			if err := s.hk.feeder.Run(ctx); err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "feeder stopped", "err", err)
			}
		})
	}
	for _, r := range s.hk.background {
		wg.Go(func() {
			if err := r.Run(ctx); err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "background work stopped", "err", err)
			}
		})
	}
	tick := time.NewTicker(s.cfg.CloseRunsEvery)
	defer tick.Stop()
	for {
		select {
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
	failed, err := s.hk.runs.FailRunsOverThreshold(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.WarnContext(ctx, "could not check failure thresholds", "err", err)
	}
	for _, id := range failed {
		s.log.WarnContext(ctx, "run failed: failure threshold crossed", "run_id", id)
		s.runEnded(ctx, id, reverify.RunFailed)
	}
	ids, err := s.hk.runs.CompleteFinishedRuns(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.WarnContext(ctx, "could not close finished runs", "err", err)
	}
	for _, id := range ids {
		s.log.InfoContext(ctx, "run completed", "run_id", id)
		s.runEnded(ctx, id, reverify.RunCompleted)
	}
}

func (s *Server) runEnded(ctx context.Context, id string, status reverify.RunStatus) {
	if s.hk.ended != nil {
		s.hk.ended.RunEnded(ctx, id, status)
	}
}

// asynqLogger routes asynq's own logs through slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
