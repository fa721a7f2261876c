package postgres

import (
	"context"
	"errors"
	"fmt"
	"reverify"
	"time"

	"github.com/jackc/pgx/v5"
)

// Result is the terminal outcome of one object.
type Result struct {
	RunID         string
	Object        reverify.ObjectRef
	Status        reverify.Status
	Score         *float64
	TransactionID string
	ErrorCode     int
	Message       string
	ETag          string
	Size          int64
	Duration      time.Duration
}

// Call is the outcome of one API call begun with BeginCall.
type Call struct {
	ID            int64
	Outcome       reverify.CallOutcome
	TransactionID string
	HTTPStatus    int
	ErrorCode     int
	Score         *float64
	Message       string
	Latency       time.Duration
}

// CallStart says whether a call may be made.
type CallStart int

// BeginCall results.
const (
	CallRecorded CallStart = iota + 1 // the call is on record: make it
	AlreadyDone                       // the object has a terminal result: do not call
	CallInFlight                      // an earlier call for the object may still be in flight: wait
	CallLost                          // an earlier call has had no answer for too long: look for it elsewhere, or replace it
	RunHeld                           // the run is paused or awaits confirmation: wait
	RunStopped                        // the run has ended (cancelled, failed): do not call
)

// BeginCall records, before it is sent, that an API call is being made for
// an object, and counts the attempt. It records none for an object with a
// terminal result (AlreadyDone), nor while an earlier call has no answer on
// record (a duplicate task, a worker that died mid-call, or an answer its
// worker could not record yet): CallInFlight while the newest such call is
// younger than lostAfter, CallLost once it is older. A caller that may keep
// that answer elsewhere looks there before it replaces the call with
// ReplaceLostCall. Nor does it record one for a run that is not being
// sent (RunHeld, RunStopped): a call begun after a run was cancelled or
// paused never reaches the API.
func (s *Store) BeginCall(ctx context.Context, runID string, obj reverify.ObjectRef, lostAfter time.Duration) (callID int64, st CallStart, err error) {
	return s.beginCall(ctx, runID, obj, lostAfter, false)
}

// ReplaceLostCall is BeginCall for an object whose unanswered calls older
// than lostAfter are taken as lost: they no longer stop a new call. A
// younger one still does (CallInFlight).
func (s *Store) ReplaceLostCall(ctx context.Context, runID string, obj reverify.ObjectRef, lostAfter time.Duration) (callID int64, st CallStart, err error) {
	return s.beginCall(ctx, runID, obj, lostAfter, true)
}

func (s *Store) beginCall(ctx context.Context, runID string, obj reverify.ObjectRef, lostAfter time.Duration, replaceLost bool) (callID int64, st CallStart, err error) {
	recorded := false
	err = s.exec(ctx, write{
		queue: func(b *pgx.Batch) {
			b.Queue(`
		WITH busy AS (
			SELECT 1 FROM api_calls
			WHERE run_id = $1::uuid AND bucket = $2 AND object_key = $3
			  AND outcome = 'in_flight' AND (NOT $6 OR called_at > now() - make_interval(secs => $5))
			LIMIT 1
		), v AS (
			INSERT INTO verifications (run_id, bucket, object_key, object_version, attempts)
			SELECT $1::uuid, $2, $3, $4, 1 WHERE NOT EXISTS (SELECT 1 FROM busy)
			  AND EXISTS (SELECT 1 FROM runs WHERE id = $1::uuid AND status IN ('enqueuing', 'running'))
			ON CONFLICT (run_id, bucket, object_key) DO UPDATE SET attempts = verifications.attempts + 1
			WHERE verifications.status = 'pending'
			RETURNING attempts
		)
		INSERT INTO api_calls (run_id, bucket, object_key, attempt)
		SELECT $1::uuid, $2, $3, attempts FROM v
		RETURNING id`, runID, obj.Bucket, obj.Key, obj.Version, lostAfter.Seconds(), replaceLost)
		},
		read: func(br pgx.BatchResults) error {
			err := br.QueryRow().Scan(&callID)
			recorded = err == nil
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return err
		},
	})
	if err != nil {
		return 0, 0, classify(fmt.Errorf("record api call for %s: %w", obj, err))
	}
	if recorded {
		return callID, CallRecorded, nil
	}
	var status reverify.Status
	var run reverify.RunStatus
	var lost bool
	err = s.pool.QueryRow(ctx, `
		SELECT v.status, r.status, coalesce((SELECT max(c.called_at) <= now() - make_interval(secs => $4) FROM api_calls c
			WHERE c.run_id = v.run_id AND c.bucket = v.bucket AND c.object_key = v.object_key AND c.outcome = 'in_flight'), false)
		FROM verifications v JOIN runs r ON r.id = v.run_id
		WHERE v.run_id = $1::uuid AND v.bucket = $2 AND v.object_key = $3`,
		runID, obj.Bucket, obj.Key, lostAfter.Seconds()).Scan(&status, &run, &lost)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if err := checkRunID(runID); err != nil {
			return 0, 0, fmt.Errorf("%w: %w", ErrUnknownRun, err)
		}
		var st reverify.RunStatus
		if serr := s.pool.QueryRow(ctx, `SELECT status FROM runs WHERE id = $1::uuid`, runID).Scan(&st); errors.Is(serr, pgx.ErrNoRows) {
			return 0, 0, fmt.Errorf("run %s: %w", runID, ErrUnknownRun)
		}
		return 0, CallInFlight, nil // a busy call without a row cannot happen; wait and look again
	case err != nil:
		return 0, 0, classify(fmt.Errorf("record api call for %s: %w", obj, err))
	case status != reverify.StatusPending:
		return 0, AlreadyDone, nil
	case run.Holding():
		return 0, RunHeld, nil
	case !run.Sending():
		return 0, RunStopped, nil
	case lost && !replaceLost:
		return 0, CallLost, nil
	}
	return 0, CallInFlight, nil
}

