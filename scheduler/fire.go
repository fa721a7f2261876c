package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reverify"
	"time"

	"github.com/hibiken/asynq"

	"reverify/campaign"
	"reverify/tasks"
)

// TypeFire is the task asynq's scheduler enqueues at each firing.
const TypeFire = "schedule:fire"

// ControlQueue is where firings go; workers serve it besides their queues.
const ControlQueue = "reverify-control"

// NewFireTask builds the firing task of s.
func NewFireTask(s Schedule) (*asynq.Task, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode schedule %q: %w", s.Name, err)
	}
	return asynq.NewTask(TypeFire, b, asynq.Queue(ControlQueue), asynq.MaxRetry(10)), nil
}

// Creator creates runs; *campaign.Service satisfies it.
type Creator interface {
	Create(ctx context.Context, sp campaign.Spec) (reverify.Run, error)
}

// Firer turns schedule:fire tasks into runs listed by the fleet.
type Firer struct {
	runs Creator
	now  func() time.Time
}

// NewFirer returns the schedule:fire handler.
func NewFirer(runs Creator) *Firer { return &Firer{runs: runs, now: time.Now} }

// ProcessTask implements asynq.Handler. The run is keyed by the task ID, so
// a retried firing reuses its run instead of creating another.
func (f *Firer) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var s Schedule
	if err := json.Unmarshal(t.Payload(), &s); err != nil {
		return fmt.Errorf("%w: schedule:fire: %w: %w", tasks.ErrBadPayload, err, asynq.SkipRetry)
	}
	id, _ := asynq.GetTaskID(ctx)
	loc, err := time.LoadLocation(s.TimeZone)
	if err != nil {
		return fmt.Errorf("schedule %q: %w: %w", s.Name, err, asynq.SkipRetry)
	}
	now := f.now().In(loc)
	if id == "" { // not run by asynq (tests): key by schedule and minute
		id = s.Name + "@" + now.Truncate(time.Minute).Format(time.RFC3339)
	}
	filters := s.Filters
	if s.ModifiedWithin > 0 {
		after := now.Add(-time.Duration(s.ModifiedWithin))
		filters.ModifiedAfter = &after
	}
	limits, err := s.Limits()
	if err != nil {
		return fmt.Errorf("schedule %q: %w: %w", s.Name, err, asynq.SkipRetry)
	}
	labels := map[string]string{"schedule": s.Name}
	for k, v := range s.Labels {
		labels[k] = v
	}
	_, err = f.runs.Create(ctx, campaign.Spec{
		Name:       fmt.Sprintf("schedule %s @ %s", s.Name, now.Truncate(time.Minute).Format("2006-01-02 15:04 MST")),
		Source:     reverify.Source{Kind: reverify.SourcePrefix, Bucket: s.Bucket, Prefix: s.Prefix},
		Filters:    filters,
		Queue:      s.Queue,
		Priority:   s.Priority,
		Labels:     labels,
		ReportTo:   s.ReportTo,
		InFleet:    true,
		Limits:     limits,
		TriggerKey: "schedule:" + id,
		Actor:      reverify.Actor{Who: "scheduler:" + s.Name, Why: "scheduled firing " + s.Spec(), Source: reverify.AuditFromScheduler},
	})
	if errors.Is(err, campaign.ErrInvalidSpec) {
		return fmt.Errorf("schedule %q: %w: %w", s.Name, err, asynq.SkipRetry)
	}
	if err != nil {
		return fmt.Errorf("schedule %q: %w", s.Name, err)
	}
	return nil
}
