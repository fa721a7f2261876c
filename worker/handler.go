package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reverify"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"reverify/liveness"
	"reverify/storage/objects"
	"reverify/storage/postgres"
	"reverify/tasks"
	"reverify/worker/fleet"
)

// ObjectGetter fetches an object into buf, refusing objects over maxBytes.
type ObjectGetter interface {
	Get(ctx context.Context, bucket, key, versionID string, maxBytes int64, buf *bytes.Buffer) (objects.Object, error)
	CheckBucket(ctx context.Context, bucket string) error
}

// Verifier calls the liveness API.
type Verifier interface {
	Verify(ctx context.Context, image []byte) (*liveness.Result, error)
}

// Ledger records calls and results.
type Ledger interface {
	BeginCall(ctx context.Context, runID string, obj reverify.ObjectRef, lostAfter time.Duration) (int64, postgres.CallStart, error)
	ReplaceLostCall(ctx context.Context, runID string, obj reverify.ObjectRef, lostAfter time.Duration) (int64, postgres.CallStart, error)
	FinishCall(ctx context.Context, c postgres.Call, runID string, obj reverify.ObjectRef, final *postgres.Result) error
	RecordResult(ctx context.Context, r postgres.Result) error
	ContentLedger
}

// Governor admits API calls for the whole fleet and keeps its circuits.
type Governor interface {
	Admit(ctx context.Context, holder string) (fleet.Permit, error)
	Release(ctx context.Context, p fleet.Permit)  // after the call
	Withdraw(ctx context.Context, p fleet.Permit) // instead of the call
	Report(ctx context.Context, o fleet.Outcome, reason string) (opened bool, err error)
	// Adapt tells the fleet's adaptive rate how a call went.
	Adapt(ctx context.Context, sent time.Time, latency time.Duration, s fleet.Signal) (cut bool, err error)
	// AdmitRun admits a call under its run's own caps, fleet-wide;
	// ReleaseRun frees what it took once the call is over.
	AdmitRun(ctx context.Context, runID, holder string, lim reverify.RunLimits) (fleet.RunPermit, error)
	ReleaseRun(ctx context.Context, p fleet.RunPermit)
}

// Stash keeps a paid call's answer beside its task until the ledger has it.
type Stash interface {
	Save(ctx context.Context, taskID string, data []byte) error
	Load(ctx context.Context, taskID string) ([]byte, error)
	Drop(ctx context.Context, taskID string) error
}

// handler processes liveness:verify tasks.
type handler struct {
	objects ObjectGetter
	api     Verifier
	ledger  Ledger
	gov     Governor
	fair    *fairGate // shares gov's admissions among runs by weight
	stash   Stash
	runs    RunGate    // nil: every run is active
	limits  RunLimiter // nil: no run has caps of its own
	obs     Observer
	cfg     Config
	log     *slog.Logger
	bufs    sync.Pool
	denied  sync.Map // bucket -> struct{}: buckets already reported as access denied
	now     func() time.Time
}

// newHandler returns a verify handler over its dependencies; cfg has its
// defaults.
func newHandler(objs ObjectGetter, api Verifier, ledger Ledger, gov Governor, stash Stash, runs RunGate, limits RunLimiter,
	obs Observer, cfg Config) *handler {
	if obs == nil {
		obs = nopObserver{}
	}
	h := &handler{objects: objs, api: api, ledger: ledger, gov: gov, stash: stash, runs: runs, limits: limits, obs: obs,
		cfg: cfg, log: cfg.Logger, now: time.Now}
	h.fair = newFairGate(gov)
	h.bufs.New = func() any { return new(bytes.Buffer) }
	return h
}

