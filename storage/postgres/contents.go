package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"reverify"
)

// Content is an object's bytes as a worker read them, named by their
// SHA-256, for ClaimContent.
type Content struct {
	RunID    string
	Object   reverify.ObjectRef
	SHA256   [32]byte
	ETag     string
	Size     int64
	Duration time.Duration // of the attempt so far, for a copy's row
}

// ContentClaim says what an object does with its content.
type ContentClaim int

// ClaimContent results.
const (
	ContentOwned     ContentClaim = iota + 1 // the object owns its content in the run: call the API
	ContentCopied                            // the object took the result of another with the same bytes: no call
	ContentOwnerBusy                         // another object with the same bytes is being analysed: wait
	ContentDone                              // the object already has a terminal result
)

// Claimed is what ClaimContent decided.
type Claimed struct {
	Claim ContentClaim
	// Result is the copy's row (ContentCopied): the owner's status,
	// score, transaction ID, error code and message.
	Result Result
	// DuplicateOf and DuplicateOfRun name the object whose API answer a
	// copy took, by key hash (ContentCopied).
	DuplicateOf, DuplicateOfRun string
}

// ClaimContent claims an object's content (the SHA-256 of its bytes) for
// its run, so each distinct image of a run is paid for once. The first
// object to claim a content owns it (ContentOwned) and calls the API; so
// does an owner's retry. Another object with the same bytes (a copy)
// waits while the owner has no result (ContentOwnerBusy), then takes the
// owner's result, scored or rejected, with its transaction ID and a
// duplicate_of naming the owner, in one write and without a call
// (ContentCopied). When the owner ended without an answer (failed,
// cancelled, not found: nothing was learnt of the image) or its bytes
// changed, or it was erased, the copy takes the claim over and becomes
// the owner. A run created to reuse results (runs.reuse_since) first
// takes the newest scored result of the same content in another run since
// then. An object that already has a terminal result is ContentDone.
//
// Errors: ErrUnavailable when PostgreSQL cannot be reached.
func (s *Store) ClaimContent(ctx context.Context, c Content) (Claimed, error) {
	owned, err := s.claimFast(ctx, c)
	if err == nil && owned {
		return Claimed{Claim: ContentOwned}, nil
	}
	var out Claimed
	if err == nil {
		err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) (err error) {
			out, err = claimContent(ctx, tx, c)
			return err
		})
	}
	if err != nil {
		return Claimed{}, classify(fmt.Errorf("claim content of %s: %w", c.Object, err))
	}
	return out, nil
}

// claimFast is the common case in one statement: a pending object of a
// run that reuses nothing is the first with its bytes.
func (s *Store) claimFast(ctx context.Context, c Content) (owned bool, err error) {
	err = s.pool.QueryRow(ctx, `
		WITH me AS (
			SELECT 1 FROM verifications v JOIN runs r ON r.id = v.run_id
			WHERE v.run_id = $1::uuid AND v.bucket = $2 AND v.object_key = $3 AND v.status = 'pending'
			  AND r.reuse_since IS NULL
		), ins AS (
			INSERT INTO run_contents (run_id, sha256, bucket, object_key)
			SELECT $1::uuid, $4, $2, $3 FROM me
			ON CONFLICT (run_id, sha256) DO NOTHING
			RETURNING 1
		), mark AS (
			UPDATE verifications SET content_sha256 = $4
			WHERE run_id = $1::uuid AND bucket = $2 AND object_key = $3 AND EXISTS (SELECT 1 FROM ins)
			RETURNING 1
		)
		SELECT EXISTS (SELECT 1 FROM mark)`, c.RunID, c.Object.Bucket, c.Object.Key, c.SHA256[:]).Scan(&owned)
	return owned, err
}

