-- Human review of results: the queue of objects a person should look at
-- (low scores and refusals) and the decisions reviewers recorded, with who
-- and when. Decisions are appended, never updated: the newest one counts.

-- +goose Up
CREATE TABLE reviews (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       uuid        NOT NULL,
    bucket       text        NOT NULL,
    object_key   text        NOT NULL,
    decision     text        NOT NULL
                 CHECK (decision IN ('confirmed_live', 'suspected_spoof', 'needs_recheck')),
    note         text        NOT NULL DEFAULT '',
    reviewer     text        NOT NULL CHECK (reviewer <> ''),
    reviewed_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (run_id, bucket, object_key)
        REFERENCES verifications (run_id, bucket, object_key) ON DELETE CASCADE
);
CREATE INDEX reviews_object_idx ON reviews (run_id, bucket, object_key, reviewed_at DESC);

COMMENT ON TABLE reviews IS 'Decisions reviewers recorded about one object of one run (reverify dashboard, or INSERT by hand). Append-only: the newest row per object is its current decision.';
COMMENT ON COLUMN reviews.decision IS 'confirmed_live (a real person), suspected_spoof (presentation attack: photo, screen, mask), needs_recheck (cannot tell; verify again or escalate).';
COMMENT ON COLUMN reviews.note IS 'Free text from the reviewer.';
COMMENT ON COLUMN reviews.reviewer IS 'Who decided: the dashboard user name (basic auth), the token name, or the database user for manual inserts.';
COMMENT ON COLUMN reviews.reviewed_at IS 'When the decision was recorded.';

-- The threshold is a session setting so psql users can change it without a
-- new view: SET reverify.review_threshold = 30;
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
COMMENT ON COLUMN review_queue.reason IS 'low_score or rejected.';
COMMENT ON COLUMN review_queue.decision IS 'Newest reviews.decision for the object; NULL when nobody has reviewed it.';

-- +goose Down
DROP VIEW review_queue;
DROP TABLE reviews;
