-- A run's content claims (run_contents: one row per distinct image the
-- run fetched) are partitioned by run like its objects and API calls, and
-- go with them: deleting a run of 10M images drops its claims' partition at
-- once instead of deleting 10M rows through a cascade. The partition is
-- made with the run, so, as for verifications (00008), no foreign key
-- checks each claim against runs.

-- +goose Up
ALTER TABLE run_contents RENAME TO run_contents_before_00015;
ALTER INDEX run_contents_pkey RENAME TO run_contents_before_00015_pkey;
ALTER INDEX run_contents_subject_idx RENAME TO run_contents_before_00015_subject_idx;

CREATE TABLE run_contents (
    run_id      uuid        NOT NULL,
    sha256      bytea       NOT NULL CHECK (octet_length(sha256) = 32),
    bucket      text        NOT NULL,
    object_key  text        NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, sha256)
) PARTITION BY LIST (run_id);
COMMENT ON TABLE run_contents IS 'Which object of a run owns each distinct content (SHA-256): the owner is analysed, every other object with the same bytes takes its result. A claim passes to a copy when the owner ends without an answer (failed, cancelled, not found) or its bytes changed. Partitioned by run (run_contents_<run id without dashes>), dropped with the run.';
COMMENT ON COLUMN run_contents.claimed_at IS 'When the current owner claimed the content.';

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION reverify_add_run_partitions(run uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    suffix text := replace(run::text, '-', '');
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['verifications', 'api_calls', 'run_contents'] LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)%s',
                       t || '_' || suffix, t, CASE WHEN t = 'verifications' THEN ' WITH (fillfactor = 70)' ELSE '' END);
        IF NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = (t || '_' || suffix)::regclass) THEN
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES IN (%L)', t, t || '_' || suffix, run);
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION reverify_add_run_partitions(uuid) IS 'Creates and attaches the verifications, api_calls and run_contents partitions of a run (idempotent).';

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION reverify_drop_run_partitions(run uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    suffix text := replace(run::text, '-', '');
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['verifications', 'api_calls', 'run_contents'] LOOP
        IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(t || '_' || suffix)) THEN
            EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', t, t || '_' || suffix);
        END IF;
        EXECUTE format('DROP TABLE IF EXISTS %I', t || '_' || suffix);
    END LOOP;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION reverify_drop_run_partitions(uuid) IS 'Drops the partitions of a run: all its objects, API calls and content claims, at once.';

SELECT reverify_add_run_partitions(id) FROM runs;
INSERT INTO run_contents (run_id, sha256, bucket, object_key, claimed_at)
SELECT run_id, sha256, bucket, object_key, claimed_at FROM run_contents_before_00015;
DROP TABLE run_contents_before_00015;
CREATE INDEX run_contents_subject_idx ON run_contents (bucket, object_key);

-- +goose Down
ALTER TABLE run_contents RENAME TO run_contents_partitioned;
ALTER INDEX run_contents_pkey RENAME TO run_contents_partitioned_pkey;
ALTER INDEX run_contents_subject_idx RENAME TO run_contents_partitioned_subject_idx;
CREATE TABLE run_contents (
    run_id      uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    sha256      bytea       NOT NULL CHECK (octet_length(sha256) = 32),
    bucket      text        NOT NULL,
    object_key  text        NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, sha256)
);
COMMENT ON TABLE run_contents IS 'Which object of a run owns each distinct content (SHA-256): the owner is analysed, every other object with the same bytes takes its result. A claim passes to a copy when the owner ends without an answer (failed, cancelled, not found) or its bytes changed.';
COMMENT ON COLUMN run_contents.claimed_at IS 'When the current owner claimed the content.';
INSERT INTO run_contents (run_id, sha256, bucket, object_key, claimed_at)
SELECT run_id, sha256, bucket, object_key, claimed_at FROM run_contents_partitioned;
DROP TABLE run_contents_partitioned;
CREATE INDEX run_contents_subject_idx ON run_contents (bucket, object_key);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION reverify_add_run_partitions(run uuid) RETURNS void LANGUAGE plpgsql AS $$
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
CREATE OR REPLACE FUNCTION reverify_drop_run_partitions(run uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    suffix text := replace(run::text, '-', '');
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['verifications', 'api_calls'] LOOP
        IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(t || '_' || suffix)) THEN
            EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', t, t || '_' || suffix);
        END IF;
        EXECUTE format('DROP TABLE IF EXISTS %I', t || '_' || suffix);
    END LOOP;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION reverify_drop_run_partitions(uuid) IS 'Drops the partitions of a run: all its verifications and API calls, at once.';
