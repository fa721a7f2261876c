package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"reverify"
)

// ErasedRun is a run a data subject was removed from (or a pruned run).
type ErasedRun struct {
	ID             string             `json:"run_id"`
	Name           string             `json:"name"`
	Status         reverify.RunStatus `json:"status"`
	Queue          string             `json:"queue"`
	Priority       reverify.Priority  `json:"priority"`
	ReportTo       string             `json:"report_to,omitempty"`
	Verifications  int64              `json:"verifications"`
	Reviews        int64              `json:"reviews"`
	APICallsHashed int64              `json:"api_calls_hashed"`
	FinishedAt     *time.Time         `json:"finished_at,omitempty"`
}

// Erasure is what EraseObjects changed.
type Erasure struct {
	Subjects       int         `json:"subjects"`
	Verifications  int64       `json:"verifications"`
	Reviews        int64       `json:"reviews"`
	APICallsHashed int64       `json:"api_calls_hashed"`
	PlanTokens     int64       `json:"plan_tokens_cleared"`
	ContentClaims  int64       `json:"content_claims"` // run_contents rows the subjects owned
	Runs           []ErasedRun `json:"runs"`
}

// SubjectRuns returns the runs that hold any of objs (in verifications or
// with keys not yet hashed in api_calls), without changing anything.
func (s *Store) SubjectRuns(ctx context.Context, objs []reverify.ObjectRef) ([]ErasedRun, error) {
	var out []ErasedRun
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		b, k, _ := subjectArrays(objs)
		rows, err := tx.Query(ctx, `
			WITH e AS (SELECT * FROM unnest($1::text[], $2::text[]) AS t(bucket, object_key)),
			v AS (SELECT v.run_id, count(*) AS n FROM verifications v JOIN e USING (bucket, object_key) GROUP BY 1),
			rv AS (SELECT r.run_id, count(*) AS n FROM reviews r JOIN e USING (bucket, object_key) GROUP BY 1),
			c AS (SELECT c.run_id, count(*) AS n FROM api_calls c JOIN e USING (bucket, object_key)
			      WHERE NOT c.key_hashed GROUP BY 1)
			SELECT r.id::text, r.name, r.status, r.queue, r.priority, coalesce(r.report_to, ''), coalesce(v.n, 0),
			       coalesce(rv.n, 0), coalesce(c.n, 0), r.finished_at
			FROM runs r LEFT JOIN v ON v.run_id = r.id LEFT JOIN rv ON rv.run_id = r.id LEFT JOIN c ON c.run_id = r.id
			WHERE v.n IS NOT NULL OR rv.n IS NOT NULL OR c.n IS NOT NULL
			ORDER BY r.created_at`, b, k)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanErasedRun)
		return err
	})
	if err != nil {
		return nil, classify(fmt.Errorf("find the runs of the data subjects: %w", err))
	}
	return out, nil
}

func scanErasedRun(row pgx.CollectableRow) (ErasedRun, error) {
	var r ErasedRun
	err := row.Scan(&r.ID, &r.Name, &r.Status, &r.Queue, &r.Priority, &r.ReportTo, &r.Verifications, &r.Reviews,
		&r.APICallsHashed, &r.FinishedAt)
	return r, err
}

func subjectArrays(objs []reverify.ObjectRef) (buckets, keys, hashes []string) {
	seen := map[[2]string]bool{}
	for _, o := range objs {
		if seen[[2]string{o.Bucket, o.Key}] {
			continue
		}
		seen[[2]string{o.Bucket, o.Key}] = true
		buckets = append(buckets, o.Bucket)
		keys = append(keys, o.Key)
		hashes = append(hashes, reverify.KeyHash(o.Bucket, o.Key))
	}
	return buckets, keys, hashes
}

// ErrNoSubjects means EraseObjects was given nothing to erase.
var ErrNoSubjects = errors.New("no data subject given")

