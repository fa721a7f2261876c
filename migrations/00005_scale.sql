-- Campaigns of any size. Each run's verifications and API calls live in
-- partitions of their own (dropped whole when the run is deleted);
-- per-run counters kept by statement triggers answer progress, listings
-- and the failure threshold without counting rows; and every verification
-- has a sequence number, the stable order in which the feeder dispatches a
-- run's pending objects to the task queue, a window at a time.

-- +goose Up
DROP VIEW review_queue;
DROP VIEW api_usage_daily;
DROP VIEW score_drift;
DROP VIEW latest_verification;
DROP VIEW errors_by_code;
DROP VIEW score_histogram;
DROP VIEW run_summary;
ALTER TABLE reviews DROP CONSTRAINT reviews_run_id_bucket_object_key_fkey;

ALTER TABLE verifications RENAME TO verifications_before_00005;
ALTER INDEX verifications_pkey RENAME TO verifications_before_00005_pkey;
ALTER INDEX verifications_run_status_idx RENAME TO verifications_before_00005_run_status_idx;
ALTER INDEX verifications_object_idx RENAME TO verifications_before_00005_object_idx;
ALTER INDEX verifications_scored_object_idx RENAME TO verifications_before_00005_scored_object_idx;
ALTER TABLE verifications_before_00005 RENAME CONSTRAINT verifications_status_check TO verifications_before_00005_status_check;
ALTER TABLE verifications_before_00005 RENAME CONSTRAINT verifications_liveness_score_check TO verifications_before_00005_score_check;
ALTER TABLE verifications_before_00005 RENAME CONSTRAINT verifications_run_id_fkey TO verifications_before_00005_run_id_fkey;
ALTER TABLE api_calls RENAME TO api_calls_before_00005;
ALTER TABLE api_calls_before_00005 RENAME CONSTRAINT api_calls_outcome_check TO api_calls_before_00005_outcome_check;
ALTER TABLE api_calls_before_00005 RENAME CONSTRAINT api_calls_run_id_fkey TO api_calls_before_00005_run_id_fkey;
ALTER INDEX api_calls_pkey RENAME TO api_calls_before_00005_pkey;
ALTER INDEX api_calls_object_idx RENAME TO api_calls_before_00005_object_idx;
ALTER INDEX api_calls_called_at_idx RENAME TO api_calls_before_00005_called_at_idx;
ALTER INDEX api_calls_transaction_idx RENAME TO api_calls_before_00005_transaction_idx;
ALTER SEQUENCE api_calls_id_seq RENAME TO api_calls_before_00005_id_seq;

ALTER TABLE runs
    ADD COLUMN dispatched_seq  bigint NOT NULL DEFAULT 0,
    ADD COLUMN rate_at         timestamptz,
    ADD COLUMN rate_done       bigint,
    ADD COLUMN rate_per_second double precision;
COMMENT ON COLUMN runs.dispatched_seq IS 'The feeder has handed the task queue every pending object of the run with seq up to this (its high-water mark).';
COMMENT ON COLUMN runs.rate_per_second IS 'Objects finished per second over the last sampling interval (rate_at, rate_done: the sample).';

CREATE TABLE ledger_identity (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    one_row     boolean     NOT NULL DEFAULT true UNIQUE CHECK (one_row)
);
INSERT INTO ledger_identity DEFAULT VALUES;
COMMENT ON TABLE ledger_identity IS 'This ledger''s ID: processes sharing the ledger (and only they) share the feeder''s lease in Redis.';

CREATE SEQUENCE verifications_seq AS bigint CACHE 1000;
COMMENT ON SEQUENCE verifications_seq IS 'Order in which objects are dispatched: ingest order, and a retried object goes to the back.';

