package postgres

import (
	"context"
	"fmt"
	"reverify"

	"github.com/jackc/pgx/v5"
)

// objectRefColumns selects a verifications row's object as a
// reverify.ObjectRef.
const objectRefColumns = `bucket, object_key AS key, object_version AS version`

// AddObjects records objects as pending rows of a run in one statement and
// adds them to the run's total. It returns the objects that were new: a key
// already recorded for the run (a duplicate in the source, or a re-enqueue)
// is left as it is and not returned, so it is never enqueued twice.
func (s *Store) AddObjects(ctx context.Context, runID string, objs []reverify.ObjectRef) ([]reverify.ObjectRef, error) {
	if len(objs) == 0 {
		return nil, nil
	}
	if err := checkRunID(runID); err != nil {
		return nil, err
	}
	buckets := make([]string, len(objs))
	keys := make([]string, len(objs))
	versions := make([]string, len(objs))
	for i, o := range objs {
		buckets[i], keys[i], versions[i] = o.Bucket, o.Key, o.Version
	}
	rows, err := s.pool.Query(ctx, `
		WITH added AS (
			INSERT INTO verifications (run_id, bucket, object_key, object_version)
			SELECT $1::uuid, b, k, v FROM unnest($2::text[], $3::text[], $4::text[]) AS t(b, k, v)
			ON CONFLICT (run_id, bucket, object_key) DO NOTHING
			RETURNING bucket, object_key, object_version
		), counted AS (
			UPDATE runs SET total = total + (SELECT count(*) FROM added) WHERE id = $1::uuid
		)
		SELECT `+objectRefColumns+` FROM added`,
		runID, buckets, keys, versions)
	if err != nil {
		return nil, fmt.Errorf("record objects of run %s: %w", runID, err)
	}
	added, err := pgx.CollectRows(rows, pgx.RowToStructByName[reverify.ObjectRef])
	if err != nil {
		return nil, fmt.Errorf("record objects of run %s: %w", runID, err)
	}
	return added, nil
}

// PendingObjects calls fn for every object of the run that has no terminal
// result yet, in key order, a page at a time.
func (s *Store) PendingObjects(ctx context.Context, runID string, fn func(reverify.ObjectRef) error) error {
	return forEachByKey(ctx, s, "list pending objects of run "+runID, runID,
		objectRefColumns, `status = 'pending'`, pgx.RowToStructByName[reverify.ObjectRef],
		func(o reverify.ObjectRef) (string, string) { return o.Bucket, o.Key }, fn)
}
