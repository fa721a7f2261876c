package worker

import (
	"context"
	"fmt"
	"time"
)

// gate stops work on runs that were paused or cancelled: a paused run's
// tasks wait without failing; a cancelled (or finished) run's tasks are
// dropped without an API call.
func (j *job) gate(ctx context.Context) error {
	if j.h.cfg.Runs == nil {
		return nil
	}
	state, err := j.h.cfg.Runs.RunState(ctx, j.p.RunID)
	if err != nil {
		return j.ledgerError(err)
	}
	switch state {
	case "paused":
		return &WaitError{After: 30 * time.Second, Reason: "run_paused", Err: fmt.Errorf("run %s is paused", j.p.RunID)}
	case "cancelled", "failed":
		j.log.InfoContext(ctx, "skipping task of inactive run", "run_status", state)
		return nil
	}
	return nil
}
