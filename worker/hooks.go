package worker

import (
	"context"
	"reverify"
	"time"
)

// Observer is told what the pipeline does, for metrics. Methods must be
// cheap and safe for concurrent use.
type Observer interface {
	// ObjectFetched reports one S3 get: its latency, the bytes read, and
	// err (nil on success).
	ObjectFetched(d time.Duration, bytes int64, err error)
	// APICalled reports one API call made: outcome is an api_calls outcome
	// (scored, rejected, rate_limited, auth, transient); score is set when
	// scored; billable when the answer carried a transaction ID.
	APICalled(outcome reverify.CallOutcome, d time.Duration, score *float64, billable bool)
	// ResultRecorded reports an object's terminal status.
	ResultRecorded(status reverify.Status)
	// Waited reports a task put back without a failure, and why
	Waited(reason reverify.WaitReason, d time.Duration)
}

// RunLimiter gives a run's own caps on its API calls.
type RunLimiter interface {
	RunLimits(ctx context.Context, runID string) (reverify.RunLimits, error)
}

// RunGate says whether a run's objects may still be sent to the API.
type RunGate interface {
	// RunState returns the run's status (running, paused, cancelled, …).
	RunState(ctx context.Context, runID string) (reverify.RunStatus, error)
}

// RunCloser ends runs: completed when nothing is left to do, failed when
// their failures passed the run's threshold.
type RunCloser interface {
	CompleteFinishedRuns(ctx context.Context) ([]string, error)
	FailRunsOverThreshold(ctx context.Context) ([]string, error)
}

// RunEndHook is told once of each run this process ended (completed or
// failed), e.g. to write its completion report.
type RunEndHook interface {
	RunEnded(ctx context.Context, runID string, status reverify.RunStatus)
}

// Feeder keeps the task queue supplied from the ledger
// (campaign.Feeder); a worker runs it beside its lanes, and across the
// fleet one feeds while the others stand by.
type Feeder interface {
	Run(ctx context.Context) error
}

// Runner is work a worker runs beside its lanes until it stops.
type Runner interface {
	Run(ctx context.Context) error
}

type nopObserver struct{}

func (nopObserver) ObjectFetched(time.Duration, int64, error)                     {}
func (nopObserver) APICalled(reverify.CallOutcome, time.Duration, *float64, bool) {}
func (nopObserver) ResultRecorded(reverify.Status)                                {}
func (nopObserver) Waited(reverify.WaitReason, time.Duration)                     {}
