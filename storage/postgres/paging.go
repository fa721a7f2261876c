package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// keysetPage is how many rows one page of forEachByKey holds.
const keysetPage = 5000

// forEachByKey calls fn for every verifications row of run runID that
// filter selects (a condition, "" for all rows), in (bucket, object_key)
// order, a page at a time. Each page starts after the last key of the one
// before, an index range scan however far into the run it is, so millions
// of rows need memory for one page only. columns is the select list rowTo
// reads, over verifications v and what join adds; key returns a row's bucket and object key. Errors of the query
// are wrapped with what; fn's are returned as they are.
func forEachByKey[T any](ctx context.Context, s *Store, what, runID, columns, join, filter string,
	rowTo pgx.RowToFunc[T], key func(T) (bucket, objectKey string), fn func(T) error) error {
	if err := checkRunID(runID); err != nil {
		return err
	}
	if filter != "" {
		filter = " AND (" + filter + ")"
	}
	sql := `SELECT ` + columns + ` FROM verifications v ` + join + `
		WHERE v.run_id = $1::uuid` + filter + ` AND (v.bucket, v.object_key) > ($2, $3)
		ORDER BY v.bucket, v.object_key LIMIT $4`
	var lastBucket, lastKey string
	for {
		rows, err := s.pool.Query(ctx, sql, runID, lastBucket, lastKey, keysetPage)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		page, err := pgx.CollectRows(rows, rowTo)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < keysetPage {
			return nil
		}
		lastBucket, lastKey = key(page[len(page)-1])
	}
}
