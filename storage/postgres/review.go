package postgres

import (
	"context"
	"errors"
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
	ETag          string // the verified bytes' ETag; "" when none was recorded
	Status        reverify.Status
	Score         *float64
	ErrorCode     int // 0 = none
	Message       string
	TransactionID string
	CompletedAt   *time.Time
	Decision      reverify.Decision // "" while nobody has reviewed it
	Reviewer      string
	// QueueState is set for items read from the review queue: to review,
	// needs a second review, or decided.
	QueueState reverify.QueueState
}

// Review is one decision a reviewer recorded about an object.
type Review struct {
	ID       int64 `db:"id"`
	RunID    string
	Bucket   string
	Key      string
	Decision reverify.Decision
	Note     string
	Reviewer string
	// Set by the ledger: when, about which bytes and score, and whether
	// the decision stands or waits for a second reviewer.
	ReviewedAt time.Time
	ETag       string
	Score      *float64
	State      reverify.ReviewState
	SecondOf   *int64 // the awaiting_second review this one confirms or overturns
	// Source and From say where the decision came from, for the audit
	// log; a decision with no Source (an INSERT by hand) is not audited.
	Source reverify.AuditSource `db:"-"`
	From   string               `db:"-"`
	// FourEyes: a suspected spoof waits for a second, different reviewer.
	FourEyes bool `db:"-"`
}

// itemColumns selects a ReviewItem's result from verifications or
// review_queue, which share these columns.
const itemColumns = `run_id::text AS run_id, bucket, object_key AS key, object_version AS version,
	coalesce(object_etag, '') AS etag, status,
	liveness_score::float8 AS score, coalesce(error_code, 0) AS error_code, coalesce(message, '') AS message,
	coalesce(transaction_id, '') AS transaction_id, completed_at`

// noDecision completes itemColumns for rows read without their reviews.
const noDecision = `, ''::text AS decision, ''::text AS reviewer, ''::text AS queue_state`

// queueColumns completes itemColumns for rows of review_queue.
const queueColumns = `, coalesce(decision, '') AS decision, coalesce(reviewer, '') AS reviewer, queue_state`

// reviewColumns selects a Review from reviews.
const reviewColumns = `id, run_id::text AS run_id, bucket, object_key AS key, decision, note, reviewer, reviewed_at,
	coalesce(object_etag, '') AS etag, score::float8 AS score, state, second_of`

// collect reads every row of a query into a T by column name; it takes
// Query's results as they come.
func collect[T any](rows pgx.Rows, err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[T])
}

// Failures returns up to limit objects of a run that ended without a score
// or a refusal (failed, not found, invalid image), newest first.
func (s *Store) Failures(ctx context.Context, runID string, limit int) ([]ReviewItem, error) {
	if err := checkRunID(runID); err != nil {
		return nil, err
	}
	failures := []reverify.Status{reverify.StatusFailed, reverify.StatusNotFound, reverify.StatusInvalidImage}
	items, err := collect[ReviewItem](s.pool.Query(ctx, `SELECT `+itemColumns+noDecision+` FROM verifications
		WHERE run_id = $1::uuid AND status = ANY($2)
		ORDER BY completed_at DESC NULLS LAST LIMIT $3`, runID, failures, limit))
	if err != nil {
		return nil, fmt.Errorf("failures of run %s: %w", runID, err)
	}
	return items, nil
}

// QueueQuery selects a page of a run's review queue.
type QueueQuery struct {
	RunID     string
	Threshold float64 // scores under this are queued; <= 0: 50
	// Delta: a decision about the same ETag still applies when the score
	// moved by at most this much; < 0: 10.
	Delta float64
	All   bool        // decided objects too; false: only what is still to do
	After QueueCursor // the zero cursor starts at the first page
	Limit int         // <= 0: 50
}