CREATE TABLE verifications (
    run_id          uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    bucket          text        NOT NULL,
    object_key      text        NOT NULL,
    object_version  text        NOT NULL DEFAULT '',
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'scored', 'rejected', 'invalid_image', 'not_found', 'failed', 'cancelled')),
    liveness_score  numeric(5, 2) CHECK (liveness_score BETWEEN 0 AND 100),
    transaction_id  text,
    error_code      int,
    message         text,
    attempts        int         NOT NULL DEFAULT 0,
    object_etag     text,
    object_size     bigint,
    duration_ms     int,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    seq             bigint      NOT NULL DEFAULT nextval('verifications_seq'),
    PRIMARY KEY (run_id, bucket, object_key)
) PARTITION BY LIST (run_id);
CREATE INDEX verifications_status_idx ON verifications (status);
CREATE INDEX verifications_pending_idx ON verifications (seq) WHERE status = 'pending';
CREATE INDEX verifications_object_idx ON verifications (bucket, object_key, completed_at DESC);
CREATE INDEX verifications_scored_object_idx ON verifications (bucket, object_key, completed_at DESC) WHERE status = 'scored';

COMMENT ON TABLE verifications IS 'One row per (run, object): pending until the pipeline records its single terminal result. Partitioned by run: one partition per run (verifications_<run id without dashes>).';
COMMENT ON COLUMN verifications.status IS 'pending (not done yet), scored (API returned a score), rejected (API refused the image: 1016/1017/4xx), invalid_image (empty, not an image or too large; never sent), not_found (missing in S3), failed (retries exhausted), cancelled (its run was cancelled or failed before it was sent).';
COMMENT ON COLUMN verifications.liveness_score IS 'result.liveness_score from the API, 0-100; higher means more likely a live person. Set when status = scored.';
COMMENT ON COLUMN verifications.transaction_id IS 'transactionId of the API answer that decided the result (for scored and rejected).';
COMMENT ON COLUMN verifications.error_code IS 'API errorCode (1016 faceImage required, 1017 failed to analyse face), or the HTTP status for other API refusals.';
COMMENT ON COLUMN verifications.message IS 'Why the object ended as it did (or the last retryable error while pending).';
COMMENT ON COLUMN verifications.attempts IS 'Paid API calls made for this object in this run.';
COMMENT ON COLUMN verifications.object_etag IS 'S3 ETag of the bytes that were verified.';
COMMENT ON COLUMN verifications.object_size IS 'Size in bytes of the object that was verified.';
COMMENT ON COLUMN verifications.duration_ms IS 'Time the final attempt took, fetch to commit, in milliseconds.';
COMMENT ON COLUMN verifications.completed_at IS 'When the terminal result was recorded.';
COMMENT ON COLUMN verifications.seq IS 'Dispatch order within the run (verifications_seq); runs.dispatched_seq marks how far the feeder has gone.';

CREATE SEQUENCE api_calls_id_seq AS bigint;
CREATE TABLE api_calls (
    id              bigint      NOT NULL DEFAULT nextval('api_calls_id_seq'),
    run_id          uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    bucket          text        NOT NULL,
    object_key      text        NOT NULL,
    attempt         int         NOT NULL,
    outcome         text        NOT NULL DEFAULT 'in_flight'
                    CHECK (outcome IN ('in_flight', 'scored', 'rejected', 'rate_limited', 'auth', 'transient')),
    transaction_id  text,
    http_status     int,
    error_code      int,
    liveness_score  numeric(5, 2),
    message         text,
    latency_ms      int,
    called_at       timestamptz NOT NULL DEFAULT now(),
    answered_at     timestamptz,
    PRIMARY KEY (run_id, id)
) PARTITION BY LIST (run_id);
ALTER SEQUENCE api_calls_id_seq OWNED BY api_calls.id;
CREATE INDEX api_calls_object_idx ON api_calls (bucket, object_key);
CREATE INDEX api_calls_called_at_idx ON api_calls (called_at);
CREATE INDEX api_calls_transaction_idx ON api_calls (transaction_id) WHERE transaction_id IS NOT NULL;

COMMENT ON TABLE api_calls IS 'Every HTTP call made to the liveness API, recorded before it is sent and completed after: reconcile paid calls with the vendor''s invoice here. Partitioned by run, like verifications.';
COMMENT ON COLUMN api_calls.attempt IS 'Which call this was for the object within the run (1 = first).';
COMMENT ON COLUMN api_calls.outcome IS 'in_flight (sent, answer not recorded: the process died or is still waiting), scored, rejected, rate_limited (429), auth (401/403), transient (5xx, timeout, network, malformed answer).';
COMMENT ON COLUMN api_calls.transaction_id IS 'transactionId the API returned, when it returned one.';
COMMENT ON COLUMN api_calls.http_status IS 'HTTP status of the answer; NULL when no answer arrived.';
COMMENT ON COLUMN api_calls.error_code IS 'errorCode from the answer body (1016, 1017), when present.';
COMMENT ON COLUMN api_calls.latency_ms IS 'Time from sending the request to reading the answer, in milliseconds.';
COMMENT ON COLUMN api_calls.called_at IS 'When the call was recorded, just before it was sent.';
COMMENT ON COLUMN api_calls.answered_at IS 'When its outcome was recorded.';