// EraseObjects removes data subjects (objects, by bucket and key; the
// version is ignored) from every run, in one transaction: their
// verifications rows (with their content hashes), reviews and content
// claims are deleted (the runs' counters and totals follow), the API calls made for them keep their invoice evidence
// with the key replaced by its hash (key_hashed), and an ended run's saved
// listing position that contains a key is cleared. One audit entry per
// subject records it, naming the object by its hash.
func (s *Store) EraseObjects(ctx context.Context, objs []reverify.ObjectRef, a reverify.Actor) (Erasure, error) {
	buckets, keys, hashes := subjectArrays(objs)
	if len(keys) == 0 {
		return Erasure{}, ErrNoSubjects
	}
	for i := range keys {
		if buckets[i] == "" || keys[i] == "" {
			return Erasure{}, fmt.Errorf("erase: every data subject needs a bucket and a key")
		}
	}
	runs, err := s.SubjectRuns(ctx, objs)
	if err != nil {
		return Erasure{}, err
	}
	e := Erasure{Subjects: len(keys)}
	type perSubject struct{ verifications, reviews, calls int64 }
	per := map[[2]string]*perSubject{}
	for i := range keys {
		per[[2]string{buckets[i], keys[i]}] = &perSubject{}
	}
	perRun := map[string]*ErasedRun{}
	for i := range runs {
		runs[i].Verifications, runs[i].Reviews, runs[i].APICallsHashed = 0, 0, 0
		perRun[runs[i].ID] = &runs[i]
	}
	count := func(rows pgx.Rows, add func(p *perSubject, r *ErasedRun)) (int64, error) {
		var runID, b, k string
		var n int64
		_, err := pgx.ForEachRow(rows, []any{&runID, &b, &k}, func() error {
			n++
			if p := per[[2]string{b, k}]; p != nil {
				r := perRun[runID]
				if r == nil { // a run created since SubjectRuns looked
					r = &ErasedRun{ID: runID}
					perRun[runID] = r
				}
				add(p, r)
			}
			return nil
		})
		return n, err
	}
	err = s.withActor(ctx, a, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE reverify_erase ON COMMIT DROP AS
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS t(bucket, object_key, key_hash)`,
			buckets, keys, hashes); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM review_claims c USING reverify_erase e
			WHERE c.bucket = e.bucket AND c.object_key = e.object_key`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `DELETE FROM reviews r USING reverify_erase e
			WHERE r.bucket = e.bucket AND r.object_key = e.object_key RETURNING r.run_id::text, r.bucket, r.object_key`)
		if err != nil {
			return err
		}
		if e.Reviews, err = count(rows, func(p *perSubject, r *ErasedRun) { p.reviews++; r.Reviews++ }); err != nil {
			return err
		}
		// A copy waiting for an erased owner takes the claim over.
		tag, err := tx.Exec(ctx, `DELETE FROM run_contents c USING reverify_erase e
			WHERE c.bucket = e.bucket AND c.object_key = e.object_key`)
		if err != nil {
			return err
		}
		e.ContentClaims = tag.RowsAffected()
		rows, err = tx.Query(ctx, `DELETE FROM verifications v USING reverify_erase e
			WHERE v.bucket = e.bucket AND v.object_key = e.object_key RETURNING v.run_id::text, v.bucket, v.object_key`)
		if err != nil {
			return err
		}
		if e.Verifications, err = count(rows, func(p *perSubject, r *ErasedRun) { p.verifications++; r.Verifications++ }); err != nil {
			return err
		}
		// runs.total counts the run's objects: it stays equal to its rows.
		ids, counts := runTotals(perRun)
		if _, err := tx.Exec(ctx, `UPDATE runs r SET total = r.total - x.n
			FROM (SELECT id::uuid AS id, n FROM unnest($1::text[], $2::bigint[]) AS t(id, n)) x
			WHERE r.id = x.id AND x.n > 0`, ids, counts); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `UPDATE api_calls c SET object_key = e.key_hash, key_hashed = true
			FROM reverify_erase e
			WHERE c.bucket = e.bucket AND c.object_key = e.object_key AND NOT c.key_hashed
			RETURNING c.run_id::text, c.bucket, e.object_key`)
		if err != nil {
			return err
		}
		if e.APICallsHashed, err = count(rows, func(p *perSubject, r *ErasedRun) { p.calls++; r.APICallsHashed++ }); err != nil {
			return err
		}
		tag, err = tx.Exec(ctx, `UPDATE runs r SET plan_token = NULL
			WHERE r.plan_token IS NOT NULL AND r.status IN ('completed', 'cancelled', 'failed')
			  AND EXISTS (SELECT 1 FROM reverify_erase e WHERE strpos(r.plan_token, e.object_key) > 0)`)
		if err != nil {
			return err
		}
		e.PlanTokens = tag.RowsAffected()
		if a.Source == "" {
			return nil
		}
		// One entry per subject, in one statement (a request may name many).
		details := make([]map[string]any, len(keys))
		for i := range keys {
			p := per[[2]string{buckets[i], keys[i]}]
			details[i] = map[string]any{"verifications": p.verifications, "reviews": p.reviews, "api_calls_hashed": p.calls}
			if a.Why != "" {
				details[i]["reason"] = a.Why
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_log (actor, source, action, bucket, key_hash, detail, remote)
			SELECT coalesce(nullif($1, ''), 'unknown'), $2, $3, t.b, t.h, t.d, $4
			FROM unnest($5::text[], $6::text[], $7::jsonb[]) WITH ORDINALITY AS t(b, h, d, n) ORDER BY t.n`,
			a.Who, a.Source, reverify.AuditErase, a.From, buckets, hashes, details)
		return err
	})
	if err != nil {
		return Erasure{}, classify(fmt.Errorf("erase %d data subjects: %w", len(keys), err))
	}
	e.Runs = runs
	return e, nil
}

// runTotals lists the verifications erased per run.
func runTotals(runs map[string]*ErasedRun) (ids []string, counts []int64) {
	for _, r := range runs {
		ids = append(ids, r.ID)
		counts = append(counts, r.Verifications)
	}
	return ids, counts
}

// PrunableRuns returns the ended runs that finished before before and are
// not pruned yet, oldest first, with what pruning would remove.
func (s *Store) PrunableRuns(ctx context.Context, before time.Time) ([]ErasedRun, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT r.id::text, r.name, r.status, r.queue, r.priority, coalesce(r.report_to, ''),
		       (SELECT coalesce(sum(objects), 0)::bigint FROM run_counts c WHERE c.run_id = r.id),
		       (SELECT count(*) FROM reviews v WHERE v.run_id = r.id),
		       (SELECT count(*) FROM api_calls c WHERE c.run_id = r.id AND NOT c.key_hashed),
		       r.finished_at
		FROM runs r
		WHERE r.status IN ('completed', 'cancelled', 'failed') AND r.pruned_at IS NULL
		  AND r.finished_at < $1
		ORDER BY r.finished_at, r.id`, before)
	if err != nil {
		return nil, classify(fmt.Errorf("find runs to prune: %w", err))
	}
	out, err := pgx.CollectRows(rows, scanErasedRun)
	if err != nil {
		return nil, classify(fmt.Errorf("find runs to prune: %w", err))
	}
	return out, nil
}