// QueueCursor is where a page of the review queue ends: the queue is in
// (order, bucket, key) order, refusals (order -1) first, then by score.
type QueueCursor struct {
	Order  string // queue_order as PostgreSQL prints it; "" = the start
	Bucket string
	Key    string
}

// QueuePage is one page of a review queue; Next is the zero cursor on the
// last page.
type QueuePage struct {
	Items []ReviewItem
	Next  QueueCursor
}

// queueSettings sets the review_queue view's settings for the transaction.
func queueSettings(ctx context.Context, tx pgx.Tx, threshold, delta float64) error {
	if threshold <= 0 {
		threshold = 50
	}
	if delta < 0 {
		delta = 10
	}
	_, err := tx.Exec(ctx, `SELECT set_config('reverify.review_threshold', $1, true),
		set_config('reverify.review_rescore_delta', $2, true)`,
		strconv.FormatFloat(threshold, 'f', -1, 64), strconv.FormatFloat(delta, 'f', -1, 64))
	return err
}

// ReviewQueuePage returns a page of the review_queue view for a run, in
// the order of its index: refusals first, then the lowest scores. Without
// q.All, only objects still to review or awaiting a second review.
func (s *Store) ReviewQueuePage(ctx context.Context, q QueueQuery) (QueuePage, error) {
	if err := checkRunID(q.RunID); err != nil {
		return QueuePage{}, err
	}
	if q.Limit <= 0 {
		q.Limit = 50
	}
	var page QueuePage
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := queueSettings(ctx, tx, q.Threshold, q.Delta); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+itemColumns+queueColumns+`, queue_order::text AS cursor_order
			FROM review_queue WHERE run_id = $1::uuid
			  AND ($2 = '' OR (queue_order, bucket, object_key) > (nullif($2, '')::numeric, $3, $4))
			  AND ($5 OR queue_state <> 'decided')
			ORDER BY queue_order, bucket, object_key LIMIT $6`,
			q.RunID, q.After.Order, q.After.Bucket, q.After.Key, q.All, q.Limit)
		if err != nil {
			return err
		}
		type row struct {
			ReviewItem
			CursorOrder string
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByName[row])
		if err != nil {
			return err
		}
		for _, r := range got {
			page.Items = append(page.Items, r.ReviewItem)
		}
		if len(got) == q.Limit {
			last := got[len(got)-1]
			page.Next = QueueCursor{Order: last.CursorOrder, Bucket: last.Bucket, Key: last.Key}
		}
		return nil
	})
	if err != nil {
		return QueuePage{}, fmt.Errorf("review queue of run %s: %w", q.RunID, err)
	}
	return page, nil
}

// ReviewQueue returns the first limit rows of the review_queue view for a
// run, decided ones included, with threshold as the view's review
// threshold (see ReviewQueuePage).
func (s *Store) ReviewQueue(ctx context.Context, runID string, threshold float64, limit int) ([]ReviewItem, error) {
	page, err := s.ReviewQueuePage(ctx, QueueQuery{RunID: runID, Threshold: threshold, Delta: -1, All: true, Limit: limit})
	return page.Items, err
}

// Item returns one object of a run with its reviews, newest first, or
// ErrObjectNotFound when the run has no such object (or ErrRunNotFound for
// an ID that is no UUID). obj's version is not compared. The reviews are
// the object's in every run; Decision is the newest.
func (s *Store) Item(ctx context.Context, runID string, obj reverify.ObjectRef) (ReviewItem, []Review, error) {
	if err := checkRunID(runID); err != nil {
		return ReviewItem{}, nil, err
	}
	items, err := collect[ReviewItem](s.pool.Query(ctx, `SELECT `+itemColumns+noDecision+` FROM verifications
		WHERE run_id = $1::uuid AND bucket = $2 AND object_key = $3`, runID, obj.Bucket, obj.Key))
	if err != nil {
		return ReviewItem{}, nil, fmt.Errorf("load object of run %s: %w", runID, err)
	}
	if len(items) == 0 {
		return ReviewItem{}, nil, fmt.Errorf("object of run %s: %w", runID, ErrObjectNotFound)
	}
	reviews, err := s.objectReviews(ctx, s.pool, obj)
	if err != nil {
		return ReviewItem{}, nil, err
	}
	it := items[0]
	if len(reviews) > 0 {
		it.Decision, it.Reviewer = reviews[0].Decision, reviews[0].Reviewer
	}
	return it, reviews, nil
}

