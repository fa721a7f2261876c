package postgres

import (
	"context"
	"fmt"
	"reverify"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReviewItem is one object of a run as a reviewer sees it: its result and
// the newest decision about it.
type ReviewItem struct {
	RunID         string
	Bucket        string
	Key           string
	Version       string
	Status        reverify.Status
	Score         *float64
	ErrorCode     int // 0 = none
	Message       string
	TransactionID string
	CompletedAt   *time.Time
	Decision      reverify.Decision // "" while nobody has reviewed it
	Reviewer      string
}

// Review is one decision a reviewer recorded about an object of a run.
type Review struct {
	RunID      string
	Bucket     string
	Key        string
	Decision   reverify.Decision
	Note       string
	Reviewer   string
	ReviewedAt time.Time // set by the ledger
	// Source and From say where the decision came from, for the audit
	// log; a decision with no Source (an INSERT by hand) is not audited.
	Source reverify.AuditSource `db:"-"`
	From   string               `db:"-"`
}

// itemColumns selects a ReviewItem's result from verifications or
// review_queue, which share these columns.
const itemColumns = `run_id::text AS run_id, bucket, object_key AS key, object_version AS version, status,
	liveness_score::float8 AS score, coalesce(error_code, 0) AS error_code, coalesce(message, '') AS message,
	coalesce(transaction_id, '') AS transaction_id, completed_at`

// noDecision completes itemColumns for rows read without their reviews.
const noDecision = `, ''::text AS decision, ''::text AS reviewer`

func collectItems(rows pgx.Rows, err error) ([]ReviewItem, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[ReviewItem])
}

// Failures returns up to limit objects of a run that ended without a score
// or a refusal (failed, not found, invalid image), newest first.
func (s *Store) Failures(ctx context.Context, runID string, limit int) ([]ReviewItem, error) {
	if err := checkRunID(runID); err != nil {
		return nil, err
	}
	failures := []reverify.Status{reverify.StatusFailed, reverify.StatusNotFound, reverify.StatusInvalidImage}
	items, err := collectItems(s.pool.Query(ctx, `SELECT `+itemColumns+noDecision+` FROM verifications
		WHERE run_id = $1::uuid AND status = ANY($2)
		ORDER BY completed_at DESC NULLS LAST LIMIT $3`, runID, failures, limit))
	if err != nil {
		return nil, fmt.Errorf("failures of run %s: %w", runID, err)
	}
	return items, nil
}

// ReviewQueue returns up to limit rows of the review_queue view for a run,
// with threshold as the view's review threshold: the unreviewed first,
// lowest scores first.
func (s *Store) ReviewQueue(ctx context.Context, runID string, threshold float64, limit int) ([]ReviewItem, error) {
	if err := checkRunID(runID); err != nil {
		return nil, err
	}
	var items []ReviewItem
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// The view reads its threshold from this setting, for this
		// transaction only.
		if _, err := tx.Exec(ctx, `SELECT set_config('reverify.review_threshold', $1, true)`,
			strconv.FormatFloat(threshold, 'f', -1, 64)); err != nil {
			return err
		}
		var err error
		items, err = collectItems(tx.Query(ctx, `SELECT `+itemColumns+`,
				coalesce(decision, '') AS decision, coalesce(reviewer, '') AS reviewer
			FROM review_queue WHERE run_id = $1::uuid
			ORDER BY decision IS NOT NULL, liveness_score NULLS LAST, object_key LIMIT $2`, runID, limit))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("review queue of run %s: %w", runID, err)
	}
	return items, nil
}

// Item returns one object of a run with its reviews, newest first, or
// ErrObjectNotFound when the run has no such object (or ErrRunNotFound for
// an ID that is no UUID). obj's version is not compared.
func (s *Store) Item(ctx context.Context, runID string, obj reverify.ObjectRef) (ReviewItem, []Review, error) {
	if err := checkRunID(runID); err != nil {
		return ReviewItem{}, nil, err
	}
	items, err := collectItems(s.pool.Query(ctx, `SELECT `+itemColumns+noDecision+` FROM verifications
		WHERE run_id = $1::uuid AND bucket = $2 AND object_key = $3`, runID, obj.Bucket, obj.Key))
	if err != nil {
		return ReviewItem{}, nil, fmt.Errorf("load object of run %s: %w", runID, err)
	}
	if len(items) == 0 {
		return ReviewItem{}, nil, fmt.Errorf("object of run %s: %w", runID, ErrObjectNotFound)
	}
	rows, err := s.pool.Query(ctx, `SELECT run_id::text AS run_id, bucket, object_key AS key, decision, note,
			reviewer, reviewed_at
		FROM reviews WHERE run_id = $1::uuid AND bucket = $2 AND object_key = $3
		ORDER BY reviewed_at DESC, id DESC`, runID, obj.Bucket, obj.Key)
	if err != nil {
		return ReviewItem{}, nil, fmt.Errorf("load reviews: %w", err)
	}
	reviews, err := pgx.CollectRows(rows, pgx.RowToStructByName[Review])
	if err != nil {
		return ReviewItem{}, nil, fmt.Errorf("load reviews: %w", err)
	}
	it := items[0]
	if len(reviews) > 0 {
		it.Decision, it.Reviewer = reviews[0].Decision, reviews[0].Reviewer
	}
	return it, reviews, nil
}

// RecordReview appends a decision, and records it in the audit log with
// the reviewer as actor; r.ReviewedAt is ignored. It returns
// ErrObjectNotFound (or ErrRunNotFound) when the object is not part of the
// run.
func (s *Store) RecordReview(ctx context.Context, r Review) error {
	if !slices.Contains(reverify.Decisions(), r.Decision) {
		return fmt.Errorf("unknown decision %q", r.Decision)
	}
	if err := checkRunID(r.RunID); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO reviews (run_id, bucket, object_key, decision, note, reviewer)
			VALUES ($1::uuid, $2, $3, $4, $5, $6)`, r.RunID, r.Bucket, r.Key, r.Decision, r.Note, r.Reviewer); err != nil {
			return err
		}
		return audit(ctx, tx, reverify.Actor{Who: r.Reviewer, Source: r.Source, From: r.From}, reverify.AuditReview, r.RunID,
			&reverify.ObjectRef{Bucket: r.Bucket, Key: r.Key}, map[string]any{"decision": r.Decision})
	})
	if err != nil {
		return classify(fmt.Errorf("record review of an object of run %s: %w", r.RunID, err))
	}
	return nil
}
