// Package worker runs a reverify worker process (New): asynq lanes serving
// the verify handler (fetch the object, check it is an image, call the
// liveness API within the fleet's limits, record the result), the retry
// policy that decides what a failure costs, and the housekeeping that
// closes finished runs.
//
// Errors are classified once here. A nil return acknowledges the task and is
// only returned after the result is committed; a *WaitError is retried after
// its delay without counting as a failure (rate limits, an open circuit, the
// ledger being unreachable); asynq.SkipRetry archives a task whose failure is
// already recorded; any other error is a counted failure, retried with
// exponential backoff and full jitter.
package worker
