-- Dispatch order that becomes visible in order. Rows took their seq from a
-- sequence as they were copied, and two ingest writers (or a pooled
-- connection's cached values) committed seqs out of order: a batch could
-- appear below the feeder's mark after the mark had passed it, counted as
-- dispatched though never sent, until the next refill sent all of it at
-- once. Now each run numbers its own rows: a writer reserves a block of
-- seqs (one short statement, serialised on the run's row) and registers it
-- until its rows commit, and the feeder sends nothing at or above the
-- lowest block still open (docs/dispatch.md, "The mark").

-- +goose Up
ALTER TABLE runs ADD COLUMN next_seq bigint NOT NULL DEFAULT 1;
COMMENT ON COLUMN runs.next_seq IS 'The run''s next dispatch number: ingest and retries take blocks from here, so a run''s seqs are reserved in order.';
-- Every seq handed out so far is at most the sequence's last value.
UPDATE runs SET next_seq = (SELECT last_value + 1 FROM verifications_seq);
COMMENT ON COLUMN verifications.seq IS 'Dispatch order within the run (blocks of runs.next_seq); runs.dispatched_seq marks how far the feeder has gone.';

CREATE TABLE run_seq_blocks (
    run_id      uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    lo          bigint      NOT NULL,
    reserved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, lo)
);
COMMENT ON TABLE run_seq_blocks IS 'Blocks of a run''s seqs reserved by an ingest writer whose rows have not committed yet; the feeder sends nothing at or above the lowest (a block older than 5 minutes is taken as abandoned).';

-- +goose Down
DROP TABLE run_seq_blocks;
COMMENT ON COLUMN verifications.seq IS 'Dispatch order within the run (verifications_seq); runs.dispatched_seq marks how far the feeder has gone.';
ALTER TABLE runs DROP COLUMN next_seq;
