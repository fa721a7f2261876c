-- Each distinct image paid once (docs/dedupe.md). A worker hashes the
-- bytes it fetched (SHA-256) and claims the content for its run before it
-- calls the API: the first object to claim it (the owner) is analysed;
-- every other object with the same bytes (a copy) takes the owner's
-- result, with no call of its own, and names the owner in duplicate_of.
-- The hash stays on every object's row, so content shared by more than
-- one key, across runs, can be listed (duplicate_images): the same selfie
-- under two customers is a fraud signal.

-- +goose Up
ALTER TABLE verifications
    ADD COLUMN content_sha256   bytea CHECK (octet_length(content_sha256) = 32),
    ADD COLUMN duplicate_of     text  CHECK (duplicate_of ~ '^[0-9a-f]{16}$'),
    ADD COLUMN duplicate_of_run uuid;
COMMENT ON COLUMN verifications.content_sha256 IS 'SHA-256 of the bytes the worker fetched (set once the object was read and looked like an image).';
COMMENT ON COLUMN verifications.duplicate_of IS 'Set on a copy: the key hash (reverify_key_hash) of the object with the same bytes whose API answer this row took, in run duplicate_of_run; no call was made for this row.';
COMMENT ON COLUMN verifications.duplicate_of_run IS 'The run of the object named by duplicate_of: this run, or an earlier one when the run reused results (--reuse-results).';
ALTER TABLE runs ADD COLUMN reuse_since timestamptz;
COMMENT ON COLUMN runs.reuse_since IS 'Set when the run reuses results (--reuse-results with --not-verified-since): an object whose content was scored in another run at or after this time takes that result, without a call.';
CREATE INDEX verifications_content_idx ON verifications (content_sha256, completed_at DESC) WHERE content_sha256 IS NOT NULL;

CREATE TABLE run_contents (
    run_id      uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    sha256      bytea       NOT NULL CHECK (octet_length(sha256) = 32),
    bucket      text        NOT NULL,
    object_key  text        NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, sha256)
);
COMMENT ON TABLE run_contents IS 'Which object of a run owns each distinct content (SHA-256): the owner is analysed, every other object with the same bytes takes its result. A claim passes to a copy when the owner ends without an answer (failed, cancelled, not found) or its bytes changed.';
CREATE INDEX run_contents_subject_idx ON run_contents (bucket, object_key);
COMMENT ON COLUMN run_contents.claimed_at IS 'When the current owner claimed the content.';

CREATE VIEW duplicate_images AS
SELECT encode(v.content_sha256, 'hex') AS content_sha256,
       count(DISTINCT (v.bucket, v.object_key)) AS keys,
       array_agg(DISTINCT reverify_key_hash(v.bucket, v.object_key)) AS key_hashes,
       array_agg(DISTINCT v.bucket || '/' || v.object_key) AS objects,
       count(DISTINCT v.run_id) AS runs,
       array_agg(DISTINCT v.run_id::text) AS run_ids,
       min(v.created_at) AS first_seen,
       max(coalesce(v.completed_at, v.created_at)) AS last_seen
FROM verifications v
WHERE v.content_sha256 IS NOT NULL
GROUP BY v.content_sha256
HAVING count(DISTINCT (v.bucket, v.object_key)) > 1;
COMMENT ON VIEW duplicate_images IS 'Image contents (SHA-256 of the bytes) stored under more than one key, across all runs: the same selfie under two customers is a fraud signal. keys: distinct bucket/key pairs; objects: those keys (bucket/key); key_hashes: the same, hashed; runs/run_ids: the runs that saw them; first/last seen: when a run first recorded one of them and last finished one.';

-- +goose Down
DROP VIEW duplicate_images;
DROP TABLE run_contents;
DROP INDEX verifications_content_idx;
ALTER TABLE runs DROP COLUMN reuse_since;
ALTER TABLE verifications DROP COLUMN duplicate_of_run, DROP COLUMN duplicate_of, DROP COLUMN content_sha256;
