-- A run's objects are recorded at COPY speed. The foreign key from
-- verifications to runs checked every inserted row against runs (a trigger
-- per row, half the cost of an ingest). It guarded nothing the partitions
-- do not: a row can only be written to its run's own partition, which is
-- made with the run (reverify_add_run_partitions) and dropped with it. A
-- trigger keeps the old cascade's promise for any delete of a run: its
-- reviews, objects and API calls go with it, as partitions dropped at once.
-- A partition referenced by reviews' foreign key cannot be dropped while
-- attached (2BP01: `runs delete` failed on every run): it is detached
-- first, which keeps the constraint for every other run.
-- A partition filled by COPY has no statistics until autovacuum comes by,
-- and the feeder's queries plan badly without them: AddObjects analyses
-- the run's partition as it grows (reverify_analyze_run).

-- +goose Up
ALTER TABLE verifications DROP CONSTRAINT verifications_run_id_fkey;

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

-- +goose StatementBegin
CREATE FUNCTION runs_drop_partitions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM reviews WHERE run_id = OLD.id;
    PERFORM reverify_drop_run_partitions(OLD.id);
    RETURN OLD;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION runs_drop_partitions() IS 'Deleting a run drops its verifications and api_calls partitions (and its reviews).';
CREATE TRIGGER runs_drop_partitions BEFORE DELETE ON runs FOR EACH ROW EXECUTE FUNCTION runs_drop_partitions();

-- +goose StatementBegin
CREATE FUNCTION reverify_analyze_run(run uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ANALYZE %I', 'verifications_' || replace(run::text, '-', ''));
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION reverify_analyze_run(uuid) IS 'Refreshes the planner statistics of a run''s verifications partition.';

-- +goose Down
DROP FUNCTION reverify_analyze_run(uuid);
DROP TRIGGER runs_drop_partitions ON runs;
DROP FUNCTION runs_drop_partitions();
ALTER TABLE verifications ADD CONSTRAINT verifications_run_id_fkey FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE CASCADE;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION reverify_drop_run_partitions(run uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    suffix text := replace(run::text, '-', '');
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS %I, %I', 'api_calls_' || suffix, 'verifications_' || suffix);
END
$$;
-- +goose StatementEnd
