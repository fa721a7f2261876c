package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"reverify/worker/fleet"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// LockKey is the Redis key whose holder is the one active scheduler.
const LockKey = "reverify:scheduler:leader"

// Runner runs asynq's scheduler while it holds the leader lock.
type Runner struct {
	lease     *fleet.Lease
	redisOpt  asynq.RedisConnOpt
	schedules []Schedule
	holder    string
	ttl       time.Duration
	log       *slog.Logger
	// OnLead, when set, is told when this instance starts or stops acting.
	OnLead func(leading bool)
}

// NewRunner returns a scheduler named holder; ttl is the lock's lifetime
// (default 15s): a crashed leader is replaced within it.
func NewRunner(rdb redis.UniversalClient, redisOpt asynq.RedisConnOpt, schedules []Schedule, holder string, ttl time.Duration, log *slog.Logger) *Runner {
	if ttl <= 0 {
		ttl = 15 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{lease: fleet.NewLease(rdb, LockKey, holder, ttl), redisOpt: redisOpt, schedules: schedules,
		holder: holder, ttl: ttl, log: log}
}

// Run waits for the lock, schedules while it holds it, and returns when ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	tick := time.NewTicker(r.ttl / 3)
	defer tick.Stop()
	var sched *asynq.Scheduler
	stop := func() {
		if sched != nil {
			sched.Shutdown()
			sched = nil
			r.lead(false)
		}
	}
	defer func() {
		stop()
		_ = r.lease.Release(context.WithoutCancel(ctx))
	}()
	for {
		held, err := r.lease.Hold(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.WarnContext(ctx, "scheduler lock check failed", "err", err)
			stop() // without the lock another instance may take over
		case held && sched == nil:
			if sched, err = r.start(); err != nil {
				return err
			}
			r.log.InfoContext(ctx, "this scheduler is now the active one", "holder", r.holder, "schedules", len(r.schedules))
			r.lead(true)
		case !held && sched != nil:
			r.log.WarnContext(ctx, "scheduler lock lost; standing by")
			stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (r *Runner) lead(on bool) {
	if r.OnLead != nil {
		r.OnLead(on)
	}
}

func (r *Runner) start() (*asynq.Scheduler, error) {
	s := asynq.NewScheduler(r.redisOpt, &asynq.SchedulerOpts{LogLevel: asynq.WarnLevel})
	for _, sc := range r.schedules {
		task, err := NewFireTask(sc)
		if err != nil {
			return nil, err
		}
		if _, err := s.Register(sc.Spec(), task); err != nil {
			return nil, fmt.Errorf("schedule %q: %w", sc.Name, err)
		}
	}
	if err := s.Start(); err != nil {
		return nil, fmt.Errorf("start scheduler: %w", err)
	}
	return s, nil
}