// claimContent is ClaimContent's careful path, in a transaction. It locks
// the claim before it writes the object's row, as claimFast does, so two
// claims never wait for each other in a circle.
func claimContent(ctx context.Context, tx pgx.Tx, c Content) (Claimed, error) {
	var status reverify.Status
	var reuseSince *time.Time
	err := tx.QueryRow(ctx, `SELECT v.status, r.reuse_since FROM verifications v JOIN runs r ON r.id = v.run_id
		WHERE v.run_id = $1::uuid AND v.bucket = $2 AND v.object_key = $3`,
		c.RunID, c.Object.Bucket, c.Object.Key).Scan(&status, &reuseSince)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if err := checkRunID(c.RunID); err != nil {
			return Claimed{}, fmt.Errorf("%w: %w", ErrUnknownRun, err)
		}
		return Claimed{}, fmt.Errorf("run %s has no such object: %w", c.RunID, ErrUnknownRun)
	case err != nil:
		return Claimed{}, err
	case status != reverify.StatusPending:
		return Claimed{Claim: ContentDone}, nil
	}
	if reuseSince != nil {
		var run, bucket, key string
		err := tx.QueryRow(ctx, `SELECT run_id::text, bucket, object_key FROM verifications
			WHERE content_sha256 = $1 AND status = 'scored' AND completed_at >= $2 AND run_id <> $3::uuid
			ORDER BY completed_at DESC LIMIT 1`, c.SHA256[:], *reuseSince, c.RunID).Scan(&run, &bucket, &key)
		switch {
		case err == nil:
			return copyResult(ctx, tx, c, run, reverify.ObjectRef{Bucket: bucket, Key: key})
		case !errors.Is(err, pgx.ErrNoRows):
			return Claimed{}, err
		}
	}
	var inserted bool
	if err := tx.QueryRow(ctx, `WITH ins AS (INSERT INTO run_contents (run_id, sha256, bucket, object_key)
			VALUES ($1::uuid, $2, $3, $4) ON CONFLICT (run_id, sha256) DO NOTHING RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM ins)`, c.RunID, c.SHA256[:], c.Object.Bucket, c.Object.Key).Scan(&inserted); err != nil {
		return Claimed{}, err
	}
	if inserted {
		return own(ctx, tx, c)
	}
	var owner reverify.ObjectRef
	var ownerStatus *reverify.Status
	var same bool
	if err := tx.QueryRow(ctx, `SELECT c.bucket, c.object_key, v.status, coalesce(v.content_sha256 = c.sha256, false)
		FROM run_contents c LEFT JOIN verifications v
			ON v.run_id = c.run_id AND v.bucket = c.bucket AND v.object_key = c.object_key
		WHERE c.run_id = $1::uuid AND c.sha256 = $2
		FOR UPDATE OF c`, c.RunID, c.SHA256[:]).Scan(&owner.Bucket, &owner.Key, &ownerStatus, &same); err != nil {
		return Claimed{}, err
	}
	switch {
	case owner.Bucket == c.Object.Bucket && owner.Key == c.Object.Key:
		return own(ctx, tx, c)
	case same && *ownerStatus == reverify.StatusPending:
		return Claimed{Claim: ContentOwnerBusy}, nil
	case same && (*ownerStatus == reverify.StatusScored || *ownerStatus == reverify.StatusRejected):
		return copyResult(ctx, tx, c, c.RunID, owner)
	}
	// The owner learnt nothing of the image, is gone, or read other bytes.
	if _, err := tx.Exec(ctx, `UPDATE run_contents SET bucket = $3, object_key = $4, claimed_at = now()
		WHERE run_id = $1::uuid AND sha256 = $2`, c.RunID, c.SHA256[:], c.Object.Bucket, c.Object.Key); err != nil {
		return Claimed{}, err
	}
	return own(ctx, tx, c)
}

// own marks the object's row with its content: it owns it.
func own(ctx context.Context, tx pgx.Tx, c Content) (Claimed, error) {
	_, err := tx.Exec(ctx, `UPDATE verifications SET content_sha256 = $4
		WHERE run_id = $1::uuid AND bucket = $2 AND object_key = $3`, c.RunID, c.Object.Bucket, c.Object.Key, c.SHA256[:])
	return Claimed{Claim: ContentOwned}, err
}

