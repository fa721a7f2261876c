package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

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
	Concurrency     int            // tasks processed at once; default 100 (the work is I/O bound)
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
	srv  *asynq.Server
	mux  *asynq.ServeMux
	runs RunCloser
	cfg  Config
	log  *slog.Logger
}

// NewServer builds a server on redis that runs h for verify tasks.
func NewServer(redis asynq.RedisConnOpt, h *Handler, runs RunCloser, cfg Config) *Server {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 100
	}
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
	srv := asynq.NewServer(redis, asynq.Config{
		Concurrency:              cfg.Concurrency,
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
	})
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeVerify, h)
	return &Server{srv: srv, mux: mux, runs: runs, cfg: cfg, log: cfg.Logger}
}

// Run processes tasks until ctx is done, then finishes in-flight tasks
// (bounded by the shutdown timeout; unfinished ones go back to the queue).
func (s *Server) Run(ctx context.Context) error {
	if err := s.srv.Start(s.mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	s.log.InfoContext(ctx, "worker started", "concurrency", s.cfg.Concurrency, "queues", s.cfg.Queues)
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
			s.srv.Shutdown()
			s.closeRuns(context.WithoutCancel(ctx))
			return nil
		case <-tick.C:
			s.closeRuns(ctx)
		}
	}
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
