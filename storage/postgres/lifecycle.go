package postgres

import (
	"context"
	"errors"
	"fmt"
	"reverify"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// withActor runs fn in a transaction whose status changes are attributed
// to a (the runs trigger reads these settings).
func (s *Store) withActor(ctx context.Context, a reverify.Actor, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('reverify.actor', $1, true), set_config('reverify.reason', $2, true)`,
			a.Who, a.Why); err != nil {
			return err
		}
		return fn(tx)
	})
}

// transition moves run id (a UUID) to status to when it is in one of from.
func transition(ctx context.Context, tx pgx.Tx, id string, to reverify.RunStatus, from []reverify.RunStatus, extra string) (reverify.Run, error) {
	r, err := queryRun(ctx, tx, `UPDATE runs SET status = $2`+extra+`
		WHERE id = $1::uuid AND status = ANY($3) RETURNING `+runColumns, id, to, from)
	if errors.Is(err, pgx.ErrNoRows) {
		var status string
		serr := tx.QueryRow(ctx, `SELECT status FROM runs WHERE id = $1::uuid`, id).Scan(&status)
		if errors.Is(serr, pgx.ErrNoRows) {
			return reverify.Run{}, fmt.Errorf("run %s: %w", id, ErrRunNotFound)
		}
		if serr != nil {
			return reverify.Run{}, serr
		}
		return reverify.Run{}, fmt.Errorf("%w: run %s is %s, not %s", ErrInvalidTransition, id, status, joinStatuses(from))
	}
	return r, err
}

// RunState returns a run's status; "" when the run does not exist.
func (s *Store) RunState(ctx context.Context, id string) (reverify.RunStatus, error) {
	if checkRunID(id) != nil {
		return "", nil
	}
	var status reverify.RunStatus
	err := s.pool.QueryRow(ctx, `SELECT status FROM runs WHERE id = $1::uuid`, id).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", classify(fmt.Errorf("load status of run %s: %w", id, err))
	}
	return status, nil
}

// SyncCancelLimit is how many pending objects an ended run converts to
// cancelled in the same transaction; a run with more returns at once and
// CancelPending converts the rest in batches (the feeder does). Either way
// no task of the run starts a paid call after the run ended: BeginCall
// needs a run that is being sent.
const SyncCancelLimit = 10000

// CancelRun cancels a run that has not ended: its pending objects become
// cancelled and are never sent. It returns the run and how many objects it
// had pending.
func (s *Store) CancelRun(ctx context.Context, id string, a reverify.Actor) (reverify.Run, int64, error) {
	return s.end(ctx, id, reverify.RunCancelled, a)
}

// FailRun fails a run that cannot go on (its source bucket is gone, say);
// like CancelRun, its pending objects are never sent. a.Why says why.
func (s *Store) FailRun(ctx context.Context, id string, a reverify.Actor) (reverify.Run, int64, error) {
	return s.end(ctx, id, reverify.RunFailed, a)
}

// end moves a run that has not ended to status to (cancelled or failed).
// Its pending objects become cancelled at once when they are few, later
// (CancelPending) otherwise.
func (s *Store) end(ctx context.Context, id string, to reverify.RunStatus, a reverify.Actor) (reverify.Run, int64, error) {
	if err := checkRunID(id); err != nil {
		return reverify.Run{}, 0, err
	}
	var r reverify.Run
	var pending int64
	err := s.withActor(ctx, a, func(tx pgx.Tx) error {
		var err error
		r, err = transition(ctx, tx, id, to,
			[]reverify.RunStatus{reverify.RunAwaitingConfirmation, reverify.RunEnqueuing, reverify.RunRunning, reverify.RunPaused}, `, finished_at = now()`)
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(objects), 0)::bigint FROM run_counts
			WHERE run_id = $1::uuid AND status = 'pending'`, r.ID).Scan(&pending); err != nil {
			return err
		}
		for left := pending; left > 0 && pending <= SyncCancelLimit; {
			n, err := cancelPending(ctx, tx, r.ID, left)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
			left -= n
		}
		action := reverify.AuditRunCancel
		if to == reverify.RunFailed {
			action = reverify.AuditRunFail
		}
		return audit(ctx, tx, a, action, r.ID, nil, map[string]any{"pending": pending})
	})
	if err != nil {
		return reverify.Run{}, 0, classify(fmt.Errorf("end run %s as %s: %w", id, to, err))
	}
	return r, pending, nil
}