// ProcessTask implements asynq.Handler for tasks.TypeVerify.
func (h *handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseVerifyPayload(t.Payload())
	if err != nil {
		h.log.ErrorContext(ctx, "dropping task with bad payload", "task_type", t.Type(), "err", err)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	j := &job{h: h, p: p, obj: reverify.ObjectRef{Bucket: p.Bucket, Key: p.Key, Version: p.Version}, start: h.now()}
	j.taskID, _ = asynq.GetTaskID(ctx)
	if j.taskID == "" {
		j.taskID = p.TaskID()
	}
	j.log = h.log.With("run_id", p.RunID, "key_hash", objects.KeyHash(p.Bucket, p.Key))
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	j.last = retried >= tasks.Budget(maxRetry)
	queue, _ := asynq.GetQueueName(ctx)
	j.weight = h.cfg.Queues[queue] // the run's priority weight
	err = j.run(ctx)
	j.observeWait(err)
	return err
}

// job is one attempt at one object.
type job struct {
	h      *handler
	p      tasks.VerifyPayload
	obj    reverify.ObjectRef
	taskID string
	// inStash is set when an answer of this task sits in the stash, so it
	// must be dropped once recorded.
	inStash bool
	start   time.Time
	last    bool // no retries left
	weight  int  // the weight of the task's queue: its run's priority
	log     *slog.Logger
}

// answer is a paid call's outcome, as kept in the stash.
type answer struct {
	Call  postgres.Call    `json:"call"`
	Final *postgres.Result `json:"final,omitempty"`
	Retry *answerRetry     `json:"retry,omitempty"`
	err   error            // the API's error, when this attempt made the call
}

// answerRetry is how the task goes on after a non-final answer.
type answerRetry struct {
	WaitFor time.Duration       `json:"wait_for,omitempty"` // a wait, not a failure
	Reason  reverify.WaitReason `json:"reason,omitempty"`
	Error   string              `json:"error"`
}

// An ending is how an attempt goes on when it cannot make its call as
// planned: recording a result that needs none, waiting, retrying, nothing
// more, or a new call in place of a lost one. It is carried out only when
// no answer paid for earlier waits in the stash (see unlessPaid).
type ending func(ctx context.Context) error

// returns ends the attempt with err (nil: the task is done).
func returns(err error) ending { return func(context.Context) error { return err } }

// run is one attempt, the task decoded: the run gate, the fetch, the
// image check, the content's claim (dedupe.go), then the call, whose answer is recorded. A step that ends
// the attempt without a call says how, and unlessPaid carries that out.
func (j *job) run(ctx context.Context) error {
	if end := j.gate(ctx); end != nil {
		return j.unlessPaid(ctx, end)
	}
	permit, end := j.admitRun(ctx)
	if end != nil {
		return j.unlessPaid(ctx, end)
	}
	defer j.h.gov.ReleaseRun(context.WithoutCancel(ctx), permit)
	buf := j.h.bufs.Get().(*bytes.Buffer)
	defer j.h.recycle(buf)
	meta, end := j.fetch(ctx, buf)
	if end == nil {
		end = j.check(buf.Bytes(), meta)
	}
	if end == nil {
		end = j.dedupe(ctx, buf.Bytes(), meta)
	}
	if end != nil {
		return j.unlessPaid(ctx, end)
	}
	return j.call(ctx, buf.Bytes(), meta, false)
}

// admitRun admits the attempt under its run's own caps before the image
// is fetched: a run at its cap gives the worker slot back at once (a wait,
// not a failure), and fetches nothing it cannot send yet.
func (j *job) admitRun(ctx context.Context) (fleet.RunPermit, ending) {
	if j.h.limits == nil {
		return fleet.RunPermit{}, nil
	}
	lim, err := j.h.limits.RunLimits(ctx, j.p.RunID)
	if err != nil {
		return fleet.RunPermit{}, func(context.Context) error { return j.ledgerError(err) }
	}
	p, err := j.h.gov.AdmitRun(ctx, j.p.RunID, j.taskID, lim)
	if err != nil {
		return fleet.RunPermit{}, returns(admissionWait(err))
	}
	return p, nil
}

// recycle returns a fetch buffer to the pool, unless it grew so large the
// pool would pin it.
func (h *handler) recycle(buf *bytes.Buffer) {
	if buf.Cap() <= 4<<20 {
		buf.Reset()
		h.bufs.Put(buf)
	}
}

// fetch reads the object into buf, or says how the attempt ends when it
// cannot be read.
func (j *job) fetch(ctx context.Context, buf *bytes.Buffer) (objects.Object, ending) {
	h := j.h
	start := h.now()
	meta, err := h.objects.Get(ctx, j.p.Bucket, j.p.Key, j.p.Version, h.cfg.MaxObjectBytes, buf)
	h.obs.ObjectFetched(h.now().Sub(start), int64(buf.Len()), err)
	switch {
	case err == nil:
		return meta, nil
	case errors.Is(err, objects.ErrNotFound): // ErrBucketNotFound too
		return meta, j.recording(postgres.Result{Status: reverify.StatusNotFound, Message: "object not found in storage"})
	case errors.Is(err, objects.ErrTooLarge):
		return meta, j.recording(postgres.Result{Status: reverify.StatusInvalidImage, Size: meta.Size,
			Message: fmt.Sprintf("object is larger than the %d-byte limit", h.cfg.MaxObjectBytes)})
	case errors.Is(err, objects.ErrAccessDenied):
		return meta, func(ctx context.Context) error { return j.accessDenied(ctx, err) }
	}
	return meta, func(ctx context.Context) error { return j.retryOrFail(ctx, err, "could not fetch object: ") }
}

// check ends the attempt when the object cannot be a face image: it never
// reaches the paid API.
func (j *job) check(image []byte, meta objects.Object) ending {
	if why := checkImage(image); why != "" {
		return j.recording(postgres.Result{Status: reverify.StatusInvalidImage, Message: why, ETag: meta.ETag, Size: meta.Size})
	}
	return nil
}

// call makes the paid call: the fleet admits it, the ledger records it
// before it is sent, and its answer is recorded. When the fleet or the
// ledger says no, the attempt ends without a call, and an admission it
// took is withdrawn. replaceLost is set once the stash held no answer of
// the lost call the ledger reported.
func (j *job) call(ctx context.Context, image []byte, meta objects.Object, replaceLost bool) error {
	h := j.h
	permit, err := h.fair.Admit(ctx, j.p.RunID, j.weight, j.taskID)
	if err != nil {
		return j.unlessPaid(ctx, returns(admissionWait(err)))
	}
	callID, end := j.begin(ctx, image, meta, replaceLost)
	if end != nil {
		h.gov.Withdraw(context.WithoutCancel(ctx), permit)
		return j.unlessPaid(ctx, end)
	}
	sent := h.now()
	callCtx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
	res, apiErr := h.api.Verify(callCtx, image)
	cancel()
	h.gov.Release(context.WithoutCancel(ctx), permit)
	a := j.interpret(ctx, callID, h.now().Sub(sent), meta, res, apiErr)
	j.adapt(ctx, sent, a.Call.Latency, apiErr)
	h.obs.APICalled(a.Call.Outcome, a.Call.Latency, a.Call.Score, a.Call.TransactionID != "")
	j.log.InfoContext(ctx, "api call", "outcome", a.Call.Outcome, "transaction_id", a.Call.TransactionID,
		"http_status", a.Call.HTTPStatus, "latency_ms", a.Call.Latency.Milliseconds())
	return j.recordAnswer(ctx, a)
}

// admissionWait is how a task waits for the fleet: however long that is,
// the image is fine.
func admissionWait(err error) error {
	var d *fleet.Denied
	if errors.As(err, &d) {
		return &WaitError{After: d.After, Reason: d.Reason, Err: err}
	}
	return &WaitError{After: 5 * time.Second, Reason: reverify.WaitFleetUnavailable, Err: err}
}

// begin records the call in the ledger before it is sent, or says how the
// attempt ends instead. An earlier call without an answer on record stops
// a new one: while it may still be in flight (twice the call timeout) the
// task waits; after that it is lost, and a new call replaces it unless
// its answer is in the stash, which unlessPaid looks at first.
func (j *job) begin(ctx context.Context, image []byte, meta objects.Object, replaceLost bool) (int64, ending) {
	begin := j.h.ledger.BeginCall
	if replaceLost {
		begin = j.h.ledger.ReplaceLostCall
	}
	callID, st, err := begin(ctx, j.p.RunID, j.obj, 2*j.h.cfg.CallTimeout)
	switch {
	case err != nil:
		return 0, func(context.Context) error { return j.ledgerError(err) }
	case st == postgres.CallRecorded:
		return callID, nil
	case st == postgres.AlreadyDone:
		return 0, func(ctx context.Context) error {
			j.log.InfoContext(ctx, "object already has a result; not calling the API again")
			return nil
		}
	case st == postgres.CallLost && !replaceLost:
		return 0, func(ctx context.Context) error { return j.call(ctx, image, meta, true) }
	case st == postgres.RunHeld:
		return 0, returns(&WaitError{After: 15 * time.Second, Reason: reverify.WaitRunHeld,
			Err: fmt.Errorf("run %s is paused or awaits confirmation", j.p.RunID)})
	case st == postgres.RunStopped:
		return 0, func(ctx context.Context) error {
			j.log.InfoContext(ctx, "run has ended; not calling the API")
			return nil
		}
	}
	return 0, returns(&WaitError{After: j.h.cfg.CallTimeout, Reason: reverify.WaitCallInFlight,
		Err: errors.New("an earlier call for this object has no answer yet")})
}

// interpret classifies the API's answer once: the call's record, the
// object's terminal result if there is one, and how the task goes on.
func (j *job) interpret(ctx context.Context, callID int64, latency time.Duration, meta objects.Object, res *liveness.Result, apiErr error) answer {
	call := postgres.Call{ID: callID, Latency: latency}
	final := &postgres.Result{ETag: meta.ETag, Size: meta.Size}
	var retry *answerRetry

	var le *liveness.Error
	switch {
	case apiErr == nil:
		score := res.Score
		call.Outcome, call.TransactionID, call.HTTPStatus, call.Score = reverify.OutcomeScored, res.TransactionID, res.HTTPStatus, &score
		final.Status, final.Score, final.TransactionID = reverify.StatusScored, &score, res.TransactionID
	case errors.As(apiErr, &le):
		call.TransactionID, call.HTTPStatus, call.ErrorCode, call.Message = le.TransactionID, le.HTTPStatus, le.ErrorCode, le.Message
		switch le.Kind {
		case liveness.Permanent:
			call.Outcome = reverify.OutcomeRejected
			final.Status, final.TransactionID, final.Message = reverify.StatusRejected, le.TransactionID, le.Message
			final.ErrorCode = le.ErrorCode
			if final.ErrorCode == 0 {
				final.ErrorCode = le.HTTPStatus
			}
		case liveness.RateLimited:
			call.Outcome, final = reverify.OutcomeRateLimited, nil
			retry = &answerRetry{WaitFor: max(le.RetryAfter, time.Second), Reason: reverify.WaitRateLimited, Error: apiErr.Error()}
		case liveness.Auth:
			call.Outcome, final = reverify.OutcomeAuth, nil
			j.report(ctx, fleet.AuthError, fmt.Sprintf("HTTP %d", le.HTTPStatus))
			retry = &answerRetry{WaitFor: time.Second, Reason: reverify.WaitAuthCircuit, Error: apiErr.Error()}
		default:
			call.Outcome = reverify.OutcomeTransient
			final, retry = j.transient(ctx, apiErr, final)
		}
	default:
		call.Outcome = reverify.OutcomeTransient
		final, retry = j.transient(ctx, apiErr, final)
	}
	if call.Message == "" && apiErr != nil {
		call.Message = apiErr.Error()
	}
	if final != nil {
		j.fill(final)
	}
	return answer{Call: call, Final: final, Retry: retry, err: apiErr}
}

// transient decides what a retryable API failure does: retry while the
// budget lasts, then record the object as failed.
func (j *job) transient(ctx context.Context, apiErr error, final *postgres.Result) (*postgres.Result, *answerRetry) {
	j.report(ctx, fleet.Transient, "")
	if !j.last {
		return nil, &answerRetry{Error: apiErr.Error()}
	}
	final.Status, final.Message = reverify.StatusFailed, "retries exhausted: "+apiErr.Error()
	return final, nil
}

// adapt tells the fleet's adaptive rate how the call went: a 429, a
// timeout (unless the task itself was cancelled), or an answer and its
// latency.
func (j *job) adapt(ctx context.Context, sent time.Time, latency time.Duration, apiErr error) {
	sig := fleet.SignalAnswered
	var ne net.Error
	switch {
	case liveness.KindOf(apiErr) == liveness.RateLimited:
		sig = fleet.SignalLimited
	case ctx.Err() != nil:
		return
	case errors.Is(apiErr, context.DeadlineExceeded) || (errors.As(apiErr, &ne) && ne.Timeout()):
		sig = fleet.SignalTimeout
	case apiErr != nil && liveness.KindOf(apiErr) != liveness.Permanent:
		return // a 5xx or a broken answer: the outage circuit's business; its latency says nothing
	}
	cut, err := j.h.gov.Adapt(context.WithoutCancel(ctx), sent, latency, sig)
	switch {
	case err != nil:
		j.log.WarnContext(ctx, "could not report the call to the fleet's adaptive rate", "err", err)
	case cut:
		j.log.InfoContext(ctx, "fleet's API rate cut", "signal", sig.String())
	}
}

// report feeds a failure to the fleet's circuits; losing a report only
// delays a circuit.
func (j *job) report(ctx context.Context, o fleet.Outcome, reason string) {
	opened, err := j.h.gov.Report(ctx, o, reason)
	switch {
	case err != nil:
		j.log.WarnContext(ctx, "could not report call outcome to the fleet", "err", err)
	case opened && o == fleet.AuthError:
		j.log.ErrorContext(ctx, "liveness API refused the API key; the fleet stops calling for the cool-down", "reason", reason)
	case opened:
		j.log.ErrorContext(ctx, "liveness API looks down; the fleet stops calling for the cool-down")
	}
}

// recordAnswer records a paid call's answer. If PostgreSQL cannot take
// it, the answer is stashed beside the task, so the retry records it
// instead of calling again.
func (j *job) recordAnswer(ctx context.Context, a answer) error {
	h := j.h
	write := func(ctx context.Context) error { return h.ledger.FinishCall(ctx, a.Call, j.p.RunID, j.obj, a.Final) }
	stash := func() {
		if j.inStash {
			return
		}
		b, err := json.Marshal(a)
		if err == nil {
			err = h.stash.Save(ctx, j.taskID, b)
		}
		if err != nil {
			j.log.ErrorContext(ctx, "ledger and stash both unavailable; the answer may be paid for again", "err", err)
			return
		}
		j.inStash = true
	}
	if err := j.persist(ctx, h.cfg.LedgerRetryFor, write, stash); err != nil {
		return j.ledgerError(err)
	}
	if j.inStash {
		if err := h.stash.Drop(ctx, j.taskID); err != nil {
			j.log.WarnContext(ctx, "could not drop stashed answer; a retry would record it again harmlessly", "err", err)
		}
	}
	if a.Final != nil {
		h.obs.ResultRecorded(a.Final.Status)
		if a.Final.Status == reverify.StatusFailed {
			return fmt.Errorf("%s: %w", a.Final.Message, asynq.SkipRetry)
		}
		return nil
	}
	if a.Retry == nil {
		return nil
	}
	cause := a.err
	if cause == nil {
		cause = errors.New(a.Retry.Error)
	}
	if a.Retry.WaitFor > 0 {
		return &WaitError{After: a.Retry.WaitFor, Reason: a.Retry.Reason, Err: cause}
	}
	return cause
}

// unlessPaid ends the attempt by end, unless an earlier attempt of this
// task paid for a call whose answer it could not record: that answer
// waits in the stash and is recorded instead, so nothing is paid for
// twice, whatever changed since (the image deleted, the run paused).
// Only attempts that cannot make their call as planned look: the stash is
// empty unless PostgreSQL failed mid-task, and the usual path costs no
// Redis round trip for it.
func (j *job) unlessPaid(ctx context.Context, end ending) error {
	a, err := j.stashed(ctx)
	switch {
	case err != nil:
		return &WaitError{After: 5 * time.Second, Reason: reverify.WaitStash, Err: err}
	case a != nil:
		j.log.InfoContext(ctx, "recording the answer of an earlier attempt instead of calling again")
		j.inStash = true
		return j.recordAnswer(ctx, *a)
	}
	return end(ctx)
}

func (j *job) stashed(ctx context.Context) (*answer, error) {
	b, err := j.h.stash.Load(ctx, j.taskID)
	if err != nil || b == nil {
		return nil, err
	}
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		j.log.WarnContext(ctx, "ignoring unreadable stashed answer", "err", err)
		return nil, nil
	}
	return &a, nil
}

