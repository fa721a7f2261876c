-- Two counts of calls, named once and used everywhere (docs/reporting.md,
-- "API calls and billable answers"):
--   api_calls         every call made to the liveness API: a row of
--                     api_calls, whatever its outcome (429, 401, 5xx and
--                     calls still in flight included);
--   billable_answers  answers that carry a transaction ID: what the vendor
--                     bills and names on its invoice.
-- The per-run counter learns the second; run_summary and api_usage_daily
-- expose both under those names (replacing paid_calls, calls, analysed and
-- transactions, which each meant one or the other). An index finds calls
-- still in flight, for the alert on calls whose outcome stays unknown.

-- +goose Up
ALTER TABLE run_calls ADD COLUMN billable bigint NOT NULL DEFAULT 0;
COMMENT ON TABLE run_calls IS 'Per run, kept by triggers on api_calls; sum over shard. calls: API calls made (rows of api_calls); billable: answers with a transaction ID.';

INSERT INTO run_calls AS c (run_id, shard, billable)
SELECT run_id, 0, count(*) FROM api_calls WHERE transaction_id IS NOT NULL GROUP BY run_id
ON CONFLICT (run_id, shard) DO UPDATE SET billable = c.billable + excluded.billable;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION api_calls_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO run_calls AS c (run_id, shard, calls, billable)
        SELECT run_id, reverify_count_shard(), count(*), count(transaction_id) FROM new_rows GROUP BY 1
        ON CONFLICT (run_id, shard) DO UPDATE SET calls = c.calls + excluded.calls, billable = c.billable + excluded.billable;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO run_calls AS c (run_id, shard, billable)
        SELECT run_id, reverify_count_shard(), sum(d)
        FROM (SELECT run_id, -1 AS d FROM old_rows WHERE transaction_id IS NOT NULL
              UNION ALL
              SELECT run_id, 1 FROM new_rows WHERE transaction_id IS NOT NULL) x
        GROUP BY 1 HAVING sum(d) <> 0
        ON CONFLICT (run_id, shard) DO UPDATE SET billable = c.billable + excluded.billable;
    ELSE
        INSERT INTO run_calls AS c (run_id, shard, calls, billable)
        SELECT run_id, reverify_count_shard(), -count(*), -count(transaction_id) FROM old_rows GROUP BY 1
        ON CONFLICT (run_id, shard) DO UPDATE SET calls = c.calls + excluded.calls, billable = c.billable + excluded.billable;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER api_calls_count_update AFTER UPDATE ON api_calls
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION api_calls_count();

CREATE INDEX api_calls_in_flight_idx ON api_calls (called_at) WHERE outcome = 'in_flight';

DROP VIEW run_summary;
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
       k.api_calls, k.billable_answers,
       r.created_at, r.started_at, r.finished_at,
       round((coalesce(sum(c.objects) FILTER (WHERE c.status <> 'pending'), 0)
              / nullif(extract(epoch FROM coalesce(r.finished_at, now()) - coalesce(r.started_at, r.created_at)), 0))::numeric, 2)
           AS per_second
FROM runs r
LEFT JOIN run_counts c ON c.run_id = r.id
LEFT JOIN LATERAL (
    SELECT coalesce(sum(x.calls), 0)::bigint AS api_calls, coalesce(sum(x.billable), 0)::bigint AS billable_answers
    FROM run_calls x WHERE x.run_id = r.id
) k ON true
LEFT JOIN LATERAL (
    SELECT round(percentile_cont(0.10) WITHIN GROUP (ORDER BY v.liveness_score)::numeric, 2) AS p10,
           round(percentile_cont(0.50) WITHIN GROUP (ORDER BY v.liveness_score)::numeric, 2) AS p50,
           round(percentile_cont(0.90) WITHIN GROUP (ORDER BY v.liveness_score)::numeric, 2) AS p90
    FROM verifications v WHERE v.run_id = r.id AND v.status = 'scored'
) p ON true
GROUP BY r.id, k.api_calls, k.billable_answers, p.p10, p.p50, p.p90;
COMMENT ON VIEW run_summary IS 'One row per run: counts by status (from the counters), score percentiles (p10/p50/p90, which read the run''s scores), API calls made and billable answers, and throughput (objects finished per second since the run started).';
COMMENT ON COLUMN run_summary.api_calls IS 'API calls made for the run: every row of api_calls, whatever its outcome (429, 401/403, 5xx and calls in flight included).';
COMMENT ON COLUMN run_summary.billable_answers IS 'Answers with a transaction ID: what the vendor bills.';

DROP VIEW api_usage_daily;
CREATE VIEW api_usage_daily AS
SELECT (date_trunc('day', called_at AT TIME ZONE 'UTC'))::date AS day_utc,
       count(*) AS api_calls,
       count(transaction_id) AS billable_answers,
       count(*) FILTER (WHERE outcome = 'scored') AS scored,
       count(*) FILTER (WHERE outcome = 'rejected') AS rejected,
       count(*) FILTER (WHERE outcome = 'rate_limited') AS rate_limited,
       count(*) FILTER (WHERE outcome = 'auth') AS auth_refused,
       count(*) FILTER (WHERE outcome = 'transient') AS transient,
       count(*) FILTER (WHERE outcome = 'in_flight') AS outcome_unknown,
       round(avg(latency_ms)) AS avg_latency_ms
FROM api_calls GROUP BY 1;
COMMENT ON VIEW api_usage_daily IS 'Calls to the liveness API per UTC day: API calls made, billable answers (with a transaction ID, what the vendor''s invoice counts), and calls by outcome.';
COMMENT ON COLUMN api_usage_daily.api_calls IS 'API calls made that day, whatever their outcome.';
COMMENT ON COLUMN api_usage_daily.billable_answers IS 'Answers with a transaction ID: what the vendor bills.';

-- +goose Down
DROP VIEW api_usage_daily;
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

DROP VIEW run_summary;
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

DROP INDEX api_calls_in_flight_idx;
DROP TRIGGER api_calls_count_update ON api_calls;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION api_calls_count() RETURNS trigger LANGUAGE plpgsql AS $$
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
ALTER TABLE run_calls DROP COLUMN billable;
COMMENT ON TABLE run_calls IS 'API calls recorded per run (rows of api_calls), kept by triggers; sum over shard.';
