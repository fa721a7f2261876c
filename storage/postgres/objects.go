package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"reverify"
)

// objectRefColumns selects a verifications row's object as a
// reverify.ObjectRef.
const objectRefColumns = `bucket, object_key AS key, object_version AS version`

// AddObjects records objects as pending rows of a run and adds them to the
// run's total, in one transaction, and returns how many were new. The
// batch is copied (COPY) straight into the run's rows: a fresh run's
// objects are new, and COPY is the fastest way in. When a key is already
// recorded for the run (a duplicate in the source, or a resumed enqueue)
// the copy fails on the primary key and the batch goes the careful way:
// copied into a staging table, then inserted with one statement that
// leaves a recorded key as it is.
//
// Writers of one run may call it at once: each writes its batch in key
// order, so two batches holding the same keys wait for each other, never
// in a cycle.
func (s *Store) AddObjects(ctx context.Context, runID string, objs []reverify.ObjectRef) (int64, error) {
	if len(objs) == 0 {
		return 0, nil
	}
	if err := checkRunID(runID); err != nil {
		return 0, err
	}
	objs = slices.Clone(objs)
	slices.SortFunc(objs, func(a, b reverify.ObjectRef) int {
		return cmp.Or(strings.Compare(a.Bucket, b.Bucket), strings.Compare(a.Key, b.Key))
	})
	lo, err := s.reserveSeqs(ctx, runID, len(objs))
	if err != nil {
		return 0, err
	}
	rows := func(withRun bool) pgx.CopyFromSource {
		return pgx.CopyFromSlice(len(objs), func(i int) ([]any, error) {
			if withRun {
				return []any{runID, objs[i].Bucket, objs[i].Key, objs[i].Version, lo + int64(i)}, nil
			}
			return []any{objs[i].Bucket, objs[i].Key, objs[i].Version}, nil
		})
	}
	var added, total int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if added, err = copyNew(ctx, tx, rows(true)); err != nil {
			if pgErr, ok := errors.AsType[*pgconn.PgError](err); !ok || pgErr.Code != pgerrcode.UniqueViolation {
				return err
			}
			if added, err = insertStaged(ctx, tx, runID, lo, rows(false)); err != nil {
				return err
			}
		}
		// The block closes as its rows become visible: the feeder may send
		// past it from then on.
		return tx.QueryRow(ctx, `WITH closed AS (DELETE FROM run_seq_blocks WHERE run_id = $1::uuid AND lo = $3)
			UPDATE runs SET total = total + $2 WHERE id = $1::uuid RETURNING total`, runID, added, lo).Scan(&total)
	})
	if err != nil {
		// Left open, the block would hold the run's dispatch back until it
		// is taken as abandoned.
		_, _ = s.pool.Exec(context.WithoutCancel(ctx), `DELETE FROM run_seq_blocks WHERE run_id = $1::uuid AND lo = $2`, runID, lo)
		return 0, classify(fmt.Errorf("record objects of run %s: %w", runID, err))
	}
	if total >= analyzeFrom && bits.Len64(uint64(total-added)) != bits.Len64(uint64(total)) {
		if _, err := s.pool.Exec(ctx, `SELECT reverify_analyze_run($1::uuid)`, runID); err != nil {
			return added, classify(fmt.Errorf("analyze objects of run %s: %w", runID, err))
		}
	}
	return added, nil
}

// reserveSeqs reserves n dispatch numbers of a run for one batch and
// opens their block: the feeder sends nothing at or above it until the
// batch's rows commit (or fail), so a batch that commits after a later
// one is never found behind the feeder's mark. Reservations take turns on
// the run's row for a moment; the batches themselves are written side by
// side.
func (s *Store) reserveSeqs(ctx context.Context, runID string, n int) (lo int64, err error) {
	err = s.pool.QueryRow(ctx, `
		WITH r AS (UPDATE runs SET next_seq = next_seq + $2 WHERE id = $1::uuid RETURNING next_seq - $2 AS lo)
		INSERT INTO run_seq_blocks (run_id, lo) SELECT $1::uuid, lo FROM r RETURNING lo`, runID, n).Scan(&lo)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("record objects of run %s: %w", runID, ErrRunNotFound)
	}
	if err != nil {
		return 0, classify(fmt.Errorf("record objects of run %s: reserve dispatch order: %w", runID, err))
	}
	return lo, nil
}

// copyNew copies rows into verifications under a savepoint, which a
// duplicate key rolls back.
func copyNew(ctx context.Context, tx pgx.Tx, rows pgx.CopyFromSource) (int64, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return 0, err
	}
	n, err := sp.CopyFrom(ctx, pgx.Identifier{"verifications"}, []string{"run_id", "bucket", "object_key", "object_version", "seq"}, rows)
	if err != nil {
		_ = sp.Rollback(ctx)
		return 0, err
	}
	return n, sp.Commit(ctx)
}

// insertStaged inserts the rows that are not recorded yet, through a
// staging table.
func insertStaged(ctx context.Context, tx pgx.Tx, runID string, lo int64, rows pgx.CopyFromSource) (int64, error) {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS reverify_ingest
		(bucket text, object_key text, object_version text) ON COMMIT DELETE ROWS`); err != nil {
		return 0, err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"reverify_ingest"}, []string{"bucket", "object_key", "object_version"}, rows); err != nil {
		return 0, err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO verifications (run_id, bucket, object_key, object_version, seq)
		SELECT $1::uuid, bucket, object_key, object_version, $2 + row_number() OVER (ORDER BY bucket, object_key) - 1
		FROM reverify_ingest
		ORDER BY bucket, object_key
		ON CONFLICT (run_id, bucket, object_key) DO NOTHING`, runID, lo)
	return tag.RowsAffected(), err
}

// analyzeFrom is the size from which a run's partition is analysed each
// time it doubles while it is filled: the feeder plans its queries on
// those statistics while the fill goes on.
const analyzeFrom = 8192

// PendingObjects calls fn for every object of the run that has no terminal
// result yet, in key order, a page at a time.
func (s *Store) PendingObjects(ctx context.Context, runID string, fn func(reverify.ObjectRef) error) error {
	return forEachByKey(ctx, s, "list pending objects of run "+runID, runID,
		objectRefColumns, "", `status = 'pending'`, pgx.RowToStructByName[reverify.ObjectRef],
		func(o reverify.ObjectRef) (string, string) { return o.Bucket, o.Key }, fn)
}
