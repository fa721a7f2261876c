package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"reverify/liveness"
	"reverify/storage/objects"
	"reverify/storage/postgres"
	"reverify/tasks"
)

// ObjectGetter fetches an object into buf, refusing objects over maxBytes.
type ObjectGetter interface {
	Get(ctx context.Context, bucket, key, versionID string, maxBytes int64, buf *bytes.Buffer) (objects.Object, error)
}

// Verifier calls the liveness API.
type Verifier interface {
	Verify(ctx context.Context, image []byte) (*liveness.Result, error)
}

// Ledger records calls and results.
type Ledger interface {
	BeginCall(ctx context.Context, runID string, obj postgres.ObjectRef) (callID int64, ok bool, err error)
	FinishCall(ctx context.Context, c postgres.Call, runID string, obj postgres.ObjectRef, final *postgres.Result) error
	RecordResult(ctx context.Context, r postgres.Result) error
}

// HandlerConfig tunes the verify handler.
type HandlerConfig struct {
	MaxObjectBytes int64         // larger objects are invalid_image, never read whole
	AuthCooldown   time.Duration // how long a 401/403 stops all calls
	Logger         *slog.Logger
	Observer       Observer // metrics; nil = none
	Runs           RunGate  // run status checks (cancel, pause); nil = every run is active
}

// Handler processes liveness:verify tasks.
type Handler struct {
	objects ObjectGetter
	api     Verifier
	ledger  Ledger
	cfg     HandlerConfig
	log     *slog.Logger
	auth    *circuit
	bufs    sync.Pool
	now     func() time.Time
}

// NewHandler returns a verify handler over its three dependencies.
func NewHandler(objs ObjectGetter, api Verifier, ledger Ledger, cfg HandlerConfig) *Handler {
	if cfg.MaxObjectBytes <= 0 {
		cfg.MaxObjectBytes = 15 << 20
	}
	if cfg.AuthCooldown <= 0 {
		cfg.AuthCooldown = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	h := &Handler{objects: objs, api: api, ledger: ledger, cfg: cfg, log: cfg.Logger, now: time.Now}
	h.auth = newCircuit(h.now)
	h.bufs.New = func() any { return new(bytes.Buffer) }
	return h
}

// ProcessTask implements asynq.Handler for tasks.TypeVerify.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseVerifyPayload(t.Payload())
	if err != nil {
		h.log.ErrorContext(ctx, "dropping task with bad payload", "task_type", t.Type(), "err", err)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	j := &job{h: h, p: p, obj: postgres.ObjectRef{Bucket: p.Bucket, Key: p.Key, Version: p.Version}, start: h.now()}
	j.log = h.log.With("run_id", p.RunID, "key_hash", keyHash(p.Bucket, p.Key))
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	j.last = retried >= maxRetry
	err = j.run(ctx)
	j.observeWait(err)
	return err
}

// job is one attempt at one object.
type job struct {
	h     *Handler
	p     tasks.VerifyPayload
	obj   postgres.ObjectRef
	start time.Time
	last  bool // no retries left
	log   *slog.Logger
}

func (j *job) run(ctx context.Context) error {
	h := j.h
	if stop := j.gate(ctx); stop != nil {
		return stop
	}
	if left, why := h.auth.open(); left > 0 {
		return &WaitError{After: left, Reason: "circuit_open", Err: fmt.Errorf("liveness API refused the key: %s", why)}
	}

	buf := h.bufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 4<<20 { // keep the pool from pinning huge buffers
			buf.Reset()
			h.bufs.Put(buf)
		}
	}()
	fetchStart := h.now()
	meta, err := h.objects.Get(ctx, j.p.Bucket, j.p.Key, j.p.Version, h.cfg.MaxObjectBytes, buf)
	h.cfg.Observer.ObjectFetched(h.now().Sub(fetchStart), int64(buf.Len()), err)
	switch {
	case errors.Is(err, objects.ErrNotFound), errors.Is(err, objects.ErrBucketNotFound):
		return j.record(ctx, postgres.Result{Status: postgres.StatusNotFound, Message: "object not found in storage"})
	case errors.Is(err, objects.ErrTooLarge):
		return j.record(ctx, postgres.Result{Status: postgres.StatusInvalidImage, Size: meta.Size,
			Message: fmt.Sprintf("object is larger than the %d-byte limit", h.cfg.MaxObjectBytes)})
	case err != nil:
		return j.retryOrFail(ctx, fmt.Errorf("fetch object: %w", err), "could not fetch object: ")
	}
	if why := checkImage(buf.Bytes()); why != "" {
		return j.record(ctx, postgres.Result{Status: postgres.StatusInvalidImage, Message: why, ETag: meta.ETag, Size: meta.Size})
	}

	callID, ok, err := h.ledger.BeginCall(ctx, j.p.RunID, j.obj)
	if err != nil {
		return j.ledgerError(err)
	}
	if !ok {
		j.log.InfoContext(ctx, "object already has a result; not calling the API again")
		return nil
	}
	sent := h.now()
	res, apiErr := h.api.Verify(ctx, buf.Bytes())
	call := postgres.Call{ID: callID, Latency: h.now().Sub(sent)}
	final := &postgres.Result{ETag: meta.ETag, Size: meta.Size}
	var retry error

	var le *liveness.Error
	switch {
	case apiErr == nil:
		score := res.Score
		call.Outcome, call.TransactionID, call.HTTPStatus, call.Score = postgres.OutcomeScored, res.TransactionID, res.HTTPStatus, &score
		final.Status, final.Score, final.TransactionID = postgres.StatusScored, &score, res.TransactionID
	case errors.As(apiErr, &le):
		call.TransactionID, call.HTTPStatus, call.ErrorCode, call.Message = le.TransactionID, le.HTTPStatus, le.ErrorCode, le.Message
		switch le.Kind {
		case liveness.Permanent:
			call.Outcome = postgres.OutcomeRejected
			final.Status, final.TransactionID, final.Message = postgres.StatusRejected, le.TransactionID, le.Message
			final.ErrorCode = le.ErrorCode
			if final.ErrorCode == 0 {
				final.ErrorCode = le.HTTPStatus
			}
		case liveness.RateLimited:
			call.Outcome, final = postgres.OutcomeRateLimited, nil
			retry = &WaitError{After: max(le.RetryAfter, time.Second), Reason: "rate_limited", Err: apiErr}
		case liveness.Auth:
			call.Outcome, final = postgres.OutcomeAuth, nil
			if h.auth.trip(h.cfg.AuthCooldown, le.Message) {
				j.log.ErrorContext(ctx, "liveness API refused the API key; pausing all calls",
					"http_status", le.HTTPStatus, "cooldown", h.cfg.AuthCooldown.String())
			}
			retry = &WaitError{After: h.cfg.AuthCooldown, Reason: "circuit_open", Err: apiErr}
		default:
			call.Outcome = postgres.OutcomeTransient
			final, retry = j.transient(apiErr, final)
		}
	default:
		call.Outcome, call.Message = postgres.OutcomeTransient, apiErr.Error()
		final, retry = j.transient(apiErr, final)
	}
	h.cfg.Observer.APICalled(call.Outcome, call.Latency, call.Score)
	if call.Message == "" && apiErr != nil {
		call.Message = apiErr.Error()
	}
	if final != nil {
		j.fill(final)
	}
	// The call is paid for: keep trying to record it rather than call again.
	if err := j.persist(ctx, func(ctx context.Context) error {
		return h.ledger.FinishCall(ctx, call, j.p.RunID, j.obj, final)
	}); err != nil {
		return j.ledgerError(err)
	}
	j.log.InfoContext(ctx, "api call", "outcome", call.Outcome, "transaction_id", call.TransactionID,
		"http_status", call.HTTPStatus, "latency_ms", call.Latency.Milliseconds())
	if final != nil {
		h.cfg.Observer.ResultRecorded(final.Status)
	}
	return retry
}

