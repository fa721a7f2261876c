-- Reviews that fit a campaign. A decision is about an object's content,
-- not one run: it records the ETag that was verified and the score the
-- reviewer saw, and an object decided with the same ETag stays out of a
-- later run's queue unless its score moved by more than a delta. A
-- reviewer claims the item they work on (review_claims), so two reviewers
-- never work the same one. Under the four-eyes rule a suspected spoof
-- waits (state awaiting_second) until a second, different reviewer
-- confirms or overturns it. The queue is read a page at a time in the
-- order of an index: refusals first, then the lowest scores.

-- +goose Up
ALTER TABLE reviews
    ADD COLUMN object_etag text,
    ADD COLUMN score       numeric(5, 2),
    ADD COLUMN state       text NOT NULL DEFAULT 'final' CHECK (state IN ('final', 'awaiting_second')),
    ADD COLUMN second_of   bigint REFERENCES reviews (id) ON DELETE SET NULL;
COMMENT ON COLUMN reviews.object_etag IS 'ETag of the bytes the reviewer decided about (verifications.object_etag of the decided run).';
COMMENT ON COLUMN reviews.score IS 'liveness_score the reviewer saw (NULL for a refusal).';
COMMENT ON COLUMN reviews.state IS 'final, or awaiting_second: a suspected spoof under the four-eyes rule, pending until a second, different reviewer decides.';
COMMENT ON COLUMN reviews.second_of IS 'For a second reviewer''s decision: the awaiting_second review it confirms (same decision) or overturns.';

UPDATE reviews r SET object_etag = v.object_etag, score = v.liveness_score
FROM verifications v
WHERE v.run_id = r.run_id AND v.bucket = r.bucket AND v.object_key = r.object_key;

-- The newest decision about an object, whatever the run.
CREATE INDEX reviews_object_newest_idx ON reviews (bucket, object_key, id DESC);
-- A run's queue in page order: refusals (-1) first, then the lowest scores.
CREATE INDEX verifications_review_idx ON verifications (run_id, (coalesce(liveness_score, -1)), bucket, object_key)
    WHERE status IN ('scored', 'rejected');

CREATE TABLE review_claims (
    bucket      text        NOT NULL,
    object_key  text        NOT NULL,
    run_id      uuid        NOT NULL,
    reviewer    text        NOT NULL CHECK (reviewer <> ''),
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (bucket, object_key)
);
CREATE INDEX review_claims_reviewer_idx ON review_claims (reviewer, run_id);
COMMENT ON TABLE review_claims IS 'Who is reviewing an object now: one claim per object, until expires_at (renewed while the reviewer works) or the decision. An expired claim can be taken by anyone.';
COMMENT ON COLUMN review_claims.run_id IS 'The run whose queue the object was claimed from.';

-- +goose StatementBegin
CREATE FUNCTION runs_drop_claims() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM review_claims WHERE run_id = OLD.id;
    RETURN OLD;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION runs_drop_claims() IS 'Deleting a run drops the review claims taken from its queue.';
CREATE TRIGGER runs_drop_claims BEFORE DELETE ON runs FOR EACH ROW EXECUTE FUNCTION runs_drop_claims();

DROP VIEW review_queue;
-- Settings (per session or transaction, like reverify.review_threshold):
-- SET reverify.review_rescore_delta = 5;
CREATE VIEW review_queue AS
SELECT v.run_id, v.bucket, v.object_key, v.object_version, v.status, v.liveness_score,
       v.error_code, v.message, v.transaction_id, v.completed_at,
       CASE WHEN v.status = 'rejected' THEN 'rejected' ELSE 'low_score' END AS reason,
       CASE WHEN a.applies THEN r.decision END AS decision,
       CASE WHEN a.applies THEN r.note END AS note,
       CASE WHEN a.applies THEN r.reviewer END AS reviewer,
       CASE WHEN a.applies THEN r.reviewed_at END AS reviewed_at,
       v.object_etag,
       CASE WHEN NOT a.applies THEN 'to_review'
            WHEN r.state = 'awaiting_second' THEN 'needs_second_review'
            ELSE 'decided' END AS queue_state,
       CASE WHEN r.id IS NULL OR a.applies THEN NULL
            WHEN r.object_etag IS DISTINCT FROM v.object_etag THEN 'new_image'
            ELSE 'score_moved' END AS requeued,
       CASE WHEN a.applies THEN r.id END AS review_id,
       CASE WHEN a.applies THEN r.run_id END AS decided_in_run,
       r.score AS decided_score,
       coalesce(v.liveness_score, -1) AS queue_order
