-- Dashboard identities and roles: asynqmon writes made through the
-- dashboard are audited (action monitor.write), and the dashboard's actor
-- is the authenticated person (a users-file name, a token's name, or the
-- SSO proxy's identity), never REVERIFY_ACTOR.

-- +goose Up
COMMENT ON COLUMN audit_log.action IS 'run.create, run.confirm, run.pause, run.resume, run.cancel, run.fail, run.retry, run.priority, run.limits, run.delete, image.view, review.decide, report.write, subject.erase, run.prune, monitor.write (an asynqmon change through the dashboard: detail.method and detail.path, tasks named by run and key hash).';
COMMENT ON COLUMN audit_log.actor IS 'Who: $REVERIFY_ACTOR or user@host for the CLI; for the dashboard the authenticated person (users-file or flag user name, token name, or the SSO proxy''s identity header from a trusted proxy); scheduler:<name>.';
COMMENT ON COLUMN audit_log.remote IS 'Where from: the dashboard client''s address ("client via proxy" behind a trusted SSO proxy), or the CLI''s host.';

-- +goose Down
COMMENT ON COLUMN audit_log.action IS 'run.create, run.confirm, run.pause, run.resume, run.cancel, run.fail, run.retry, run.priority, run.limits, run.delete, image.view, review.decide, report.write, subject.erase, run.prune.';
COMMENT ON COLUMN audit_log.actor IS 'Who: $REVERIFY_ACTOR or user@host for the CLI, the authenticated dashboard user or token name, scheduler:<name>.';
COMMENT ON COLUMN audit_log.remote IS 'Where from: the dashboard client''s address, or the CLI''s host.';
