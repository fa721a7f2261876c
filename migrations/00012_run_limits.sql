-- A run's own caps on its API calls (reverify enqueue --max-rate
-- --max-in-flight; reverify runs set-limits), below the fleet's: the
-- workers enforce them fleet-wide through Redis (docs/rate.md, "Per-run
-- caps"), and the feeder keeps a capped run's window small.

-- +goose Up
ALTER TABLE runs
    ADD COLUMN max_rate      double precision NOT NULL DEFAULT 0 CHECK (max_rate >= 0),
    ADD COLUMN rate_schedule text             NOT NULL DEFAULT '',
    ADD COLUMN max_in_flight integer          NOT NULL DEFAULT 0 CHECK (max_in_flight >= 0);
COMMENT ON COLUMN runs.max_rate IS 'The run''s own cap on its API calls per second, where rate_schedule has no window; 0 = none (the fleet''s rate alone).';
COMMENT ON COLUMN runs.rate_schedule IS 'The run''s own rate schedule (e.g. TZ=Europe/Berlin 08:00-20:00=5): where a window covers the moment, its rate is the run''s cap (0 = no calls then); '''' = none.';
COMMENT ON COLUMN runs.max_in_flight IS 'The run''s own cap on its API calls in flight at once; 0 = none.';
COMMENT ON COLUMN audit_log.action IS 'run.create, run.confirm, run.pause, run.resume, run.cancel, run.fail, run.retry, run.priority, run.limits, run.delete, image.view, review.decide, report.write, subject.erase, run.prune.';

-- +goose Down
COMMENT ON COLUMN audit_log.action IS 'run.create, run.confirm, run.pause, run.resume, run.cancel, run.fail, run.retry, run.priority, run.delete, image.view, review.decide, report.write, subject.erase, run.prune.';
ALTER TABLE runs DROP COLUMN max_in_flight, DROP COLUMN rate_schedule, DROP COLUMN max_rate;