// transient decides what a retryable API failure does: retry while the
// budget lasts, then record the object as failed.
func (j *job) transient(apiErr error, final *postgres.Result) (*postgres.Result, error) {
	if !j.last {
		return nil, apiErr
	}
	final.Status, final.Message = postgres.StatusFailed, "retries exhausted: "+apiErr.Error()
	return final, fmt.Errorf("%w: %w", apiErr, asynq.SkipRetry)
}

// retryOrFail retries a failure before the API call, or records it as the
// object's terminal failure when no retries are left.
func (j *job) retryOrFail(ctx context.Context, err error, prefix string) error {
	if !j.last {
		j.log.WarnContext(ctx, "will retry", "err", err)
		return err
	}
	if rerr := j.record(ctx, postgres.Result{Status: postgres.StatusFailed, Message: prefix + err.Error()}); rerr != nil {
		return rerr
	}
	return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
}

// record writes a terminal result that needed no API call.
func (j *job) record(ctx context.Context, r postgres.Result) error {
	j.fill(&r)
	if err := j.persist(ctx, func(ctx context.Context) error { return j.h.ledger.RecordResult(ctx, r) }); err != nil {
		return j.ledgerError(err)
	}
	j.log.InfoContext(ctx, "result", "status", r.Status, "duration_ms", r.Duration.Milliseconds())
	j.h.cfg.Observer.ResultRecorded(r.Status)
	return nil
}

// observeWait reports a retry that does not count as a failure.
func (j *job) observeWait(err error) {
	var w *WaitError
	if errors.As(err, &w) {
		j.h.cfg.Observer.Waited(w.Reason, w.After)
	}
}

func (j *job) fill(r *postgres.Result) {
	r.RunID, r.Object, r.Duration = j.p.RunID, j.obj, j.h.now().Sub(j.start)
}

// persist retries a ledger write while PostgreSQL is unreachable, until the
// task's deadline.
func (j *job) persist(ctx context.Context, write func(context.Context) error) error {
	delay := 100 * time.Millisecond
	for {
		err := write(ctx)
		if err == nil || !errors.Is(err, postgres.ErrUnavailable) {
			return err
		}
		j.log.WarnContext(ctx, "ledger unavailable; retrying the write", "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// ledgerError classifies a failed ledger write: an unreachable database is
// waited out; a run that no longer exists is dropped.
func (j *job) ledgerError(err error) error {
	switch {
	case errors.Is(err, postgres.ErrUnavailable):
		return &WaitError{After: 5 * time.Second, Reason: "ledger_unavailable", Err: err}
	case errors.Is(err, postgres.ErrUnknownRun):
		j.log.Error("dropping task of unknown run", "err", err)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}

// keyHash identifies an object in logs without writing its key, which can
// name a person.
func keyHash(bucket, key string) string {
	sum := sha256.Sum256([]byte(bucket + "/" + key))
	return hex.EncodeToString(sum[:8])
}