// accessDenied tells a refused object from a refused bucket: the first is
// this object's failure; the second is a configuration problem, reported
// once per bucket, and the tasks wait for it to be fixed.
func (j *job) accessDenied(ctx context.Context, err error) error {
	if berr := j.h.objects.CheckBucket(ctx, j.p.Bucket); errors.Is(berr, objects.ErrAccessDenied) {
		if _, seen := j.h.denied.LoadOrStore(j.p.Bucket, struct{}{}); !seen {
			j.log.ErrorContext(ctx, "access to the bucket is denied: check the worker's S3 credentials and policy", "bucket", j.p.Bucket)
		}
		return &WaitError{After: j.h.cfg.DeniedWait, Reason: reverify.WaitBucketDenied, Err: err}
	}
	j.h.denied.Delete(j.p.Bucket)
	return j.recordResult(ctx, postgres.Result{Status: reverify.StatusFailed, Message: "access to the object is denied"})
}

// retryOrFail retries a failure before the API call, or records it as the
// object's terminal failure when no retries are left.
func (j *job) retryOrFail(ctx context.Context, err error, prefix string) error {
	if !j.last {
		j.log.WarnContext(ctx, "will retry", "err", err)
		return err
	}
	if rerr := j.recordResult(ctx, postgres.Result{Status: reverify.StatusFailed, Message: prefix + err.Error()}); rerr != nil {
		return rerr
	}
	return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
}

