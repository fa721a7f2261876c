-- Campaigns: the run lifecycle (confirmation, pause, cancel, failure
-- threshold), labels, priority, a status history with who and why, resumable
-- planning, and the reporting views analysts query with psql.

-- +goose Up
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN
    ('awaiting_confirmation', 'enqueuing', 'running', 'paused', 'completed', 'cancelled', 'failed'));
COMMENT ON COLUMN runs.status IS 'awaiting_confirmation -> enqueuing -> running -> completed | cancelled | failed; paused in between (running <-> paused). See run_status_history for who changed it and why.';

ALTER TABLE runs
    ADD COLUMN labels         jsonb   NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
    ADD COLUMN priority       text    NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low')),
    ADD COLUMN fail_percent   numeric(5, 2) NOT NULL DEFAULT 50 CHECK (fail_percent BETWEEN 0 AND 100),
    ADD COLUMN fail_min_done  bigint  NOT NULL DEFAULT 1000 CHECK (fail_min_done >= 0),
    ADD COLUMN fail_count     bigint  CHECK (fail_count > 0),
    ADD COLUMN report_to      text,
    ADD COLUMN trigger_key    text    UNIQUE,
    ADD COLUMN plan_token     text,
    ADD COLUMN planned_at     timestamptz,
    ADD COLUMN status_changed_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX runs_labels_idx ON runs USING gin (labels);
DROP INDEX runs_active_idx;
CREATE INDEX runs_active_idx ON runs (created_at) WHERE status IN ('enqueuing', 'running', 'paused');

COMMENT ON COLUMN runs.labels IS 'Free-form key/value labels (--label team=fraud); search with labels @> ''{"team":"fraud"}''.';
COMMENT ON COLUMN runs.priority IS 'high, normal or low: which weighted asynq queue the run''s tasks go to (queue, queue-high, queue-low).';
COMMENT ON COLUMN runs.fail_percent IS 'The run fails on its own when more than this percentage of its finished objects failed (failed or not_found) ...';
COMMENT ON COLUMN runs.fail_min_done IS '... once at least this many objects are finished (S3 Batch Operations: 50% of 1,000).';
COMMENT ON COLUMN runs.fail_count IS 'When set, the run fails as soon as this many objects failed (failed or not_found), whatever the percentage.';
COMMENT ON COLUMN runs.report_to IS 'Where the completion report is written when the run ends: a local directory or s3://bucket/prefix. NULL = only on demand (reverify runs report).';
COMMENT ON COLUMN runs.trigger_key IS 'Idempotency key of what created the run (a scheduler firing''s task ID), so a retried firing does not create a second run.';
COMMENT ON COLUMN runs.plan_token is 'ListObjectsV2 continuation token of the next page to list when the listing runs as a run:plan task; a crashed planner resumes here.';
COMMENT ON COLUMN runs.planned_at IS 'When a run:plan task finished listing the source.';
COMMENT ON COLUMN runs.status_changed_at IS 'When status last changed.';