// objectReviews returns every decision about an object, newest first.
func (s *Store) objectReviews(ctx context.Context, q querier, obj reverify.ObjectRef) ([]Review, error) {
	reviews, err := collect[Review](q.Query(ctx, `SELECT `+reviewColumns+` FROM reviews
		WHERE bucket = $1 AND object_key = $2 ORDER BY id DESC`, obj.Bucket, obj.Key))
	if err != nil {
		return nil, fmt.Errorf("load reviews: %w", err)
	}
	return reviews, nil
}

// ObjectRun is one run's result for an object, for its history.
type ObjectRun struct {
	RunID       string
	RunName     string
	Status      reverify.Status
	Score       *float64
	ETag        string
	ErrorCode   int
	CompletedAt *time.Time
}

// ObjectHistory returns an object's results in every run, newest first, at
// most limit.
func (s *Store) ObjectHistory(ctx context.Context, obj reverify.ObjectRef, limit int) ([]ObjectRun, error) {
	out, err := collect[ObjectRun](s.pool.Query(ctx, `SELECT v.run_id::text AS run_id, r.name AS run_name, v.status,
			v.liveness_score::float8 AS score, coalesce(v.object_etag, '') AS etag, coalesce(v.error_code, 0) AS error_code,
			v.completed_at
		FROM verifications v JOIN runs r ON r.id = v.run_id
		WHERE v.bucket = $1 AND v.object_key = $2
		ORDER BY v.completed_at DESC NULLS LAST LIMIT $3`, obj.Bucket, obj.Key, limit))
	if err != nil {
		return nil, fmt.Errorf("history of an object: %w", err)
	}
	return out, nil
}

// RecordReview records a decision (see Decide).
func (s *Store) RecordReview(ctx context.Context, r Review) error {
	_, err := s.Decide(ctx, r)
	return err
}