// cancelPending converts up to limit pending objects of an ended run to
// cancelled, in dispatch order, and returns how many. It walks up from the
// run's high-water mark and raises it as it goes, so a batch never reads
// the index entries of the rows earlier batches converted (PostgreSQL keeps
// them until vacuum): every batch costs the same, however far the walk has
// gone. Rows at or below the mark (tasks in the window when the run ended)
// are converted once nothing above it is left.
func cancelPending(ctx context.Context, tx pgx.Tx, runID string, limit int64) (int64, error) {
	var mark int64
	var msg string
	err := tx.QueryRow(ctx, `SELECT r.dispatched_seq, 'run ' || r.status || ': ' || coalesce((SELECT h.reason
			FROM run_status_history h WHERE h.run_id = r.id ORDER BY h.changed_at DESC, h.id DESC LIMIT 1), 'ended')
		FROM runs r WHERE r.id = $1::uuid AND r.status IN ('cancelled', 'failed') FOR UPDATE`, runID).Scan(&mark, &msg)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil // retried meanwhile: its objects are being sent again
	}
	if err != nil {
		return 0, err
	}
	var hi *int64
	if err := tx.QueryRow(ctx, `SELECT max(seq) FROM (SELECT seq FROM verifications
		WHERE run_id = $1::uuid AND status = 'pending' AND seq > $2 ORDER BY seq LIMIT $3) b`, runID, mark, limit).Scan(&hi); err != nil {
		return 0, err
	}
	if hi == nil {
		tag, err := tx.Exec(ctx, `UPDATE verifications SET status = 'cancelled', completed_at = now(), message = $3
			WHERE run_id = $1::uuid AND status = 'pending' AND seq <= $2`, runID, mark, msg)
		return tag.RowsAffected(), err
	}
	tag, err := tx.Exec(ctx, `UPDATE verifications SET status = 'cancelled', completed_at = now(), message = $4
		WHERE run_id = $1::uuid AND status = 'pending' AND seq > $2 AND seq <= $3`, runID, mark, *hi, msg)
	if err != nil {
		return 0, err
	}
	_, err = tx.Exec(ctx, `UPDATE runs SET dispatched_seq = $2 WHERE id = $1::uuid`, runID, *hi)
	return tag.RowsAffected(), err
}