// copyResult records the owner's result (scored or rejected) as the
// object's own, naming the object whose call produced it: the owner, or
// the object the owner itself took its result from.
func copyResult(ctx context.Context, tx pgx.Tx, c Content, ownerRun string, owner reverify.ObjectRef) (Claimed, error) {
	out := Claimed{Claim: ContentCopied, Result: Result{RunID: c.RunID, Object: c.Object, ETag: c.ETag, Size: c.Size, Duration: c.Duration}}
	var tx2, msg *string
	var code *int32
	err := tx.QueryRow(ctx, `
		UPDATE verifications m SET status = o.status, liveness_score = o.liveness_score,
			transaction_id = o.transaction_id, error_code = o.error_code, message = o.message,
			object_etag = nullif($7, ''), object_size = $8, duration_ms = $9, completed_at = now(),
			content_sha256 = $10,
			duplicate_of = coalesce(o.duplicate_of, reverify_key_hash(o.bucket, o.object_key)),
			duplicate_of_run = coalesce(o.duplicate_of_run, o.run_id)
		FROM verifications o
		WHERE m.run_id = $1::uuid AND m.bucket = $2 AND m.object_key = $3 AND m.status = 'pending'
		  AND o.run_id = $4::uuid AND o.bucket = $5 AND o.object_key = $6 AND o.status IN ('scored', 'rejected')
		RETURNING m.status, m.liveness_score::float8, m.transaction_id, m.error_code, m.message,
			m.duplicate_of, m.duplicate_of_run::text`,
		c.RunID, c.Object.Bucket, c.Object.Key, ownerRun, owner.Bucket, owner.Key,
		c.ETag, nullIfZero(c.Size), c.Duration.Milliseconds(), c.SHA256[:]).
		Scan(&out.Result.Status, &out.Result.Score, &tx2, &code, &msg, &out.DuplicateOf, &out.DuplicateOfRun)
	if errors.Is(err, pgx.ErrNoRows) {
		// The object was finished meanwhile (a duplicate task), or the
		// owner's row went (erased, pruned) since the claim was read.
		return Claimed{Claim: ContentDone}, nil
	}
	if err != nil {
		return Claimed{}, err
	}
	out.Result.TransactionID, out.Result.Message = deref(tx2), deref(msg)
	if code != nil {
		out.Result.ErrorCode = int(*code)
	}
	return out, nil
}

// Duplicate is how an object's row names the object whose answer it took.
type Duplicate struct {
	Of    string // key hash; "" when the row is not a copy
	OfRun string
	SHA   []byte
}

// DuplicateOf returns the content hash and duplicate_of reference of one
// object's row (for tests and the CLI).
func (s *Store) DuplicateOf(ctx context.Context, runID string, obj reverify.ObjectRef) (Duplicate, error) {
	var d Duplicate
	var of, ofRun *string
	err := s.pool.QueryRow(ctx, `SELECT duplicate_of, duplicate_of_run::text, content_sha256 FROM verifications
		WHERE run_id = $1::uuid AND bucket = $2 AND object_key = $3`, runID, obj.Bucket, obj.Key).Scan(&of, &ofRun, &d.SHA)
	if err != nil {
		return d, classify(fmt.Errorf("load duplicate_of of %s: %w", obj, err))
	}
	d.Of, d.OfRun = deref(of), deref(ofRun)
	return d, nil
}

// Copies counts the objects of a run that took another object's answer
// (duplicate_of is set): objects with no call of their own.
func (s *Store) Copies(ctx context.Context, runID string) (int64, error) {
	if err := checkRunID(runID); err != nil {
		return 0, err
	}
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM verifications WHERE run_id = $1::uuid AND duplicate_of IS NOT NULL`, runID).Scan(&n)
	if err != nil {
		return 0, classify(fmt.Errorf("count copies of run %s: %w", runID, err))
	}
	return n, nil
}
