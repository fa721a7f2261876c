-- The pipeline's ledger: runs, one verification row per (run, object), and
-- every paid call to the liveness API. Users query these with SQL, so the
-- names and meanings here are a public interface.

-- +goose Up
CREATE TABLE runs (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text        NOT NULL,
    source        jsonb       NOT NULL,
    status        text        NOT NULL DEFAULT 'enqueuing'
                  CHECK (status IN ('enqueuing', 'running', 'completed', 'cancelled', 'failed')),
    options       jsonb       NOT NULL DEFAULT '{}',
    total         bigint      NOT NULL DEFAULT 0,
    queue         text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz
);
CREATE INDEX runs_active_idx ON runs (created_at) WHERE status IN ('enqueuing', 'running');

COMMENT ON TABLE runs IS 'One re-verification campaign: a source of objects sent through the liveness API.';
COMMENT ON COLUMN runs.id IS 'Run ID printed by `reverify enqueue`.';
COMMENT ON COLUMN runs.name IS 'Human name of the run (--name), defaults to the source.';
COMMENT ON COLUMN runs.source IS 'Where the objects came from: {"kind":"prefix","bucket":..,"prefix":..} or {"kind":"manifest",..}.';
COMMENT ON COLUMN runs.status IS 'enqueuing -> running -> completed | cancelled | failed.';
COMMENT ON COLUMN runs.options IS 'Options the run was created with (filters, limits).';
COMMENT ON COLUMN runs.total IS 'Number of objects recorded for the run (one verification row each).';
COMMENT ON COLUMN runs.queue IS 'asynq queue the run''s tasks were sent to.';
COMMENT ON COLUMN runs.started_at IS 'When enqueuing finished and the run began running.';
COMMENT ON COLUMN runs.finished_at IS 'When the last object reached a terminal status.';

-- Ranks let a write never replace a terminal result with a worse one.
CREATE FUNCTION verification_status_rank(status text) RETURNS int
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
COMMENT ON FUNCTION verification_status_rank(text) IS 'Order of verification statuses: a result is only replaced by one of higher rank.';

CREATE TABLE verifications (
    run_id          uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    bucket          text        NOT NULL,
    object_key      text        NOT NULL,
    object_version  text        NOT NULL DEFAULT '',
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'scored', 'rejected', 'invalid_image', 'not_found', 'failed')),
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
    PRIMARY KEY (run_id, bucket, object_key)
);
CREATE INDEX verifications_run_status_idx ON verifications (run_id, status);
CREATE INDEX verifications_object_idx ON verifications (bucket, object_key, completed_at DESC);

COMMENT ON TABLE verifications IS 'One row per (run, object): pending until the pipeline records its single terminal result.';
COMMENT ON COLUMN verifications.status IS 'pending (not done yet), scored (API returned a score), rejected (API refused the image: 1016/1017/4xx), invalid_image (empty, not an image or too large; never sent), not_found (missing in S3), failed (retries exhausted).';
COMMENT ON COLUMN verifications.liveness_score IS 'result.liveness_score from the API, 0-100; higher means more likely a live person. Set when status = scored.';
COMMENT ON COLUMN verifications.transaction_id IS 'transactionId of the API answer that decided the result (for scored and rejected).';
COMMENT ON COLUMN verifications.error_code IS 'API errorCode (1016 faceImage required, 1017 failed to analyse face), or the HTTP status for other API refusals.';
COMMENT ON COLUMN verifications.message IS 'Why the object ended as it did (or the last retryable error while pending).';
COMMENT ON COLUMN verifications.attempts IS 'Paid API calls made for this object in this run.';
COMMENT ON COLUMN verifications.object_etag IS 'S3 ETag of the bytes that were verified.';
COMMENT ON COLUMN verifications.object_size IS 'Size in bytes of the object that was verified.';
COMMENT ON COLUMN verifications.duration_ms IS 'Time the final attempt took, fetch to commit, in milliseconds.';
COMMENT ON COLUMN verifications.completed_at IS 'When the terminal result was recorded.';

CREATE TABLE api_calls (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    answered_at     timestamptz
);
CREATE INDEX api_calls_object_idx ON api_calls (run_id, bucket, object_key);
CREATE INDEX api_calls_called_at_idx ON api_calls (called_at);
CREATE INDEX api_calls_transaction_idx ON api_calls (transaction_id) WHERE transaction_id IS NOT NULL;

COMMENT ON TABLE api_calls IS 'Every HTTP call made to the liveness API, recorded before it is sent and completed after: reconcile paid calls with the vendor''s invoice here.';
COMMENT ON COLUMN api_calls.attempt IS 'Which call this was for the object within the run (1 = first).';
COMMENT ON COLUMN api_calls.outcome IS 'in_flight (sent, answer not recorded: the process died or is still waiting), scored, rejected, rate_limited (429), auth (401/403), transient (5xx, timeout, network, malformed answer).';
COMMENT ON COLUMN api_calls.transaction_id IS 'transactionId the API returned, when it returned one.';
COMMENT ON COLUMN api_calls.http_status IS 'HTTP status of the answer; NULL when no answer arrived.';
COMMENT ON COLUMN api_calls.error_code IS 'errorCode from the answer body (1016, 1017), when present.';
COMMENT ON COLUMN api_calls.latency_ms IS 'Time from sending the request to reading the answer, in milliseconds.';
COMMENT ON COLUMN api_calls.called_at IS 'When the call was recorded, just before it was sent.';
COMMENT ON COLUMN api_calls.answered_at IS 'When its outcome was recorded.';

-- +goose Down
DROP TABLE api_calls;
DROP TABLE verifications;
DROP FUNCTION verification_status_rank(text);
DROP TABLE runs;