// PruneRun removes the objects and reviews of an ended run at once (its
// counters and total become 0) and replaces the keys of its API calls by
// their hashes, keeping them as invoice evidence; the run itself, its
// status history and its audit entries stay, marked pruned_at. It is
// recorded in the audit log.
func (s *Store) PruneRun(ctx context.Context, id string, a reverify.Actor) (ErasedRun, error) {
	if err := checkRunID(id); err != nil {
		return ErasedRun{}, err
	}
	var r ErasedRun
	err := s.withActor(ctx, a, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT r.id::text, r.name, r.status, r.queue, r.priority, coalesce(r.report_to, ''),
				0::bigint, (SELECT count(*) FROM reviews v WHERE v.run_id = r.id), 0::bigint, r.finished_at
			FROM runs r WHERE r.id = $1::uuid FOR UPDATE`, id)
		if err != nil {
			return err
		}
		r, err = pgx.CollectExactlyOneRow(rows, scanErasedRun)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("run %s: %w", id, ErrRunNotFound)
		}
		if err != nil {
			return err
		}
		if !r.Status.Ended() {
			return fmt.Errorf("%w: run %s is %s; only ended runs are pruned", ErrInvalidTransition, id, r.Status)
		}
		tag, err := tx.Exec(ctx, `UPDATE api_calls SET object_key = reverify_key_hash(bucket, object_key), key_hashed = true
			WHERE run_id = $1::uuid AND NOT key_hashed`, id)
		if err != nil {
			return err
		}
		r.APICallsHashed = tag.RowsAffected()
		if _, err := tx.Exec(ctx, `DELETE FROM review_claims WHERE run_id = $1::uuid`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM run_contents WHERE run_id = $1::uuid`, id); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT reverify_prune_run_objects($1::uuid)`, id).Scan(&r.Verifications); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE runs SET pruned_at = now(), total = 0, plan_token = NULL WHERE id = $1::uuid`, id); err != nil {
			return err
		}
		return audit(ctx, tx, a, reverify.AuditPrune, id, nil, map[string]any{"verifications": r.Verifications,
			"reviews": r.Reviews, "api_calls_hashed": r.APICallsHashed, "finished_at": r.FinishedAt})
	})
	if err != nil {
		return ErasedRun{}, classify(fmt.Errorf("prune run %s: %w", id, err))
	}
	return r, nil
}

// ReportsWritten returns where completion reports of a run were written,
// as recorded in the audit log (report.write), oldest first, without
// duplicates.
func (s *Store) ReportsWritten(ctx context.Context, runID string) ([]string, error) {
	if err := checkRunID(runID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT detail->>'location' FROM audit_log
		WHERE run_id = $1::uuid AND action = $2 AND detail ? 'location' ORDER BY id`, runID, reverify.AuditReportWrite)
	if err != nil {
		return nil, classify(fmt.Errorf("reports written of run %s: %w", runID, err))
	}
	all, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, classify(fmt.Errorf("reports written of run %s: %w", runID, err))
	}
	var out []string
	for _, l := range all {
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out, nil
}