FROM verifications v
LEFT JOIN LATERAL (
    SELECT x.id, x.run_id, x.decision, x.note, x.reviewer, x.reviewed_at, x.state, x.object_etag, x.score
    FROM reviews x
    WHERE x.bucket = v.bucket AND x.object_key = v.object_key
    ORDER BY x.id DESC LIMIT 1
) r ON true
CROSS JOIN LATERAL (
    SELECT coalesce(r.run_id = v.run_id
        OR (r.object_etag = v.object_etag
            AND (r.score IS NOT DISTINCT FROM v.liveness_score
                 OR abs(r.score - v.liveness_score) <=
                    coalesce(nullif(current_setting('reverify.review_rescore_delta', true), '')::numeric, 10))),
        false) AS applies
) a
WHERE v.status IN ('scored', 'rejected')
  AND coalesce(v.liveness_score, -1) <
      coalesce(nullif(current_setting('reverify.review_threshold', true), '')::numeric, 50);

COMMENT ON VIEW review_queue IS 'Objects a person should review: API refusals and scores under reverify.review_threshold (default 50), with the newest decision about the object when it still applies: made in this run, or in any run about the same ETag with a score within reverify.review_rescore_delta (default 10) of this one. SET reverify.review_threshold = 30 (or reverify.review_rescore_delta = 5) changes it for the session. WHERE queue_state <> ''decided'' gives what is still to do; ORDER BY queue_order, bucket, object_key is the dashboard''s (indexed) order.';
COMMENT ON COLUMN review_queue.reason IS 'low_score or rejected.';
COMMENT ON COLUMN review_queue.decision IS 'The newest decision about the object when it applies to this row (see the view); NULL when it is to review.';
COMMENT ON COLUMN review_queue.queue_state IS 'to_review, needs_second_review (a suspected spoof awaiting a second reviewer under the four-eyes rule) or decided.';
COMMENT ON COLUMN review_queue.requeued IS 'Why an object decided before is back: new_image (another ETag) or score_moved (by more than the delta); NULL otherwise.';
COMMENT ON COLUMN review_queue.decided_score IS 'The score the newest decision about the object was made on.';
COMMENT ON COLUMN review_queue.queue_order IS 'Page order: -1 for refusals, else the score.';

CREATE VIEW review_report AS
SELECT r.id, to_char(r.reviewed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS reviewed_at_utc,
       r.run_id, ru.name AS run_name, r.bucket, r.object_key, r.object_etag, r.score, r.decision, r.state,
       r.reviewer, r.second_of, f.reviewer AS first_reviewer, f.decision AS first_decision, r.note, r.reviewed_at
FROM reviews r
JOIN runs ru ON ru.id = r.run_id
LEFT JOIN reviews f ON f.id = r.second_of;
COMMENT ON VIEW review_report IS 'Every review decision, time in UTC (reviewed_at_utc, with Z): what reverify report prints as the reviews view. A second reviewer''s decision names the first (first_reviewer, first_decision).';

-- +goose Down
DROP VIEW review_report;
DROP VIEW review_queue;
CREATE VIEW review_queue AS
SELECT v.run_id, v.bucket, v.object_key, v.object_version, v.status, v.liveness_score,
       v.error_code, v.message, v.transaction_id, v.completed_at,
       CASE WHEN v.status = 'rejected' THEN 'rejected' ELSE 'low_score' END AS reason,
       r.decision, r.note, r.reviewer, r.reviewed_at
FROM verifications v
LEFT JOIN LATERAL (
    SELECT decision, note, reviewer, reviewed_at FROM reviews x
    WHERE x.run_id = v.run_id AND x.bucket = v.bucket AND x.object_key = v.object_key
    ORDER BY reviewed_at DESC, id DESC LIMIT 1
) r ON true
WHERE v.status = 'rejected'
   OR (v.status = 'scored' AND v.liveness_score <
       coalesce(nullif(current_setting('reverify.review_threshold', true), '')::numeric, 50));
COMMENT ON VIEW review_queue IS 'Objects a person should review: scores under reverify.review_threshold (default 50; SET reverify.review_threshold = 30 to change it for the session) and API refusals, with the newest decision if any. WHERE decision IS NULL gives what is still to do.';
DROP TRIGGER runs_drop_claims ON runs;
DROP FUNCTION runs_drop_claims();
DROP TABLE review_claims;
DROP INDEX verifications_review_idx;
DROP INDEX reviews_object_newest_idx;
ALTER TABLE reviews DROP COLUMN second_of, DROP COLUMN state, DROP COLUMN score, DROP COLUMN object_etag;