-- A run's partitions are made empty and then attached, which takes a lock
-- that lets every other run's reads and writes go on.
-- +goose StatementBegin
CREATE FUNCTION reverify_add_run_partitions(run uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    suffix text := replace(run::text, '-', '');
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['verifications', 'api_calls'] LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)%s',
                       t || '_' || suffix, t, CASE WHEN t = 'verifications' THEN ' WITH (fillfactor = 70)' ELSE '' END);
        IF NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = (t || '_' || suffix)::regclass) THEN
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES IN (%L)', t, t || '_' || suffix, run);
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION reverify_add_run_partitions(uuid) IS 'Creates and attaches the verifications and api_calls partitions of a run (idempotent).';
-- +goose StatementBegin
CREATE FUNCTION reverify_drop_run_partitions(run uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    suffix text := replace(run::text, '-', '');
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS %I, %I', 'api_calls_' || suffix, 'verifications_' || suffix);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION reverify_drop_run_partitions(uuid) IS 'Drops the partitions of a run: all its verifications and API calls, at once.';

-- Counters. Each statement adds its changes per (run, status, score band)
-- to a shard picked by the connection, so concurrent writers of one run
-- rarely wait for each other; readers sum the shards.
CREATE TABLE run_counts (
    run_id     uuid     NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    status     text     NOT NULL,
    band       smallint NOT NULL,
    shard      smallint NOT NULL,
    objects    bigint   NOT NULL DEFAULT 0,
    score_sum  numeric  NOT NULL DEFAULT 0,
    score_min  numeric(5, 2),
    score_max  numeric(5, 2),
    PRIMARY KEY (run_id, status, band, shard)
) WITH (fillfactor = 50);
COMMENT ON TABLE run_counts IS 'Objects of each run by status (and, for scored, by score band), kept by triggers on verifications; sum over shard. SELECT status, sum(objects) FROM run_counts WHERE run_id = ... GROUP BY status.';
COMMENT ON COLUMN run_counts.band IS 'Score band of scored objects: 0 = [0,10) ... 9 = [90,100]; -1 for every other status.';
COMMENT ON COLUMN run_counts.score_min IS 'Lowest score ever counted in the row (scores are never taken back: a scored object is never retried).';

CREATE TABLE run_calls (
    run_id  uuid     NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    shard   smallint NOT NULL,
    calls   bigint   NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, shard)
) WITH (fillfactor = 50);
COMMENT ON TABLE run_calls IS 'API calls recorded per run (rows of api_calls), kept by triggers; sum over shard.';

CREATE FUNCTION reverify_score_band(status text, score numeric) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN status = 'scored' AND score IS NOT NULL THEN least(floor(score / 10), 9)::smallint ELSE -1::smallint END
$$;

CREATE FUNCTION reverify_count_shard() RETURNS smallint
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$ SELECT (pg_backend_pid() % 16)::smallint $$;

-- +goose StatementBegin
CREATE FUNCTION verifications_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_counts AS c (run_id, status, band, shard, objects, score_sum, score_min, score_max)
    SELECT run_id, status, reverify_score_band(status, liveness_score), reverify_count_shard(),
           count(*), coalesce(sum(liveness_score), 0), min(liveness_score), max(liveness_score)
    FROM new_rows GROUP BY 1, 2, 3
    ON CONFLICT (run_id, status, band, shard) DO UPDATE SET
        objects = c.objects + excluded.objects, score_sum = c.score_sum + excluded.score_sum,
        score_min = least(c.score_min, excluded.score_min), score_max = greatest(c.score_max, excluded.score_max);
    RETURN NULL;
