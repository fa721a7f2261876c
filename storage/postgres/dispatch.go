package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"reverify"
)

// Pending is an object waiting for its result, with its place in the
// run's dispatch order.
type Pending struct {
	Object reverify.ObjectRef
	Seq    int64
}

// DispatchRun is a run whose objects are being sent, with its high-water
// mark: every pending object up to DispatchedSeq has been handed to the
// task queue.
type DispatchRun struct {
	reverify.Run
	DispatchedSeq int64
}

// DispatchRuns returns the runs whose objects are being sent (enqueuing or
// running), most urgent first: by priority, then oldest first.
func (s *Store) DispatchRuns(ctx context.Context) ([]DispatchRun, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+runColumns+`, dispatched_seq FROM runs WHERE status IN ('enqueuing', 'running')
		ORDER BY CASE priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END, created_at`)
	if err != nil {
		return nil, classify(fmt.Errorf("list runs to dispatch: %w", err))
	}
	type dispatchRow struct {
		runRow
		DispatchedSeq int64 `db:"dispatched_seq"`
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[dispatchRow])
	if err != nil {
		return nil, classify(fmt.Errorf("list runs to dispatch: %w", err))
	}
	out := make([]DispatchRun, len(rs))
	for i, r := range rs {
		out[i] = DispatchRun{Run: r.run(), DispatchedSeq: r.DispatchedSeq}
	}
	return out, nil
}

