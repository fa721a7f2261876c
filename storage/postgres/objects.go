package postgres

import (
	"context"
	"fmt"
	"reverify"

	"github.com/jackc/pgx/v5"
)

// AddObjects records objects as pending rows of a run in one statement and
// adds them to the run's total. It returns the objects that were new: a key
// already recorded for the run (a duplicate in the source, or a re-enqueue)
// is left as it is and not returned, so it is never enqueued twice.
func (s *Store) AddObjects(ctx context.Context, runID string, objs []reverify.ObjectRef) ([]reverify.ObjectRef, error) {
	if len(objs) == 0 {
		return nil, nil
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
		SELECT bucket, object_key, object_version FROM added`,
		runID, buckets, keys, versions)
	if err != nil {
		return nil, fmt.Errorf("record objects of run %s: %w", runID, err)
	}
	added, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (reverify.ObjectRef, error) {
		var o reverify.ObjectRef
		err := row.Scan(&o.Bucket, &o.Key, &o.Version)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("record objects of run %s: %w", runID, err)
	}
	return added, nil
}

// PendingObjects calls fn for every object of the run that has no terminal
// result yet, in key order, a page at a time.
func (s *Store) PendingObjects(ctx context.Context, runID string, fn func(reverify.ObjectRef) error) error {
	const page = 5000
	var lastBucket, lastKey string
	for {
		rows, err := s.pool.Query(ctx, `
			SELECT bucket, object_key, object_version FROM verifications
			WHERE run_id = $1::uuid AND status = 'pending' AND (bucket, object_key) > ($2, $3)
			ORDER BY bucket, object_key LIMIT $4`, runID, lastBucket, lastKey, page)
		if err != nil {
			return fmt.Errorf("list pending objects of run %s: %w", runID, err)
		}
		refs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (reverify.ObjectRef, error) {
			var o reverify.ObjectRef
			err := row.Scan(&o.Bucket, &o.Key, &o.Version)
			return o, err
		})
		if err != nil {
			return fmt.Errorf("list pending objects of run %s: %w", runID, err)
		}
		for _, r := range refs {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(refs) < page {
			return nil
		}
		last := refs[len(refs)-1]
		lastBucket, lastKey = last.Bucket, last.Key
	}
}