END
$$;
CREATE FUNCTION verifications_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_counts AS c (run_id, status, band, shard, objects, score_sum, score_min, score_max)
    SELECT run_id, status, band, reverify_count_shard(), sum(d), coalesce(sum(d * liveness_score), 0),
           min(liveness_score) FILTER (WHERE d = 1), max(liveness_score) FILTER (WHERE d = 1)
    FROM (SELECT run_id, status, reverify_score_band(status, liveness_score) AS band, liveness_score, -1 AS d FROM old_rows
          UNION ALL
          SELECT run_id, status, reverify_score_band(status, liveness_score), liveness_score, 1 FROM new_rows) x
    GROUP BY 1, 2, 3
    HAVING sum(d) <> 0
    ON CONFLICT (run_id, status, band, shard) DO UPDATE SET
        objects = c.objects + excluded.objects, score_sum = c.score_sum + excluded.score_sum,
        score_min = least(c.score_min, excluded.score_min), score_max = greatest(c.score_max, excluded.score_max);
    RETURN NULL;
END
$$;
CREATE FUNCTION verifications_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_counts AS c (run_id, status, band, shard, objects, score_sum)
    SELECT run_id, status, reverify_score_band(status, liveness_score), reverify_count_shard(),
           -count(*), -coalesce(sum(liveness_score), 0)
    FROM old_rows GROUP BY 1, 2, 3
    ON CONFLICT (run_id, status, band, shard) DO UPDATE SET
        objects = c.objects + excluded.objects, score_sum = c.score_sum + excluded.score_sum;
    RETURN NULL;
END
$$;
CREATE FUNCTION api_calls_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO run_calls AS c (run_id, shard, calls)
        SELECT run_id, reverify_count_shard(), count(*) FROM new_rows GROUP BY 1
        ON CONFLICT (run_id, shard) DO UPDATE SET calls = c.calls + excluded.calls;
    ELSE
        INSERT INTO run_calls AS c (run_id, shard, calls)
        SELECT run_id, reverify_count_shard(), -count(*) FROM old_rows GROUP BY 1
        ON CONFLICT (run_id, shard) DO UPDATE SET calls = c.calls + excluded.calls;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER verifications_count_insert AFTER INSERT ON verifications
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION verifications_count_insert();
CREATE TRIGGER verifications_count_update AFTER UPDATE ON verifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION verifications_count_update();
CREATE TRIGGER verifications_count_delete AFTER DELETE ON verifications
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION verifications_count_delete();
CREATE TRIGGER api_calls_count_insert AFTER INSERT ON api_calls
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION api_calls_count();
CREATE TRIGGER api_calls_count_delete AFTER DELETE ON api_calls
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION api_calls_count();

-- Existing runs move into partitions of their own; the triggers count them.
SELECT reverify_add_run_partitions(id) FROM runs;
INSERT INTO verifications (run_id, bucket, object_key, object_version, status, liveness_score, transaction_id, error_code,
    message, attempts, object_etag, object_size, duration_ms, created_at, completed_at)
SELECT run_id, bucket, object_key, object_version, status, liveness_score, transaction_id, error_code,
    message, attempts, object_etag, object_size, duration_ms, created_at, completed_at
FROM verifications_before_00005 ORDER BY run_id, created_at, bucket, object_key;
INSERT INTO api_calls (id, run_id, bucket, object_key, attempt, outcome, transaction_id, http_status, error_code,
    liveness_score, message, latency_ms, called_at, answered_at)
SELECT id, run_id, bucket, object_key, attempt, outcome, transaction_id, http_status, error_code,
    liveness_score, message, latency_ms, called_at, answered_at
FROM api_calls_before_00005;
SELECT setval('api_calls_id_seq', coalesce((SELECT max(id) FROM api_calls), 0) + 1, false);
-- Objects of runs already under way were all queued.
UPDATE runs r SET dispatched_seq = coalesce((SELECT max(seq) FROM verifications v WHERE v.run_id = r.id), 0);
DROP TABLE api_calls_before_00005;
DROP TABLE verifications_before_00005;

ALTER TABLE reviews ADD CONSTRAINT reviews_run_id_bucket_object_key_fkey FOREIGN KEY (run_id, bucket, object_key)
    REFERENCES verifications (run_id, bucket, object_key) ON DELETE CASCADE;

