-- +goose Up
-- A verification row is updated twice per image (attempts when its call
-- starts, the result when it ends). Free room on each page lets the first
-- update be a heap-only tuple (HOT): no new entries in the table's four
-- indexes. Pages written from now on keep 30% free; older ones are as
-- they were until rewritten (VACUUM FULL, pg_repack).
ALTER TABLE verifications SET (fillfactor = 70);

-- +goose Down
ALTER TABLE verifications RESET (fillfactor);