// Decide appends a decision about the object of r's run, bound to the ETag
// and score the run verified, releases the object's claim, and records it
// in the audit log with the reviewer as actor; r.ReviewedAt and the other
// fields the ledger sets are ignored. It returns the stored decision:
//   - when the object's newest decision awaits a second review (about the
//     same bytes), this one is the second: final, SecondOf the first; the
//     first reviewer gets ErrSecondReviewer;
//   - otherwise a suspected spoof under r.FourEyes awaits a second review.
//
// ErrClaimed: another reviewer holds a live claim on the object.
// ErrObjectNotFound (or ErrRunNotFound): the object is not part of the run.
func (s *Store) Decide(ctx context.Context, r Review) (Review, error) {
	if !slices.Contains(reverify.Decisions(), r.Decision) {
		return Review{}, fmt.Errorf("unknown decision %q", r.Decision)
	}
	if r.Reviewer == "" {
		return Review{}, errors.New("a decision needs a reviewer")
	}
	if err := checkRunID(r.RunID); err != nil {
		return Review{}, err
	}
	obj := reverify.ObjectRef{Bucket: r.Bucket, Key: r.Key}
	var out Review
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockObject(ctx, tx, obj); err != nil {
			return err
		}
		var holder string
		err := tx.QueryRow(ctx, `SELECT reviewer FROM review_claims
			WHERE bucket = $1 AND object_key = $2 AND expires_at > now()`, r.Bucket, r.Key).Scan(&holder)
		if err == nil && holder != r.Reviewer {
			return fmt.Errorf("%w (%s)", ErrClaimed, holder)
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var etag *string
		var score *float64
		err = tx.QueryRow(ctx, `SELECT object_etag, liveness_score::float8 FROM verifications
			WHERE run_id = $1::uuid AND bucket = $2 AND object_key = $3`, r.RunID, r.Bucket, r.Key).Scan(&etag, &score)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("object of run %s: %w", r.RunID, ErrObjectNotFound)
		}
		if err != nil {
			return err
		}
		state := reverify.ReviewFinal
		var secondOf *int64
		var first struct {
			id       int64
			runID    string
			reviewer string
			etag     *string
			decision reverify.Decision
			state    reverify.ReviewState
		}
		err = tx.QueryRow(ctx, `SELECT id, run_id::text, reviewer, object_etag, decision, state FROM reviews
			WHERE bucket = $1 AND object_key = $2 ORDER BY id DESC LIMIT 1`, r.Bucket, r.Key).
			Scan(&first.id, &first.runID, &first.reviewer, &first.etag, &first.decision, &first.state)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		sameBytes := err == nil && (first.runID == r.RunID || (first.etag != nil && etag != nil && *first.etag == *etag))
		switch {
		case sameBytes && first.state == reverify.ReviewAwaitingSecond && first.reviewer == r.Reviewer:
			return fmt.Errorf("%w: %s decided %s", ErrSecondReviewer, first.reviewer, first.decision)
		case sameBytes && first.state == reverify.ReviewAwaitingSecond:
			secondOf = &first.id
		case r.FourEyes && r.Decision == reverify.DecisionSuspectedSpoof:
			state = reverify.ReviewAwaitingSecond
		}
		rows, err := tx.Query(ctx, `INSERT INTO reviews (run_id, bucket, object_key, decision, note, reviewer,
				object_etag, score, state, second_of)
			VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING `+reviewColumns,
			r.RunID, r.Bucket, r.Key, r.Decision, r.Note, r.Reviewer, etag, score, state, secondOf)
		if err != nil {
			return err
		}
		if out, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Review]); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM review_claims WHERE bucket = $1 AND object_key = $2`, r.Bucket, r.Key); err != nil {
			return err
		}
		detail := map[string]any{"decision": r.Decision, "state": state, "review_id": out.ID}
		if secondOf != nil {
			detail["second_of"] = *secondOf
			detail["first_reviewer"] = first.reviewer
			detail["first_decision"] = first.decision
			detail["confirms"] = first.decision == r.Decision
		}
		return audit(ctx, tx, reverify.Actor{Who: r.Reviewer, Source: r.Source, From: r.From}, reverify.AuditReview, r.RunID,
			&obj, detail)
	})
	if err != nil {
		return Review{}, classify(fmt.Errorf("record review of an object of run %s: %w", r.RunID, err))
	}
	return out, nil
}

// lockObject serialises decisions and claims about one object for the
// rest of the transaction.
func lockObject(ctx context.Context, tx pgx.Tx, obj reverify.ObjectRef) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 7))`, obj.Bucket, obj.Key)
	return err
}

// Claim is a reviewer's hold on an object of a run's review queue.
type Claim struct {
	Item      ReviewItem
	Reviewer  string
	ExpiresAt time.Time
}

// ClaimQuery says whose next item of which run's queue to claim.
type ClaimQuery struct {
	RunID     string
	Reviewer  string
	Threshold float64 // as QueueQuery's
	Delta     float64 // as QueueQuery's
	TTL       time.Duration
}

// claimBatch is how many candidates one look at the queue offers to claim.
const claimBatch = 16