CREATE VIEW run_progress AS
SELECT r.id AS run_id, r.status AS run_status, c.status, sum(c.objects)::bigint AS objects
FROM runs r JOIN run_counts c ON c.run_id = r.id
GROUP BY r.id, r.status, c.status HAVING sum(c.objects) <> 0;
COMMENT ON VIEW run_progress IS 'Objects of each run by status, from the counters (no rows are counted).';

CREATE VIEW backlog AS
SELECT coalesce(sum(c.objects), 0)::bigint AS pending_objects
FROM run_counts c JOIN runs r ON r.id = c.run_id
WHERE c.status = 'pending' AND r.status IN ('enqueuing', 'running');
COMMENT ON VIEW backlog IS 'Pending objects of the runs being sent (enqueuing, running): the work the fleet has left, for autoscaling.';

CREATE VIEW run_summary AS
SELECT r.id AS run_id, r.name, r.status, r.priority, r.labels, r.total,
       coalesce(sum(c.objects) FILTER (WHERE c.status <> 'pending'), 0)::bigint AS done,
       coalesce(sum(c.objects) FILTER (WHERE c.status = 'pending'), 0)::bigint AS pending,
       coalesce(sum(c.objects) FILTER (WHERE c.status = 'scored'), 0)::bigint AS scored,
       coalesce(sum(c.objects) FILTER (WHERE c.status = 'rejected'), 0)::bigint AS rejected,
       coalesce(sum(c.objects) FILTER (WHERE c.status = 'invalid_image'), 0)::bigint AS invalid_image,
       coalesce(sum(c.objects) FILTER (WHERE c.status = 'not_found'), 0)::bigint AS not_found,
       coalesce(sum(c.objects) FILTER (WHERE c.status = 'failed'), 0)::bigint AS failed,
       coalesce(sum(c.objects) FILTER (WHERE c.status = 'cancelled'), 0)::bigint AS cancelled,
       min(c.score_min) FILTER (WHERE c.objects > 0) AS score_min,
       p.p10 AS score_p10, p.p50 AS score_p50, p.p90 AS score_p90,
       max(c.score_max) FILTER (WHERE c.objects > 0) AS score_max,
       round(sum(c.score_sum) FILTER (WHERE c.status = 'scored')
             / nullif(sum(c.objects) FILTER (WHERE c.status = 'scored'), 0), 2) AS score_avg,
       (SELECT coalesce(sum(k.calls), 0) FROM run_calls k WHERE k.run_id = r.id)::bigint AS paid_calls,
       r.created_at, r.started_at, r.finished_at,
       round((coalesce(sum(c.objects) FILTER (WHERE c.status <> 'pending'), 0)
              / nullif(extract(epoch FROM coalesce(r.finished_at, now()) - coalesce(r.started_at, r.created_at)), 0))::numeric, 2)
           AS per_second
FROM runs r
LEFT JOIN run_counts c ON c.run_id = r.id
LEFT JOIN LATERAL (
    SELECT round(percentile_cont(0.10) WITHIN GROUP (ORDER BY v.liveness_score)::numeric, 2) AS p10,
           round(percentile_cont(0.50) WITHIN GROUP (ORDER BY v.liveness_score)::numeric, 2) AS p50,
           round(percentile_cont(0.90) WITHIN GROUP (ORDER BY v.liveness_score)::numeric, 2) AS p90
    FROM verifications v WHERE v.run_id = r.id AND v.status = 'scored'
) p ON true
GROUP BY r.id, p.p10, p.p50, p.p90;
COMMENT ON VIEW run_summary IS 'One row per run: counts by status (from the counters), score percentiles (p10/p50/p90, which read the run''s scores), paid API calls and throughput (objects finished per second since the run started).';

CREATE VIEW score_histogram AS
SELECT run_id, band * 10 AS bucket_from, least(band * 10 + 10, 100) AS bucket_to, sum(objects)::bigint AS objects
FROM run_counts WHERE status = 'scored' AND band >= 0
GROUP BY run_id, band HAVING sum(objects) > 0;
COMMENT ON VIEW score_histogram IS 'Scored objects per run in ten score bands: [0,10), [10,20) ... [90,100], from the counters.';

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
DROP VIEW api_usage_daily;
DROP VIEW score_drift;
DROP VIEW latest_verification;
DROP VIEW errors_by_code;
DROP VIEW score_histogram;
DROP VIEW run_summary;
DROP VIEW backlog;
DROP VIEW run_progress;
ALTER TABLE reviews DROP CONSTRAINT reviews_run_id_bucket_object_key_fkey;