// InWindow counts a run's objects already handed to the task queue that
// have no result yet: pending, at or below the run's high-water mark.
func (s *Store) InWindow(ctx context.Context, runID string, upTo int64) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM verifications
		WHERE run_id = $1::uuid AND status = 'pending' AND seq <= $2`, runID, upTo).Scan(&n)
	if err != nil {
		return 0, classify(fmt.Errorf("count dispatched objects of run %s: %w", runID, err))
	}
	return n, nil
}

// AbandonedBlock is how long a reserved block of a run's dispatch numbers
// may stay open before the feeder takes its writer for dead and sends past
// it (a batch of 10,000 rows commits in well under a second).
const AbandonedBlock = 5 * time.Minute

// NextPending returns up to limit pending objects of a run in dispatch
// order, after seq after (0: from the start), below any block of the run's
// seqs still being written.
func (s *Store) NextPending(ctx context.Context, runID string, after int64, limit int) ([]Pending, error) {
	// Nothing at or above a block an ingest writer has not committed yet:
	// its rows would appear behind the mark. Read in the same snapshot as
	// the rows, a block reserved before any row seen here is seen too.
	return s.pendingRange(ctx, runID, `seq > $2 AND seq < (SELECT coalesce(min(lo), 9223372036854775807)
		FROM run_seq_blocks WHERE run_id = $1::uuid AND reserved_at > now() - make_interval(secs => `+
		strconv.Itoa(int(AbandonedBlock.Seconds()))+`)) ORDER BY seq LIMIT $3`, after, limit)
}

// Dispatched returns a run's pending objects at or below upTo: those whose
// tasks should be in the queue (up to a window's worth).
func (s *Store) Dispatched(ctx context.Context, runID string, upTo int64) ([]Pending, error) {
	return s.pendingRange(ctx, runID, `seq <= $2 ORDER BY seq LIMIT $3`, upTo, 1_000_000)
}

func (s *Store) pendingRange(ctx context.Context, runID, where string, seq int64, limit int) ([]Pending, error) {
	rows, err := s.pool.Query(ctx, `SELECT bucket, object_key, object_version, seq FROM verifications
		WHERE run_id = $1::uuid AND status = 'pending' AND `+where, runID, seq, limit)
	if err != nil {
		return nil, classify(fmt.Errorf("read pending objects of run %s: %w", runID, err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Pending, error) {
		var p Pending
		err := row.Scan(&p.Object.Bucket, &p.Object.Key, &p.Object.Version, &p.Seq)
		return p, err
	})
	if err != nil {
		return nil, classify(fmt.Errorf("read pending objects of run %s: %w", runID, err))
	}
	return out, nil
}

// MarkDispatched raises a run's high-water mark to seq.
func (s *Store) MarkDispatched(ctx context.Context, runID string, seq int64) error {
	if _, err := s.pool.Exec(ctx, `UPDATE runs SET dispatched_seq = greatest(dispatched_seq, $2) WHERE id = $1::uuid`,
		runID, seq); err != nil {
		return classify(fmt.Errorf("mark objects of run %s dispatched: %w", runID, err))
	}
	return nil
}

// DispatchedSeq returns a run's high-water mark.
func (s *Store) DispatchedSeq(ctx context.Context, runID string) (int64, error) {
	var seq int64
	err := s.pool.QueryRow(ctx, `SELECT dispatched_seq FROM runs WHERE id = $1::uuid`, runID).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("run %s: %w", runID, ErrRunNotFound)
	}
	if err != nil {
		return 0, classify(fmt.Errorf("read high-water mark of run %s: %w", runID, err))
	}
	return seq, nil
}

// SetPriority changes a run's priority and the queue its next tasks go to
// (queue: the priority's queue of the run's base queue). Tasks already
// queued stay where they are.
func (s *Store) SetPriority(ctx context.Context, id string, p reverify.Priority, queue string, a reverify.Actor) (reverify.Run, error) {
	if err := checkRunID(id); err != nil {
		return reverify.Run{}, err
	}
	var r reverify.Run
	err := s.withActor(ctx, a, func(tx pgx.Tx) error {
		var err error
		r, err = queryRun(ctx, tx, `UPDATE runs SET priority = $2, queue = $3 WHERE id = $1::uuid
			AND status NOT IN ('completed', 'cancelled', 'failed') RETURNING `+runColumns, id, p, queue)
		if errors.Is(err, pgx.ErrNoRows) {
			return endedOrMissing(ctx, tx, id)
		}
		if err != nil {
			return err
		}
		return audit(ctx, tx, a, reverify.AuditRunPriority, r.ID, nil, map[string]any{"priority": p})
	})
	if err != nil {
		return reverify.Run{}, classify(fmt.Errorf("set priority of run %s: %w", id, err))
	}
	return r, nil
}

// endedOrMissing says why an update of a run that has not ended changed
// nothing: the run has ended, or there is no such run.
func endedOrMissing(ctx context.Context, tx pgx.Tx, id string) error {
	var st reverify.RunStatus
	if err := tx.QueryRow(ctx, `SELECT status FROM runs WHERE id = $1::uuid`, id).Scan(&st); err != nil {
		return fmt.Errorf("run %s: %w", id, ErrRunNotFound)
	}
	return fmt.Errorf("%w: run %s has ended (%s)", ErrInvalidTransition, id, st)
}

// SetLimits changes the caps of a run that has not ended; the workers
// follow within seconds (they cache a run's caps briefly), and the feeder
// sizes the run's window by them at its next round.
func (s *Store) SetLimits(ctx context.Context, id string, lim reverify.RunLimits, a reverify.Actor) (reverify.Run, error) {
	if err := checkRunID(id); err != nil {
		return reverify.Run{}, err
	}
	if err := lim.Validate(); err != nil {
		return reverify.Run{}, err
	}
	var r reverify.Run
	err := s.withActor(ctx, a, func(tx pgx.Tx) error {
		var err error
		r, err = queryRun(ctx, tx, `UPDATE runs SET max_rate = $2, rate_schedule = $3, max_in_flight = $4 WHERE id = $1::uuid
			AND status NOT IN ('completed', 'cancelled', 'failed') RETURNING `+runColumns,
			id, lim.MaxRate, lim.Schedule.String(), lim.MaxInFlight)
		if errors.Is(err, pgx.ErrNoRows) {
			return endedOrMissing(ctx, tx, id)
		}
		if err != nil {
			return err
		}
		return audit(ctx, tx, a, reverify.AuditRunLimits, r.ID, nil, limitsDetail(lim))
	})
	if err != nil {
		return reverify.Run{}, classify(fmt.Errorf("set limits of run %s: %w", id, err))
	}
	return r, nil
}

// limitsDetail is how the audit log records a run's caps.
func limitsDetail(l reverify.RunLimits) map[string]any {
	return map[string]any{"max_rate": l.RateText(), "max_in_flight": l.MaxInFlight}
}

// RunLimits returns a run's caps (none for a run that does not exist).
func (s *Store) RunLimits(ctx context.Context, id string) (reverify.RunLimits, error) {
	if checkRunID(id) != nil {
		return reverify.RunLimits{}, nil
	}
	var row runRow
	err := s.pool.QueryRow(ctx, `SELECT max_rate, rate_schedule, max_in_flight FROM runs WHERE id = $1::uuid`, id).
		Scan(&row.MaxRate, &row.RateSchedule, &row.MaxInFlight)
	if errors.Is(err, pgx.ErrNoRows) {
		return reverify.RunLimits{}, nil
	}
	if err != nil {
		return reverify.RunLimits{}, classify(fmt.Errorf("load limits of run %s: %w", id, err))
	}
	return row.run().Limits, nil
}

// DeleteRun removes an ended run and everything under it: its objects and
// API calls (by dropping its partitions, whatever their size), reviews,
// counters and status history. It returns how many objects it had. The
// deletion is recorded in the audit log, whose entries about the run stay.
func (s *Store) DeleteRun(ctx context.Context, id string, a reverify.Actor) (int64, error) {
	if err := checkRunID(id); err != nil {
		return 0, err
	}
	var total int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var st reverify.RunStatus
		err := tx.QueryRow(ctx, `SELECT status, total FROM runs WHERE id = $1::uuid FOR UPDATE`, id).Scan(&st, &total)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("run %s: %w", id, ErrRunNotFound)
		}
		if err != nil {
			return err
		}
		if !st.Ended() {
			return fmt.Errorf("%w: run %s is %s; cancel it first", ErrInvalidTransition, id, st)
		}
		// The run's trigger drops its partitions and reviews (00008).
		if _, err = tx.Exec(ctx, `DELETE FROM runs WHERE id = $1::uuid`, id); err != nil {
			return err
		}
		return audit(ctx, tx, a, reverify.AuditRunDelete, id, nil, map[string]any{"objects": total, "status": st})
	})
	if err != nil {
		return 0, classify(fmt.Errorf("delete run %s: %w", id, err))
	}
	return total, nil
}

// LedgerID identifies this ledger, whatever address it is reached by:
// processes that share it share the feeder's lease.
func (s *Store) LedgerID(ctx context.Context) (string, error) {
	var id string
	if err := s.pool.QueryRow(ctx, `SELECT id::text FROM ledger_identity`).Scan(&id); err != nil {
		return "", classify(fmt.Errorf("read ledger id: %w", err))
	}
	return id, nil
}