// CancelPending converts up to limit pending objects of every ended run
// that still has some to cancelled (a large run's cancel leaves them) and
// returns how many it converted.
func (s *Store) CancelPending(ctx context.Context, limit int64) (int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT r.id::text FROM runs r
		WHERE r.status IN ('cancelled', 'failed')
		  AND EXISTS (SELECT 1 FROM run_counts c WHERE c.run_id = r.id AND c.status = 'pending' AND c.objects > 0)`)
	if err != nil {
		return 0, classify(fmt.Errorf("find ended runs with pending objects: %w", err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, classify(fmt.Errorf("find ended runs with pending objects: %w", err))
	}
	var total int64
	for _, id := range ids {
		var n int64
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			n, err = cancelPending(ctx, tx, id, limit)
			return err
		})
		if err != nil {
			return total, classify(fmt.Errorf("cancel pending objects of run %s: %w", id, err))
		}
		total += n
	}
	return total, nil
}

// PauseRun stops a running (or enqueuing) run's objects from being sent
// until ResumeRun; its tasks wait in the queue.
func (s *Store) PauseRun(ctx context.Context, id string, a reverify.Actor) (reverify.Run, error) {
	return s.simpleTransition(ctx, id, a, reverify.AuditRunPause, reverify.RunPaused, []reverify.RunStatus{reverify.RunEnqueuing, reverify.RunRunning})
}

// ResumeRun continues a paused run: running again, or enqueuing when it was
// paused before its objects were all queued.
func (s *Store) ResumeRun(ctx context.Context, id string, a reverify.Actor) (reverify.Run, error) {
	if err := checkRunID(id); err != nil {
		return reverify.Run{}, err
	}
	var r reverify.Run
	err := s.withActor(ctx, a, func(tx pgx.Tx) error {
		var started bool
		err := tx.QueryRow(ctx, `SELECT started_at IS NOT NULL FROM runs WHERE id = $1::uuid`, id).Scan(&started)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("run %s: %w", id, ErrRunNotFound)
		}
		if err != nil {
			return err
		}
		to := reverify.RunRunning
		if !started {
			to = reverify.RunEnqueuing
		}
		if r, err = transition(ctx, tx, id, to, []reverify.RunStatus{reverify.RunPaused}, ""); err != nil {
			return err
		}
		return audit(ctx, tx, a, reverify.AuditRunResume, r.ID, nil, nil)
	})
	if err != nil {
		return reverify.Run{}, fmt.Errorf("resume run %s: %w", id, err)
	}
	return r, nil
}

// HoldForConfirmation moves a run whose objects are recorded but not yet
// queued to awaiting_confirmation.
func (s *Store) HoldForConfirmation(ctx context.Context, id string, a reverify.Actor) (reverify.Run, error) {
	return s.simpleTransition(ctx, id, a, "", reverify.RunAwaitingConfirmation, []reverify.RunStatus{reverify.RunEnqueuing})
}

// ConfirmRun releases a run awaiting confirmation; the caller then queues
// its pending objects and starts it.
func (s *Store) ConfirmRun(ctx context.Context, id string, a reverify.Actor) (reverify.Run, error) {
	return s.simpleTransition(ctx, id, a, reverify.AuditRunConfirm, reverify.RunEnqueuing, []reverify.RunStatus{reverify.RunAwaitingConfirmation})
}

// simpleTransition moves a run from one of from to to, and records action
// in the audit log ("" = a step of the system's, not audited).
func (s *Store) simpleTransition(ctx context.Context, id string, a reverify.Actor, action reverify.AuditAction, to reverify.RunStatus, from []reverify.RunStatus) (reverify.Run, error) {
	if err := checkRunID(id); err != nil {
		return reverify.Run{}, err
	}
	var r reverify.Run
	err := s.withActor(ctx, a, func(tx pgx.Tx) error {
		var err error
		if r, err = transition(ctx, tx, id, to, from, ""); err != nil || action == "" {
			return err
		}
		return audit(ctx, tx, a, action, r.ID, nil, nil)
	})
	if err != nil {
		return reverify.Run{}, fmt.Errorf("%s run %s: %w", to, id, err)
	}
	return r, nil
}

// RetryBatch is how many objects one transaction of RetryObjects resets.
const RetryBatch = 50000

// RetryObjects puts a run's objects with one of statuses back to pending,
// at the back of the run's dispatch order, and the run back to running (a
// paused run stays paused), so the feeder dispatches them again. Objects
// are reset RetryBatch at a time, each batch its own transaction; the
// first goes with the run's change of status, so a retried run never looks
// finished. It returns how many objects were reset.
func (s *Store) RetryObjects(ctx context.Context, id string, statuses []reverify.Status, a reverify.Actor) (reverify.Run, int64, error) {
	for _, st := range statuses {
		if !st.Retryable() {
			return reverify.Run{}, 0, fmt.Errorf("retry run %s: status %q cannot be retried", id, st)
		}
	}
	if err := checkRunID(id); err != nil {
		return reverify.Run{}, 0, err
	}
	var r reverify.Run
	var n int64
	err := s.withActor(ctx, a, func(tx pgx.Tx) error {
		var err error
		r, err = queryRun(ctx, tx, `SELECT `+runColumns+` FROM runs WHERE id = $1::uuid FOR UPDATE`, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("run %s: %w", id, ErrRunNotFound)
		}
		if err != nil {
			return err
		}
		if r.Status == reverify.RunAwaitingConfirmation || r.Status == reverify.RunEnqueuing {
			return fmt.Errorf("%w: run %s is %s", ErrInvalidTransition, id, r.Status)
		}
		if r.Status.Ended() {
			// An ended run's objects not yet cancelled are sent again too.
			if _, err := tx.Exec(ctx, `
				WITH p AS (SELECT bucket, object_key, row_number() OVER (ORDER BY seq) AS rn FROM verifications
				           WHERE run_id = $1::uuid AND status = 'pending'),
				     b AS (UPDATE runs SET next_seq = next_seq + (SELECT count(*) FROM p) WHERE id = $1::uuid
				           RETURNING next_seq - (SELECT count(*) FROM p) AS base)
				UPDATE verifications v SET seq = b.base + p.rn - 1 FROM p, b
				WHERE v.run_id = $1::uuid AND v.bucket = p.bucket AND v.object_key = p.object_key`, r.ID); err != nil {
				return err
			}
		}
		if n, err = retryBatch(ctx, tx, r.ID, statuses); err != nil {
			return err
		}
		if err := audit(ctx, tx, a, reverify.AuditRunRetry, r.ID, nil, map[string]any{"statuses": statuses}); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if r.Status == reverify.RunPaused || r.Status == reverify.RunRunning {
			return nil
		}
		r, err = transition(ctx, tx, id, reverify.RunRunning, []reverify.RunStatus{r.Status}, `, finished_at = NULL`)
		return err
	})
	if err != nil {
		return reverify.Run{}, 0, classify(fmt.Errorf("retry run %s: %w", id, err))
	}
	for batch := n; batch == RetryBatch; {
		if batch, err = retryBatch(ctx, s.pool, r.ID, statuses); err != nil {
			return r, n, classify(fmt.Errorf("retry run %s: %d objects reset, then: %w", id, n, err))
		}
		n += batch
	}
	return r, n, nil
}

// retryBatch resets up to RetryBatch objects of a run in one of statuses.
func retryBatch(ctx context.Context, q execer, runID string, statuses []reverify.Status) (int64, error) {
	// The batch's seqs are a block of the run's, taken in the statement
	// that makes its rows pending: they go to the back, and become
	// visible with the block (see reserveSeqs).
	tag, err := q.Exec(ctx, `
		WITH p AS (SELECT bucket, object_key, row_number() OVER () AS rn FROM verifications
		           WHERE run_id = $1::uuid AND status = ANY($2) LIMIT $3),
		     b AS (UPDATE runs SET next_seq = next_seq + $3 WHERE id = $1::uuid RETURNING next_seq - $3 AS base)
		UPDATE verifications v SET status = 'pending', seq = b.base + p.rn - 1, liveness_score = NULL,
			transaction_id = NULL, error_code = NULL, message = 'retried: was ' || v.status, completed_at = NULL
		FROM p, b
		WHERE v.run_id = $1::uuid AND v.bucket = p.bucket AND v.object_key = p.object_key`, runID, statuses, RetryBatch)
	return tag.RowsAffected(), err
}

// execer runs a statement; a pool and a transaction both do.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// FailRunsOverThreshold fails every active run whose failures passed its
// threshold; their pending objects become cancelled. It returns the IDs.
// Every worker runs it every few seconds: it reads the runs' counters, a
// few rows per run however large.
func (s *Store) FailRunsOverThreshold(ctx context.Context) ([]string, error) {
	type cand struct {
		id           string
		failed, done int64
		th           reverify.Threshold
	}
	rows, err := s.pool.Query(ctx, `
		SELECT r.id::text, coalesce(f.failed, 0)::bigint, coalesce(f.done, 0)::bigint,
		       r.fail_percent::float8, r.fail_min_done, coalesce(r.fail_count, 0)
		FROM runs r,
		LATERAL (SELECT sum(objects) FILTER (WHERE status IN ('failed', 'not_found')) AS failed,
		                sum(objects) FILTER (WHERE status <> 'pending') AS done
		         FROM run_counts c WHERE c.run_id = r.id) f
		WHERE r.status IN ('running', 'enqueuing', 'paused')`)
	if err != nil {
		return nil, classify(fmt.Errorf("check failure thresholds: %w", err))
	}
	cands, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (cand, error) {
		var c cand
		err := row.Scan(&c.id, &c.failed, &c.done, &c.th.Percent, &c.th.MinDone, &c.th.Count)
		return c, err
	})
	if err != nil {
		return nil, classify(fmt.Errorf("check failure thresholds: %w", err))
	}
	var failed []string
	for _, c := range cands {
		why := c.th.Crossed(c.failed, c.done)
		if why == "" {
			continue
		}
		_, _, err = s.end(ctx, c.id, reverify.RunFailed, reverify.Actor{Who: "reverify-worker", Why: why})
		if errors.Is(err, ErrInvalidTransition) {
			continue // changed meanwhile
		}
		if err != nil {
			return failed, err
		}
		failed = append(failed, c.id)
	}
	return failed, nil
}

// StatusChange is one row of a run's status history.
type StatusChange struct {
	From, To  string // From is "" for the creation
	Actor     string
	Reason    string
	ChangedAt time.Time
}

// History returns a run's status changes, oldest first.
func (s *Store) History(ctx context.Context, id string) ([]StatusChange, error) {
	if err := checkRunID(id); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT coalesce(from_status, '') AS "from", to_status AS "to", actor,
			coalesce(reason, '') AS reason, changed_at
		FROM run_status_history WHERE run_id = $1::uuid ORDER BY changed_at, id`, id)
	if err != nil {
		return nil, fmt.Errorf("history of run %s: %w", id, err)
	}
	h, err := pgx.CollectRows(rows, pgx.RowToStructByName[StatusChange])
	if err != nil {
		return nil, fmt.Errorf("history of run %s: %w", id, err)
	}
	return h, nil
}