CREATE TABLE verifications_flat (LIKE verifications INCLUDING DEFAULTS INCLUDING CONSTRAINTS) WITH (fillfactor = 70);
INSERT INTO verifications_flat SELECT * FROM verifications;
ALTER TABLE verifications_flat DROP COLUMN seq;
CREATE TABLE api_calls_flat (LIKE api_calls INCLUDING CONSTRAINTS);
INSERT INTO api_calls_flat SELECT * FROM api_calls;
DROP TABLE verifications;
DROP TABLE api_calls;
DROP SEQUENCE verifications_seq;
DROP FUNCTION reverify_add_run_partitions(uuid);
DROP FUNCTION reverify_drop_run_partitions(uuid);
DROP FUNCTION verifications_count_insert();
DROP FUNCTION verifications_count_update();
DROP FUNCTION verifications_count_delete();
DROP FUNCTION api_calls_count();
DROP FUNCTION reverify_count_shard();
DROP FUNCTION reverify_score_band(text, numeric);
DROP TABLE run_calls;
DROP TABLE run_counts;
DROP TABLE ledger_identity;
ALTER TABLE runs DROP COLUMN dispatched_seq, DROP COLUMN rate_at, DROP COLUMN rate_done, DROP COLUMN rate_per_second;

ALTER TABLE verifications_flat RENAME TO verifications;
ALTER TABLE verifications ADD PRIMARY KEY (run_id, bucket, object_key);
ALTER TABLE verifications ADD FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE CASCADE;
CREATE INDEX verifications_run_status_idx ON verifications (run_id, status);
CREATE INDEX verifications_object_idx ON verifications (bucket, object_key, completed_at DESC);
CREATE INDEX verifications_scored_object_idx ON verifications (bucket, object_key, completed_at DESC) WHERE status = 'scored';
ALTER TABLE api_calls_flat RENAME TO api_calls;
ALTER TABLE api_calls ALTER COLUMN outcome SET DEFAULT 'in_flight', ALTER COLUMN called_at SET DEFAULT now();
ALTER TABLE api_calls ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('api_calls', 'id'), coalesce((SELECT max(id) FROM api_calls), 0) + 1, false);
ALTER TABLE api_calls ADD PRIMARY KEY (id);
ALTER TABLE api_calls ADD FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE CASCADE;
CREATE INDEX api_calls_object_idx ON api_calls (run_id, bucket, object_key);
CREATE INDEX api_calls_called_at_idx ON api_calls (called_at);
CREATE INDEX api_calls_transaction_idx ON api_calls (transaction_id) WHERE transaction_id IS NOT NULL;
ALTER TABLE reviews ADD CONSTRAINT reviews_run_id_bucket_object_key_fkey FOREIGN KEY (run_id, bucket, object_key)
    REFERENCES verifications (run_id, bucket, object_key) ON DELETE CASCADE;

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
CREATE VIEW score_histogram AS
SELECT run_id, (width_bucket(liveness_score, 0, 100.0001, 10) - 1) * 10 AS bucket_from,
       least((width_bucket(liveness_score, 0, 100.0001, 10)) * 10, 100) AS bucket_to,
       count(*) AS objects
FROM verifications WHERE status = 'scored'
GROUP BY run_id, 2, 3;
CREATE VIEW errors_by_code AS
SELECT run_id, status, error_code, coalesce(message, '') AS message, count(*) AS objects,
       min(completed_at) AS first_seen, max(completed_at) AS last_seen
FROM verifications WHERE status IN ('rejected', 'invalid_image', 'not_found', 'failed')
GROUP BY run_id, status, error_code, coalesce(message, '');
CREATE VIEW latest_verification AS
SELECT DISTINCT ON (v.bucket, v.object_key)
       v.bucket, v.object_key, v.run_id, r.name AS run_name, v.status, v.liveness_score,
       v.transaction_id, v.error_code, v.message, v.completed_at
FROM verifications v JOIN runs r ON r.id = v.run_id
WHERE v.status NOT IN ('pending', 'cancelled')
ORDER BY v.bucket, v.object_key, v.completed_at DESC;
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
