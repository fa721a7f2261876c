-- Compliance: an append-only audit trail of who did what, from where (run
-- actions, image views, review decisions, erasures and prunes), and what
-- erasure and retention need: API calls whose key was replaced by its
-- hash, runs whose objects were pruned, and an index to find a data
-- subject's reviews. The audit log names objects by bucket and key hash
-- only, so erasing a subject never has to rewrite it.

-- +goose Up
CREATE TABLE audit_log (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor     text        NOT NULL CHECK (actor <> ''),
    source    text        NOT NULL CHECK (source IN ('cli', 'dashboard', 'scheduler')),
    action    text        NOT NULL CHECK (action <> ''),
    run_id    uuid,
    bucket    text,
    key_hash  text        CHECK (key_hash ~ '^[0-9a-f]{16}$'),
    detail    jsonb       NOT NULL DEFAULT '{}',
    remote    text        NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_run_idx ON audit_log (run_id, at) WHERE run_id IS NOT NULL;
CREATE INDEX audit_log_object_idx ON audit_log (key_hash, at) WHERE key_hash IS NOT NULL;
CREATE INDEX audit_log_actor_idx ON audit_log (actor, at);

COMMENT ON TABLE audit_log IS 'Append-only trail of who did what and from where: run actions (CLI, dashboard, scheduler), image views, review decisions, erasures and prunes. UPDATE, DELETE and TRUNCATE are refused by triggers.';
COMMENT ON COLUMN audit_log.at IS 'When it happened (UTC in every report).';
COMMENT ON COLUMN audit_log.actor IS 'Who: $REVERIFY_ACTOR or user@host for the CLI, the authenticated dashboard user or token name, scheduler:<name>.';
COMMENT ON COLUMN audit_log.source IS 'cli, dashboard or scheduler.';
COMMENT ON COLUMN audit_log.action IS 'run.create, run.confirm, run.pause, run.resume, run.cancel, run.fail, run.retry, run.priority, run.delete, image.view, review.decide, report.write, subject.erase, run.prune.';
COMMENT ON COLUMN audit_log.run_id IS 'The run acted on (not a foreign key: the entry outlives the run).';
COMMENT ON COLUMN audit_log.bucket IS 'Bucket of the object acted on, if any.';
COMMENT ON COLUMN audit_log.key_hash IS 'The object''s key hash (first 8 bytes of sha256(bucket/key), hex): never the key, so an erasure leaves the entry as it is.';
COMMENT ON COLUMN audit_log.detail IS 'What else there is to say: the reason, a decision, counts of what an erasure removed.';
COMMENT ON COLUMN audit_log.remote IS 'Where from: the dashboard client''s address, or the CLI''s host.';

-- +goose StatementBegin
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION audit_log_refuse_change() IS 'Trigger: refuses UPDATE, DELETE and TRUNCATE of audit_log.';
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

CREATE VIEW audit_report AS
SELECT a.id, to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at_utc,
       a.actor, a.source, a.action, a.run_id, r.name AS run_name, a.bucket, a.key_hash,
       a.detail, a.remote, a.at
FROM audit_log a LEFT JOIN runs r ON r.id = a.run_id;
COMMENT ON VIEW audit_report IS 'The audit log for people: time in UTC (at_utc, with Z), the run''s name when the run still exists. SELECT * FROM audit_report WHERE action = ''image.view'' ORDER BY at DESC.';

-- The key hash reverify uses everywhere (reverify.KeyHash).
CREATE FUNCTION reverify_key_hash(bucket text, object_key text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT encode(substr(sha256(convert_to(bucket || '/' || object_key, 'UTF8')), 1, 8), 'hex')
$$;
COMMENT ON FUNCTION reverify_key_hash(text, text) IS 'First 8 bytes of sha256(bucket/key), hex: how logs, errors, the audit log and erased API calls name an object.';

ALTER TABLE api_calls ADD COLUMN key_hashed boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN api_calls.key_hashed IS 'true: the data subject was erased (reverify erase) or the run pruned; object_key holds reverify_key_hash(bucket, key) instead of the key, kept as invoice evidence.';

ALTER TABLE runs ADD COLUMN pruned_at timestamptz;
COMMENT ON COLUMN runs.pruned_at IS 'When reverify prune removed the run''s objects and reviews (its API calls stay, keys hashed).';

CREATE INDEX reviews_subject_idx ON reviews (bucket, object_key);

-- Pruning drops a run's objects whole (its partition), whatever their
-- number, and leaves an empty partition so the run stays well formed.
-- +goose StatementBegin
CREATE FUNCTION reverify_prune_run_objects(run uuid) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    t text;
BEGIN
    SELECT coalesce(sum(objects), 0) INTO n FROM run_counts WHERE run_id = run;
    DELETE FROM reviews WHERE run_id = run;
    t := 'verifications_' || replace(run::text, '-', '');
    IF to_regclass(t) IS NOT NULL THEN
        EXECUTE format('ALTER TABLE verifications DETACH PARTITION %I', t);
        EXECUTE format('DROP TABLE %I', t);
    END IF;
    PERFORM reverify_add_run_partitions(run);
    DELETE FROM run_counts WHERE run_id = run;
    RETURN n;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION reverify_prune_run_objects(uuid) IS 'Removes every object (verifications row) and review of a run at once and zeroes its counters; returns how many objects it had.';

-- +goose Down
DROP FUNCTION reverify_prune_run_objects(uuid);
DROP INDEX reviews_subject_idx;
ALTER TABLE runs DROP COLUMN pruned_at;
ALTER TABLE api_calls DROP COLUMN key_hashed;
DROP FUNCTION reverify_key_hash(text, text);
DROP VIEW audit_report;
DROP TABLE audit_log;
DROP FUNCTION audit_log_refuse_change();