// recording ends the attempt with a terminal result that needs no call.
func (j *job) recording(r postgres.Result) ending {
	return func(ctx context.Context) error { return j.recordResult(ctx, r) }
}

// recordResult writes a terminal result that needed no API call.
func (j *job) recordResult(ctx context.Context, r postgres.Result) error {
	j.fill(&r)
	if err := j.persist(ctx, 0, func(ctx context.Context) error { return j.h.ledger.RecordResult(ctx, r) }, nil); err != nil {
		return j.ledgerError(err)
	}
	j.log.InfoContext(ctx, "result", "status", r.Status, "duration_ms", r.Duration.Milliseconds())
	j.h.obs.ResultRecorded(r.Status)
	return nil
}

func (j *job) fill(r *postgres.Result) {
	r.RunID, r.Object, r.Duration = j.p.RunID, j.obj, j.h.now().Sub(j.start)
}

// persist retries a ledger write while PostgreSQL is unreachable, for at
// most within (0 = until ctx ends). onUnavailable, when set, runs once the
// first write fails that way.
func (j *job) persist(ctx context.Context, within time.Duration, write func(context.Context) error, onUnavailable func()) error {
	err := write(ctx)
	if err == nil || !errors.Is(err, postgres.ErrUnavailable) {
		return err
	}
	if onUnavailable != nil {
		onUnavailable()
	}
	if within > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, within)
		defer cancel()
	}
	for delay := 100 * time.Millisecond; ; delay = min(delay*2, 5*time.Second) {
		j.log.WarnContext(ctx, "ledger unavailable; retrying the write", "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		if err = write(ctx); err == nil || !errors.Is(err, postgres.ErrUnavailable) {
			return err
		}
	}
}

// ledgerError classifies a failed ledger write: an unreachable database is
// waited out; a run that no longer exists is dropped.
func (j *job) ledgerError(err error) error {
	switch {
	case errors.Is(err, postgres.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &WaitError{After: 5 * time.Second, Reason: reverify.WaitLedger, Err: err}
	case errors.Is(err, postgres.ErrUnknownRun):
		j.log.Error("dropping task of unknown run", "err", err)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}

// observeWait reports a retry that does not count as a failure.
func (j *job) observeWait(err error) {
	var w *WaitError
	if errors.As(err, &w) {
		j.h.obs.Waited(w.Reason, w.After)
	}
}
