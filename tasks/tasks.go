// Package tasks defines reverify's asynq task types and payloads, the
// sources a run's objects come from (listing, manifest, S3 Inventory) with
// their filters, and the recorder that streams a source into the ledger.
//
// Payloads carry IDs only (run, bucket, key, version), never image bytes, and
// task IDs are derived from run + object (+ its dispatch sequence) so
// dispatching the same object twice is a no-op while the first task is
// still known to Redis.
package tasks

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
)

// TypeVerify is the task that verifies one stored image.
const TypeVerify = "liveness:verify"

// DefaultQueue is the queue verify tasks go to unless a run names another.
const DefaultQueue = "liveness"

// Defaults for verify tasks. DefaultMaxRetry counts failures only (see
// Retries): rate limits and waits for the fleet's limits do not use it up.
const (
	DefaultMaxRetry = 10
	DefaultTimeout  = 2 * time.Minute
)

// Retries lets a verify task retry n failed attempts; use it, not
// asynq.MaxRetry, for verify tasks. asynq archives a task whose retries
// are used up whatever its handler returns, a wait included, so the task
// carries one retry more, which the handler never spends on a failure
// (see Budget): on its last attempt a wait still goes back to the queue.
func Retries(n int) asynq.Option { return asynq.MaxRetry(max(n, 0) + 1) }

// Budget is the n a verify task was given with Retries, from the retry
// count asynq keeps for it: on the attempt where its retries reach
// Budget, a failure is final.
func Budget(maxRetry int) int { return max(maxRetry-1, 0) }

// ErrBadPayload means a task's payload cannot be decoded or is incomplete.
var ErrBadPayload = errors.New("bad task payload")

// VerifyPayload identifies one object of one run.
type VerifyPayload struct {
	RunID   string `json:"run_id"`
	Bucket  string `json:"bucket"`
	Key     string `json:"key"`
	Version string `json:"version,omitempty"`
	// Seq is the object's place in the run's dispatch order; an object
	// re-driven by a retry gets a new one, and with it a new task.
	Seq int64 `json:"seq,omitempty"`
}

// TaskID derives the task ID from the run, the object and its dispatch
// sequence, so dispatching the same object twice is a no-op while a
// retried object gets a task of its own (its old one may be archived).
// Keys may be 1,024 bytes of anything, so the object part is hashed.
func (p VerifyPayload) TaskID() string {
	h := sha256.New()
	h.Write([]byte(p.Bucket))
	h.Write([]byte{0})
	h.Write([]byte(p.Key))
	id := "verify:" + p.RunID + ":" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
	if p.Seq > 0 {
		id += ":" + strconv.FormatInt(p.Seq, 10)
	}
	return id
}

// NewVerifyTask builds a verify task for p in queue; opts override the defaults.
func NewVerifyTask(p VerifyPayload, queue string, opts ...asynq.Option) (*asynq.Task, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode verify payload: %w", err)
	}
	all := append([]asynq.Option{
		Retries(DefaultMaxRetry),
		asynq.Timeout(DefaultTimeout),
	}, opts...)
	// The ID and queue are not negotiable: they make re-enqueues no-ops.
	all = append(all, asynq.TaskID(p.TaskID()), asynq.Queue(queue))
	return asynq.NewTask(TypeVerify, b, all...), nil
}

// ParseVerifyPayload decodes a verify task's payload. Errors wrap ErrBadPayload.
func ParseVerifyPayload(b []byte) (VerifyPayload, error) {
	var p VerifyPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return VerifyPayload{}, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	if err := p.validate(); err != nil {
		return VerifyPayload{}, err
	}
	return p, nil
}

func (p VerifyPayload) validate() error {
	switch {
	case p.RunID == "":
		return fmt.Errorf("%w: missing run_id", ErrBadPayload)
	case p.Bucket == "":
		return fmt.Errorf("%w: missing bucket", ErrBadPayload)
	case p.Key == "":
		return fmt.Errorf("%w: missing key", ErrBadPayload)
	}
	return nil
}