// ClaimNext gives the reviewer an object of the run's queue to review,
// held for q.TTL: the one they already hold in this run (renewed), else
// the first, in queue order, that is to review (or awaits a second review
// by someone else) and that nobody holds. Two reviewers asking at once
// never get the same object. ok is false when nothing is left.
func (s *Store) ClaimNext(ctx context.Context, q ClaimQuery) (c Claim, ok bool, err error) {
	if err := checkRunID(q.RunID); err != nil {
		return Claim{}, false, err
	}
	if q.Reviewer == "" || q.TTL <= 0 {
		return Claim{}, false, errors.New("a claim needs a reviewer and a duration")
	}
	// The reviewer's expired claims hold keys and serve no one: gone.
	if _, err := s.pool.Exec(ctx, `DELETE FROM review_claims WHERE reviewer = $1 AND expires_at <= now()`, q.Reviewer); err != nil {
		return Claim{}, false, classify(fmt.Errorf("drop expired claims: %w", err))
	}
	if c, ok, err := s.CurrentClaim(ctx, q); err != nil || ok {
		if ok {
			c.ExpiresAt, err = s.RenewClaim(ctx, c.Item.RunID, reverify.ObjectRef{Bucket: c.Item.Bucket, Key: c.Item.Key}, q.Reviewer, q.TTL)
			if errors.Is(err, ErrClaimLost) {
				return s.ClaimNext(ctx, q) // taken or decided meanwhile: claim another
			}
		}
		return c, ok && err == nil, err
	}
	after := QueueCursor{}
	for {
		var cands []QueueCursor
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			if err := queueSettings(ctx, tx, q.Threshold, q.Delta); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT queue_order::text, bucket, object_key FROM review_queue qu
				WHERE run_id = $1::uuid
				  AND ($2 = '' OR (queue_order, bucket, object_key) > (nullif($2, '')::numeric, $3, $4))
				  AND (queue_state = 'to_review' OR (queue_state = 'needs_second_review' AND reviewer <> $5))
				  AND NOT EXISTS (SELECT 1 FROM review_claims c WHERE c.bucket = qu.bucket AND c.object_key = qu.object_key
				                  AND c.expires_at > now())
				ORDER BY queue_order, bucket, object_key LIMIT $6`,
				q.RunID, after.Order, after.Bucket, after.Key, q.Reviewer, claimBatch)
			if err != nil {
				return err
			}
			cands, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (QueueCursor, error) {
				var c QueueCursor
				return c, row.Scan(&c.Order, &c.Bucket, &c.Key)
			})
			return err
		})
		if err != nil {
			return Claim{}, false, fmt.Errorf("claim from the review queue of run %s: %w", q.RunID, classify(err))
		}
		for _, cand := range cands {
			c, ok, err := s.claim(ctx, q, reverify.ObjectRef{Bucket: cand.Bucket, Key: cand.Key})
			if err != nil || ok {
				return c, ok, err
			}
		}
		if len(cands) < claimBatch {
			return Claim{}, false, nil
		}
		after = cands[len(cands)-1]
	}
}

// claim takes one object for q.Reviewer if it is still theirs to review
// and nobody else holds it: under the object's lock, so a decision or
// another claim cannot slip in between the check and the claim.
func (s *Store) claim(ctx context.Context, q ClaimQuery, obj reverify.ObjectRef) (Claim, bool, error) {
	var c Claim
	var ok bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockObject(ctx, tx, obj); err != nil {
			return err
		}
		if err := queueSettings(ctx, tx, q.Threshold, q.Delta); err != nil {
			return err
		}
		items, err := collect[ReviewItem](tx.Query(ctx, `SELECT `+itemColumns+queueColumns+` FROM review_queue
			WHERE run_id = $1::uuid AND bucket = $2 AND object_key = $3
			  AND (queue_state = 'to_review' OR (queue_state = 'needs_second_review' AND reviewer <> $4))`,
			q.RunID, obj.Bucket, obj.Key, q.Reviewer))
		if err != nil || len(items) == 0 {
			return err
		}
		var expires time.Time
		err = tx.QueryRow(ctx, `INSERT INTO review_claims (bucket, object_key, run_id, reviewer, expires_at)
			VALUES ($1, $2, $3::uuid, $4, now() + make_interval(secs => $5))
			ON CONFLICT (bucket, object_key) DO UPDATE
				SET run_id = EXCLUDED.run_id, reviewer = EXCLUDED.reviewer, claimed_at = now(), expires_at = EXCLUDED.expires_at
				WHERE review_claims.expires_at <= now() OR review_claims.reviewer = EXCLUDED.reviewer
			RETURNING expires_at`, obj.Bucket, obj.Key, q.RunID, q.Reviewer, q.TTL.Seconds()).Scan(&expires)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // held by someone else
		}
		if err != nil {
			return err
		}
		c, ok = Claim{Item: items[0], Reviewer: q.Reviewer, ExpiresAt: expires}, true
		return nil
	})
	if err != nil {
		return Claim{}, false, classify(fmt.Errorf("claim an object of run %s: %w", q.RunID, err))
	}
	return c, ok, nil
}

// CurrentClaim returns the object of the run the reviewer holds a live
// claim on and may still decide, if any.
func (s *Store) CurrentClaim(ctx context.Context, q ClaimQuery) (Claim, bool, error) {
	if err := checkRunID(q.RunID); err != nil {
		return Claim{}, false, err
	}
	var c Claim
	var ok bool
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := queueSettings(ctx, tx, q.Threshold, q.Delta); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+itemColumns+queueColumns+`, expires_at FROM (
				SELECT qu.*, c.expires_at, c.claimed_at FROM review_claims c
				JOIN review_queue qu ON qu.run_id = c.run_id AND qu.bucket = c.bucket AND qu.object_key = c.object_key
				WHERE c.reviewer = $1 AND c.run_id = $2::uuid AND c.expires_at > now()) x
			WHERE queue_state = 'to_review' OR (queue_state = 'needs_second_review' AND reviewer <> $1)
			ORDER BY claimed_at LIMIT 1`, q.Reviewer, q.RunID)
		if err != nil {
			return err
		}
		type row struct {
			ReviewItem
			ExpiresAt time.Time
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByName[row])
		if err != nil || len(got) == 0 {
			return err
		}
		c, ok = Claim{Item: got[0].ReviewItem, Reviewer: q.Reviewer, ExpiresAt: got[0].ExpiresAt}, true
		return nil
	})
	if err != nil {
		return Claim{}, false, classify(fmt.Errorf("claim of %s in run %s: %w", q.Reviewer, q.RunID, err))
	}
	return c, ok, nil
}

// RenewClaim extends the reviewer's live claim on an object by ttl from
// now and returns its new expiry; ErrClaimLost when they no longer hold it.
func (s *Store) RenewClaim(ctx context.Context, runID string, obj reverify.ObjectRef, reviewer string, ttl time.Duration) (time.Time, error) {
	if err := checkRunID(runID); err != nil {
		return time.Time{}, err
	}
	var expires time.Time
	err := s.pool.QueryRow(ctx, `UPDATE review_claims SET expires_at = now() + make_interval(secs => $5)
		WHERE bucket = $1 AND object_key = $2 AND run_id = $3::uuid AND reviewer = $4 AND expires_at > now()
		RETURNING expires_at`, obj.Bucket, obj.Key, runID, reviewer, ttl.Seconds()).Scan(&expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, ErrClaimLost
	}
	if err != nil {
		return time.Time{}, classify(fmt.Errorf("renew a claim in run %s: %w", runID, err))
	}
	return expires, nil
}

// ReleaseClaim gives up the reviewer's claim on an object (if they hold
// one): it is offered to the next reviewer who asks.
func (s *Store) ReleaseClaim(ctx context.Context, obj reverify.ObjectRef, reviewer string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM review_claims WHERE bucket = $1 AND object_key = $2 AND reviewer = $3`,
		obj.Bucket, obj.Key, reviewer); err != nil {
		return classify(fmt.Errorf("release a claim: %w", err))
	}
	return nil
}
