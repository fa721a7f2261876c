package worker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reverify"
	"time"

	"github.com/hibiken/asynq"

	"reverify/liveness"
)

// WaitError asks for the task to be retried after at least After, without
// using up its retry budget: the image is fine, the pipeline has to wait.
type WaitError struct {
	After  time.Duration
	Reason reverify.WaitReason
	Err    error
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("retry in %s: %v", e.After.Round(time.Second), e.Err)
}

func (e *WaitError) Unwrap() error { return e.Err }

// IsFailure reports whether err counts against the task's retry budget.
func IsFailure(err error) bool {
	var w *WaitError
	return !errors.As(err, &w)
}

// Backoff is exponential backoff with full jitter: attempt n waits a uniform
// random time in [0, min(Cap, Base·2ⁿ)), at least Min. A Retry-After from the
// API or a WaitError's delay is a floor.
type Backoff struct {
	Base, Cap, Min time.Duration
}

// DefaultBackoff spreads ten retries over roughly an hour.
func DefaultBackoff() Backoff {
	return Backoff{Base: 2 * time.Second, Cap: 10 * time.Minute, Min: time.Second}
}

// Delay implements asynq.RetryDelayFunc.
func (b Backoff) Delay(n int, err error, _ *asynq.Task) time.Duration {
	var floor time.Duration
	var w *WaitError
	if errors.As(err, &w) {
		floor = w.After
	}
	var le *liveness.Error
	if errors.As(err, &le) && le.RetryAfter > floor {
		floor = le.RetryAfter
	}
	if floor > 0 {
		// Spread the herd that got the same Retry-After by up to 10%.
		return floor + rand.N(floor/10+time.Millisecond)
	}
	ceil := b.Cap
	if n < 30 && b.Base<<n < b.Cap && b.Base<<n > 0 {
		ceil = b.Base << n
	}
	return max(b.Min, rand.N(ceil))
}