// SavePlanToken stores the continuation token of the next page to list.
func (s *Store) SavePlanToken(ctx context.Context, id, token string) error {
	if err := checkRunID(id); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `UPDATE runs SET plan_token = nullif($2, '') WHERE id = $1::uuid`, id, token); err != nil {
		return classify(fmt.Errorf("save plan token of run %s: %w", id, err))
	}
	return nil
}

// FinishPlan records that a run's listing is done.
func (s *Store) FinishPlan(ctx context.Context, id string) error {
	if err := checkRunID(id); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `UPDATE runs SET plan_token = NULL, planned_at = now() WHERE id = $1::uuid`, id); err != nil {
		return classify(fmt.Errorf("finish plan of run %s: %w", id, err))
	}
	return nil
}

// RecentlyScored returns which of objs have a scored result completed after
// since, in any run.
func (s *Store) RecentlyScored(ctx context.Context, objs []reverify.ObjectRef, since time.Time) (map[reverify.ObjectRef]bool, error) {
	buckets := make([]string, len(objs))
	keys := make([]string, len(objs))
	for i, o := range objs {
		buckets[i], keys[i] = o.Bucket, o.Key
	}
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT t.b, t.k FROM unnest($1::text[], $2::text[]) AS t(b, k)
		WHERE EXISTS (SELECT 1 FROM verifications v WHERE v.bucket = t.b AND v.object_key = t.k
		              AND v.status = 'scored' AND v.completed_at > $3)`, buckets, keys, since)
	if err != nil {
		return nil, classify(fmt.Errorf("look up recent results: %w", err))
	}
	out := map[reverify.ObjectRef]bool{}
	var b, k string
	_, err = pgx.ForEachRow(rows, []any{&b, &k}, func() error {
		out[reverify.ObjectRef{Bucket: b, Key: k}] = true
		return nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("look up recent results: %w", err))
	}
	return out, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func joinStatuses(ss []reverify.RunStatus) string {
	parts := make([]string, len(ss))
	for i, st := range ss {
		parts[i] = string(st)
	}
	return strings.Join(parts, " or ")
}
