package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypePlan lists a run's bucket/prefix inside the worker fleet, page by
// page, recording each page before saving the continuation token, so a
// crashed planner resumes where it stopped (see campaign.Service.Plan).
const TypePlan = "run:plan"

// PlanPayload names the run to plan.
type PlanPayload struct {
	RunID string `json:"run_id"`
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