CREATE TABLE run_status_history (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    from_status text,
    to_status   text        NOT NULL,
    actor       text        NOT NULL,
    reason      text,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX run_status_history_run_idx ON run_status_history (run_id, changed_at);
COMMENT ON TABLE run_status_history IS 'Every status change of every run, with who made it and why (written by a trigger on runs).';
COMMENT ON COLUMN run_status_history.from_status IS 'Status before the change; NULL when the run was created.';
COMMENT ON COLUMN run_status_history.to_status IS 'Status after the change.';
COMMENT ON COLUMN run_status_history.actor IS 'Who changed it: user@host for the CLI, reverify-worker, scheduler:<name>, or the database user for manual SQL.';
COMMENT ON COLUMN run_status_history.reason IS 'Why, as given with --reason or by the system (e.g. the failure threshold that was crossed).';

-- The application names the actor and the reason with set_config(..., true)
-- in the changing transaction; a manual UPDATE is attributed to the database user.
-- +goose StatementBegin
CREATE FUNCTION runs_record_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.status IS NOT DISTINCT FROM OLD.status THEN
            RETURN NEW;
        END IF;
        previous := OLD.status;
        NEW.status_changed_at := now();
    END IF;
    INSERT INTO run_status_history (run_id, from_status, to_status, actor, reason)
    VALUES (NEW.id, previous, NEW.status,
            coalesce(nullif(current_setting('reverify.actor', true), ''), session_user),
            nullif(current_setting('reverify.reason', true), ''));
    RETURN NEW;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION runs_record_status() IS 'Trigger: records each run status change in run_status_history.';
CREATE TRIGGER runs_status_history_update BEFORE UPDATE OF status ON runs
    FOR EACH ROW EXECUTE FUNCTION runs_record_status();
CREATE TRIGGER runs_status_history_insert AFTER INSERT ON runs
    FOR EACH ROW EXECUTE FUNCTION runs_record_status();
INSERT INTO run_status_history (run_id, from_status, to_status, actor, reason, changed_at)
SELECT id, NULL, status, 'migration', 'history starts with migration 00002', created_at FROM runs;

ALTER TABLE verifications DROP CONSTRAINT verifications_status_check;
ALTER TABLE verifications ADD CONSTRAINT verifications_status_check CHECK (status IN
    ('pending', 'scored', 'rejected', 'invalid_image', 'not_found', 'failed', 'cancelled'));
COMMENT ON COLUMN verifications.status IS 'pending (not done yet), scored (API returned a score), rejected (API refused the image: 1016/1017/4xx), invalid_image (empty, not an image or too large; never sent), not_found (missing in S3), failed (retries exhausted), cancelled (its run was cancelled or failed before it was sent).';

-- cancelled ranks with not_found: only an answer of a call already paid for
-- (rejected, scored) replaces it.
CREATE OR REPLACE FUNCTION verification_status_rank(status text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE status
        WHEN 'pending'       THEN 0
        WHEN 'failed'        THEN 1
        WHEN 'cancelled'     THEN 2
        WHEN 'not_found'     THEN 2
        WHEN 'invalid_image' THEN 2
        WHEN 'rejected'      THEN 3
        WHEN 'scored'        THEN 4
    END
$$;

CREATE INDEX verifications_scored_object_idx ON verifications (bucket, object_key, completed_at DESC)
    WHERE status = 'scored';

CREATE VIEW run_summary AS
SELECT r.id AS run_id, r.name, r.status, r.priority, r.labels, r.total,
       count(v.*) FILTER (WHERE v.status <> 'pending') AS done,
       count(v.*) FILTER (WHERE v.status = 'pending') AS pending,
       count(v.*) FILTER (WHERE v.status = 'scored') AS scored,
       count(v.*) FILTER (WHERE v.status = 'rejected') AS rejected,
       count(v.*) FILTER (WHERE v.status = 'invalid_image') AS invalid_image,
       count(v.*) FILTER (WHERE v.status = 'not_found') AS not_found,
       count(v.*) FILTER (WHERE v.status = 'failed') AS failed,
       count(v.*) FILTER (WHERE v.status = 'cancelled') AS cancelled,
       round(min(v.liveness_score), 2) AS score_min,
       round(percentile_cont(0.10) WITHIN GROUP (ORDER BY v.liveness_score)::numeric, 2) AS score_p10,
       round(percentile_cont(0.50) WITHIN GROUP (ORDER BY v.liveness_score)::numeric, 2) AS score_p50,
       round(percentile_cont(0.90) WITHIN GROUP (ORDER BY v.liveness_score)::numeric, 2) AS score_p90,
       round(max(v.liveness_score), 2) AS score_max,
       round(avg(v.liveness_score), 2) AS score_avg,
       (SELECT count(*) FROM api_calls c WHERE c.run_id = r.id) AS paid_calls,
       r.created_at, r.started_at, r.finished_at,
       round((count(v.*) FILTER (WHERE v.status <> 'pending')
              / nullif(extract(epoch FROM coalesce(r.finished_at, now()) - coalesce(r.started_at, r.created_at)), 0))::numeric, 2)
           AS per_second
FROM runs r LEFT JOIN verifications v ON v.run_id = r.id
GROUP BY r.id;
COMMENT ON VIEW run_summary IS 'One row per run: counts by status, score percentiles (p10/p50/p90), paid API calls and throughput (objects finished per second since the run started).';

CREATE VIEW score_histogram AS
SELECT run_id, (width_bucket(liveness_score, 0, 100.0001, 10) - 1) * 10 AS bucket_from,
       least((width_bucket(liveness_score, 0, 100.0001, 10)) * 10, 100) AS bucket_to,
       count(*) AS objects
FROM verifications WHERE status = 'scored'
GROUP BY run_id, 2, 3;
COMMENT ON VIEW score_histogram IS 'Scored objects per run in ten score bands: [0,10), [10,20) ... [90,100].';

CREATE VIEW errors_by_code AS
SELECT run_id, status, error_code, coalesce(message, '') AS message, count(*) AS objects,
       min(completed_at) AS first_seen, max(completed_at) AS last_seen
FROM verifications WHERE status IN ('rejected', 'invalid_image', 'not_found', 'failed')
GROUP BY run_id, status, error_code, coalesce(message, '');
COMMENT ON VIEW errors_by_code IS 'Objects that did not score, per run, status, API error code (1016, 1017 or the HTTP status) and message.';

CREATE VIEW latest_verification AS
SELECT DISTINCT ON (v.bucket, v.object_key)
       v.bucket, v.object_key, v.run_id, r.name AS run_name, v.status, v.liveness_score,
       v.transaction_id, v.error_code, v.message, v.completed_at
FROM verifications v JOIN runs r ON r.id = v.run_id
WHERE v.status NOT IN ('pending', 'cancelled')
ORDER BY v.bucket, v.object_key, v.completed_at DESC;
COMMENT ON VIEW latest_verification IS 'The newest finished result of each object across all runs (pending and cancelled rows are not results).';

CREATE VIEW score_drift AS
SELECT v.run_id, v.bucket, v.object_key, v.liveness_score AS score, prev.liveness_score AS previous_score,
       v.liveness_score - prev.liveness_score AS delta, prev.run_id AS previous_run_id,
       v.completed_at, prev.completed_at AS previous_completed_at
FROM verifications v
JOIN LATERAL (
    SELECT p.run_id, p.liveness_score, p.completed_at FROM verifications p
    WHERE p.bucket = v.bucket AND p.object_key = v.object_key AND p.status = 'scored'
      AND p.run_id <> v.run_id AND p.completed_at < v.completed_at
    ORDER BY p.completed_at DESC LIMIT 1
) prev ON true
WHERE v.status = 'scored';
COMMENT ON VIEW score_drift IS 'Per scored object: this run''s score against the same object''s previous score in an earlier run (delta < 0: the object now looks less live, e.g. after a vendor model change).';

CREATE VIEW api_usage_daily AS
SELECT (date_trunc('day', called_at AT TIME ZONE 'UTC'))::date AS day_utc,
       count(*) AS calls,
       count(*) FILTER (WHERE outcome IN ('scored', 'rejected')) AS analysed,
       count(*) FILTER (WHERE outcome = 'rate_limited') AS rate_limited,
       count(*) FILTER (WHERE outcome = 'auth') AS auth_refused,
       count(*) FILTER (WHERE outcome = 'transient') AS transient,
       count(*) FILTER (WHERE outcome = 'in_flight') AS outcome_unknown,
       count(DISTINCT transaction_id) AS transactions,
       round(avg(latency_ms)) AS avg_latency_ms
FROM api_calls GROUP BY 1;
COMMENT ON VIEW api_usage_daily IS 'Calls to the liveness API per UTC day, by outcome, to reconcile with the vendor''s invoice (which counts transactions).';

-- +goose Down
DROP VIEW api_usage_daily;
DROP VIEW score_drift;
DROP VIEW latest_verification;
DROP VIEW errors_by_code;
DROP VIEW score_histogram;
DROP VIEW run_summary;
DROP INDEX verifications_scored_object_idx;
UPDATE verifications SET status = 'failed' WHERE status = 'cancelled';
ALTER TABLE verifications DROP CONSTRAINT verifications_status_check;
ALTER TABLE verifications ADD CONSTRAINT verifications_status_check CHECK (status IN
    ('pending', 'scored', 'rejected', 'invalid_image', 'not_found', 'failed'));
CREATE OR REPLACE FUNCTION verification_status_rank(status text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE status
        WHEN 'pending'       THEN 0
        WHEN 'failed'        THEN 1
        WHEN 'not_found'     THEN 2
        WHEN 'invalid_image' THEN 2
        WHEN 'rejected'      THEN 3
        WHEN 'scored'        THEN 4
    END
$$;
DROP TRIGGER runs_status_history_insert ON runs;
DROP TRIGGER runs_status_history_update ON runs;
DROP FUNCTION runs_record_status();
DROP TABLE run_status_history;
UPDATE runs SET status = 'running' WHERE status = 'paused';
UPDATE runs SET status = 'cancelled' WHERE status = 'awaiting_confirmation';
DROP INDEX runs_active_idx;
DROP INDEX runs_labels_idx;
ALTER TABLE runs DROP COLUMN labels, DROP COLUMN priority, DROP COLUMN fail_percent, DROP COLUMN fail_min_done,
    DROP COLUMN fail_count, DROP COLUMN report_to, DROP COLUMN trigger_key, DROP COLUMN plan_token,
    DROP COLUMN planned_at, DROP COLUMN status_changed_at;
CREATE INDEX runs_active_idx ON runs (created_at) WHERE status IN ('enqueuing', 'running');
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN ('enqueuing', 'running', 'completed', 'cancelled', 'failed'));
COMMENT ON COLUMN runs.status IS 'enqueuing -> running -> completed | cancelled | failed.';