// FinishCall records a call's outcome and, when final is not nil, the
// object's terminal result, atomically.
func (s *Store) FinishCall(ctx context.Context, c Call, runID string, obj reverify.ObjectRef, final *Result) error {
	err := s.exec(ctx, write{queue: func(b *pgx.Batch) { queueFinish(b, c, runID, obj, final) }, read: execs(2)})
	if err != nil {
		return classify(fmt.Errorf("record api call outcome for %s: %w", obj, err))
	}
	return nil
}

func queueFinish(b *pgx.Batch, c Call, runID string, obj reverify.ObjectRef, final *Result) {
	b.Queue(`
		UPDATE api_calls SET outcome = $2, transaction_id = nullif($3, ''), http_status = nullif($4, 0),
			error_code = nullif($5, 0), liveness_score = $6, message = nullif($7, ''),
			latency_ms = $8, answered_at = now()
		WHERE run_id = $9::uuid AND id = $1`,
		c.ID, c.Outcome, c.TransactionID, c.HTTPStatus, c.ErrorCode, c.Score, truncate(c.Message), c.Latency.Milliseconds(), runID)
	if final != nil {
		queueResult(b, *final)
	} else {
		b.Queue(`UPDATE verifications SET message = nullif($4, ''), error_code = nullif($5, 0)
			WHERE run_id = $1::uuid AND bucket = $2 AND object_key = $3 AND status = 'pending'`,
			runID, obj.Bucket, obj.Key, truncate(c.Message), c.ErrorCode)
	}
}

// execs reads the results of n statements that return no rows.
func execs(n int) func(pgx.BatchResults) error {
	return func(br pgx.BatchResults) error {
		for range n {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return nil
	}
}

// RecordResult writes an object's terminal result without an API call
// (not_found, invalid_image, failed). It never replaces a better result.
func (s *Store) RecordResult(ctx context.Context, r Result) error {
	if err := s.exec(ctx, write{queue: func(b *pgx.Batch) { queueResult(b, r) }, read: execs(1)}); err != nil {
		return classify(fmt.Errorf("record result for %s: %w", r.Object, err))
	}
	return nil
}

// queueResult upserts a terminal result; a row that already holds a result
// of equal or higher rank is left alone, so retries and duplicate tasks are
// harmless.
func queueResult(b *pgx.Batch, r Result) {
	b.Queue(`
		INSERT INTO verifications AS v (run_id, bucket, object_key, object_version, status, liveness_score,
			transaction_id, error_code, message, object_etag, object_size, duration_ms, completed_at)
		VALUES ($1::uuid, $2, $3, $4, $5, $6, nullif($7, ''), nullif($8, 0), nullif($9, ''), nullif($10, ''),
			$11, $12, now())
		ON CONFLICT (run_id, bucket, object_key) DO UPDATE SET
			status = excluded.status, liveness_score = excluded.liveness_score,
			transaction_id = excluded.transaction_id, error_code = excluded.error_code,
			message = excluded.message, object_etag = excluded.object_etag,
			object_size = excluded.object_size, duration_ms = excluded.duration_ms,
			completed_at = excluded.completed_at
		WHERE verification_status_rank(v.status) < verification_status_rank(excluded.status)
		  AND (v.status = 'pending' OR excluded.status <> 'failed')`,
		r.RunID, r.Object.Bucket, r.Object.Key, r.Object.Version, r.Status, r.Score,
		r.TransactionID, r.ErrorCode, truncate(r.Message), r.ETag, nullIfZero(r.Size), r.Duration.Milliseconds())
}

// ResultOf returns the current row of one object (for tests and the CLI).
func (s *Store) ResultOf(ctx context.Context, runID string, obj reverify.ObjectRef) (Result, error) {
	r := Result{RunID: runID, Object: obj}
	var tx, msg, etag *string
	var code, dur *int32
	var size *int64
	err := s.pool.QueryRow(ctx, `
		SELECT status, liveness_score::float8, transaction_id, error_code, message, object_etag, object_size, duration_ms
		FROM verifications WHERE run_id = $1::uuid AND bucket = $2 AND object_key = $3`,
		runID, obj.Bucket, obj.Key).Scan(&r.Status, &r.Score, &tx, &code, &msg, &etag, &size, &dur)
	if err != nil {
		return Result{}, fmt.Errorf("load result for %s: %w", obj, err)
	}
	r.TransactionID, r.Message, r.ETag = deref(tx), deref(msg), deref(etag)
	if code != nil {
		r.ErrorCode = int(*code)
	}
	if size != nil {
		r.Size = *size
	}
	if dur != nil {
		r.Duration = time.Duration(*dur) * time.Millisecond
	}
	return r, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func nullIfZero(n int64) *int64 {
	if n == 0 {
		return nil
	}
	return &n
}

// truncate keeps messages short enough for a table cell.
func truncate(s string) string {
	const max = 1000
	if len(s) <= max {
		return s
	}
	return s[:max]
}
