-- Notifications: webhooks are told of a run's events (confirmation needed,
-- started, completed, failed, cancelled) and the fleet's (API circuit
-- opened, daily budget spent). Events are an outbox: a run's are recorded
-- by a trigger in the very transaction that changes its status, so none is
-- lost whoever changes it (the CLI, a worker, the dashboard, manual SQL);
-- workers prepare each event's deliveries (one per webhook) and send them,
-- retrying with backoff, recording every attempt.

-- +goose Up
ALTER TABLE runs ADD COLUMN notify text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN runs.notify IS 'Webhooks told of the run''s events (enqueue --notify), each URL or slack:URL. Webhook URLs are secrets.';

CREATE TABLE notification_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event       text        NOT NULL CHECK (event IN ('run.confirmation_needed', 'run.started', 'run.completed',
                                'run.failed', 'run.cancelled', 'fleet.circuit_opened', 'fleet.budget_spent')),
    run_id      uuid        REFERENCES runs (id) ON DELETE CASCADE,
    dedupe_key  text        UNIQUE,
    actor       text,
    reason      text,
    detail      jsonb       NOT NULL DEFAULT '{}',
    body        jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    prepared_at timestamptz,
    CHECK ((run_id IS NOT NULL) = (event LIKE 'run.%'))
);
CREATE INDEX notification_events_unprepared_idx ON notification_events (id) WHERE prepared_at IS NULL;
CREATE INDEX notification_events_run_idx ON notification_events (run_id);
CREATE INDEX notification_events_created_idx ON notification_events (created_at);
COMMENT ON TABLE notification_events IS 'Outbox of events webhooks are told of: a run''s (written by a trigger on run_status_history) and the fleet''s (written by workers).';
COMMENT ON COLUMN notification_events.dedupe_key IS 'A fleet event is recorded once per key: once per UTC day for a spent budget, once per 15 minutes per circuit.';
COMMENT ON COLUMN notification_events.detail IS 'What the event says: the run''s status and counts by status when it happened, or the fleet''s circuit, cool-down or budget.';
COMMENT ON COLUMN notification_events.body IS 'The JSON document sent to webhooks, fixed when the event is prepared so every retry sends the same bytes.';
COMMENT ON COLUMN notification_events.prepared_at IS 'When a worker turned the event into deliveries (NULL: not yet).';

CREATE TABLE notification_deliveries (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        bigint      NOT NULL REFERENCES notification_events (id) ON DELETE CASCADE,
    url             text        NOT NULL,
    format          text        NOT NULL CHECK (format IN ('json', 'slack')),
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_status     int,
    last_error      text,
    delivered_at    timestamptz,
    given_up_at     timestamptz,
    UNIQUE (event_id, url)
);
CREATE INDEX notification_deliveries_due_idx ON notification_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
COMMENT ON TABLE notification_deliveries IS 'One row per event and webhook, with its attempts: delivered (2xx), retried with backoff (network errors, 408, 429, 5xx) or given up.';
COMMENT ON COLUMN notification_deliveries.url IS 'The webhook (a secret: print scheme://host only).';
COMMENT ON COLUMN notification_deliveries.format IS 'json: reverify''s event document signed with HMAC-SHA256 (Reverify-Signature: t=...,v1=...); slack: a Slack incoming webhook''s {"text": ...}.';
COMMENT ON COLUMN notification_deliveries.last_error IS 'Why the last attempt failed, without the URL.';

-- +goose StatementBegin
CREATE FUNCTION run_status_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ev text;
BEGIN
    ev := CASE NEW.to_status
        WHEN 'awaiting_confirmation' THEN 'run.confirmation_needed'
        WHEN 'completed' THEN 'run.completed'
        WHEN 'failed' THEN 'run.failed'
        WHEN 'cancelled' THEN 'run.cancelled'
        WHEN 'running' THEN CASE WHEN NOT EXISTS (SELECT 1 FROM run_status_history h
            WHERE h.run_id = NEW.run_id AND h.to_status = 'running' AND h.id <> NEW.id) THEN 'run.started' END
    END;
    IF ev IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO notification_events (event, run_id, actor, reason, detail, created_at)
    SELECT ev, NEW.run_id, NEW.actor, NEW.reason,
           jsonb_build_object('status', NEW.to_status, 'from', NEW.from_status, 'total', r.total,
               'by_status', coalesce((SELECT jsonb_object_agg(c.status, c.objects) FROM
                   (SELECT status, sum(objects) AS objects FROM run_counts WHERE run_id = NEW.run_id
                    GROUP BY status HAVING sum(objects) <> 0) c), '{}'::jsonb)),
           NEW.changed_at
    FROM runs r WHERE r.id = NEW.run_id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION run_status_notify() IS 'Trigger: records the notification event of a run status change, in the changing transaction.';
CREATE TRIGGER run_status_history_notify AFTER INSERT ON run_status_history
    FOR EACH ROW EXECUTE FUNCTION run_status_notify();

-- +goose Down
DROP TRIGGER run_status_history_notify ON run_status_history;
DROP FUNCTION run_status_notify();
DROP TABLE notification_deliveries;
DROP TABLE notification_events;
ALTER TABLE runs DROP COLUMN notify;
