package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"reverify"
)

// Webhook is where and how an event is sent.
type Webhook struct {
	URL    string
	Format reverify.WebhookFormat
}

// NotificationEvent is an event of the outbox (notification_events).
type NotificationEvent struct {
	ID        int64
	Event     reverify.Event
	Run       *reverify.Run // a run event's run, as it is now; nil for fleet events
	Actor     string
	Reason    string
	Detail    json.RawMessage // what the event says (see the column's comment)
	CreatedAt time.Time
	// Hooks are the webhooks the ledger knows for the event: the run's
	// (run events) or those of every run not ended (fleet events, which
	// hold those runs up).
	Hooks []string
}

// RecordEvent records a fleet event (a run's are recorded with its status
// changes); an event whose dedupeKey was recorded before is not, and
// RecordEvent then returns false.
func (s *Store) RecordEvent(ctx context.Context, ev reverify.Event, dedupeKey, reason string, detail any) (bool, error) {
	b, err := json.Marshal(detail)
	if err != nil {
		return false, fmt.Errorf("record %s event: %w", ev, err)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO notification_events (event, dedupe_key, actor, reason, detail)
		VALUES ($1, nullif($2, ''), 'reverify-worker', nullif($3, ''), $4) ON CONFLICT (dedupe_key) DO NOTHING`,
		ev, dedupeKey, reason, b)
	if err != nil {
		return false, classify(fmt.Errorf("record %s event: %w", ev, err))
	}
	return tag.RowsAffected() == 1, nil
}

// UnpreparedEvents returns up to limit events that have no deliveries yet,
// oldest first.
func (s *Store) UnpreparedEvents(ctx context.Context, limit int) ([]NotificationEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT e.id, e.event, coalesce(e.run_id::text, ''), coalesce(e.actor, ''),
			coalesce(e.reason, ''), e.detail, e.created_at,
			CASE WHEN e.run_id IS NULL
			     THEN (SELECT coalesce(array_agg(DISTINCT h), '{}') FROM runs a, unnest(a.notify) h
			           WHERE a.status NOT IN ('completed', 'cancelled', 'failed'))
			     ELSE (SELECT r.notify FROM runs r WHERE r.id = e.run_id) END
		FROM notification_events e WHERE e.prepared_at IS NULL ORDER BY e.id LIMIT $1`, limit)
	if err != nil {
		return nil, classify(fmt.Errorf("read notification events: %w", err))
	}
	var out []NotificationEvent
	var runIDs []string
	var ev NotificationEvent
	var runID string
	_, err = pgx.ForEachRow(rows, []any{&ev.ID, &ev.Event, &runID, &ev.Actor, &ev.Reason, &ev.Detail, &ev.CreatedAt, &ev.Hooks},
		func() error {
			e := ev
			e.Detail = append(json.RawMessage(nil), ev.Detail...)
			if runID != "" {
				e.Run = &reverify.Run{ID: runID}
				runIDs = append(runIDs, runID)
			}
			out = append(out, e)
			return nil
		})
	if err != nil {
		return nil, classify(fmt.Errorf("read notification events: %w", err))
	}
	if len(runIDs) == 0 {
		return out, nil
	}
	runs, err := queryRuns(ctx, s.pool, `SELECT `+runColumns+` FROM runs WHERE id = ANY($1::uuid[])`, runIDs)
	if err != nil {
		return nil, classify(fmt.Errorf("read the runs of notification events: %w", err))
	}
	byID := make(map[string]reverify.Run, len(runs))
	for _, r := range runs {
		byID[r.ID] = r
	}
	for i := range out {
		if out[i].Run != nil {
			r := byID[out[i].Run.ID]
			out[i].Run = &r
		}
	}
	return out, nil
}

// PrepareEvent fixes the body of an event and records one delivery per
// webhook (the same URL once); an event prepared before is left alone.
func (s *Store) PrepareEvent(ctx context.Context, id int64, body []byte, hooks []Webhook) error {
	urls := make([]string, len(hooks))
	formats := make([]reverify.WebhookFormat, len(hooks))
	for i, h := range hooks {
		urls[i], formats[i] = h.URL, h.Format
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE notification_events SET body = $2, prepared_at = now()
			WHERE id = $1 AND prepared_at IS NULL`, id, body)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO notification_deliveries (event_id, url, format)
			SELECT $1, u, f FROM unnest($2::text[], $3::text[]) AS h(u, f)
			ON CONFLICT (event_id, url) DO NOTHING`, id, urls, formats)
		return err
	})
	if err != nil {
		return classify(fmt.Errorf("prepare notification event %d: %w", id, err))
	}
	return nil
}

// Delivery is a webhook delivery to attempt.
type Delivery struct {
	ID       int64
	EventID  int64
	Event    reverify.Event
	URL      string
	Format   reverify.WebhookFormat
	Body     json.RawMessage // the event's document, the same bytes at every attempt
	Attempts int             // made before this one
}

// ClaimDeliveries takes up to limit deliveries that are due, oldest
// first, and hides them from other senders for hold: a sender that dies
// meanwhile leaves them to be attempted again after it.
func (s *Store) ClaimDeliveries(ctx context.Context, limit int, hold time.Duration) ([]Delivery, error) {
	rows, err := s.pool.Query(ctx, `
		UPDATE notification_deliveries d SET next_attempt_at = now() + make_interval(secs => $2)
		FROM notification_events e
		WHERE e.id = d.event_id AND d.id IN (
			SELECT id FROM notification_deliveries
			WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= now()
			ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING d.id, d.event_id, e.event, d.url, d.format, e.body::text, d.attempts`, limit, hold.Seconds())
	if err != nil {
		return nil, classify(fmt.Errorf("claim notification deliveries: %w", err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Delivery, error) {
		var d Delivery
		var body string
		err := row.Scan(&d.ID, &d.EventID, &d.Event, &d.URL, &d.Format, &body, &d.Attempts)
		d.Body = json.RawMessage(body)
		return d, err
	})
	if err != nil {
		return nil, classify(fmt.Errorf("claim notification deliveries: %w", err))
	}
	return out, nil
}

// Attempt is how one delivery attempt went.
type Attempt struct {
	Status    int    // HTTP status; 0 when no answer came
	Error     string // why it failed, without the URL; "" when delivered
	Delivered bool
	// RetryAt is when to try again; zero gives up (when not delivered).
	RetryAt time.Time
}

// RecordAttempt records an attempt at delivery id.
func (s *Store) RecordAttempt(ctx context.Context, id int64, a Attempt) error {
	var retry *time.Time
	if !a.Delivered && !a.RetryAt.IsZero() {
		retry = &a.RetryAt
	}
	_, err := s.pool.Exec(ctx, `UPDATE notification_deliveries SET attempts = attempts + 1, last_attempt_at = now(),
			last_status = nullif($2, 0), last_error = nullif($3, ''),
			delivered_at = CASE WHEN $4 THEN now() END,
			given_up_at = CASE WHEN NOT $4 AND $5::timestamptz IS NULL THEN now() END,
			next_attempt_at = coalesce($5, next_attempt_at)
		WHERE id = $1`, id, a.Status, a.Error, a.Delivered, retry)
	if err != nil {
		return classify(fmt.Errorf("record notification delivery %d: %w", id, err))
	}
	return nil
}

// DeliveryState is a delivery as `runs show` tells it.
type DeliveryState struct {
	Event       reverify.Event
	URL         string // a secret: print scheme://host only
	Format      reverify.WebhookFormat
	Attempts    int
	LastStatus  int
	LastError   string
	CreatedAt   time.Time // of the event
	DeliveredAt *time.Time
	GivenUp     bool
}

// RunDeliveries lists the deliveries of a run's events, oldest first.
func (s *Store) RunDeliveries(ctx context.Context, runID string) ([]DeliveryState, error) {
	if err := checkRunID(runID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT e.event, d.url, d.format, d.attempts, coalesce(d.last_status, 0), coalesce(d.last_error, ''),
			e.created_at, d.delivered_at, d.given_up_at IS NOT NULL
		FROM notification_events e JOIN notification_deliveries d ON d.event_id = e.id
		WHERE e.run_id = $1::uuid ORDER BY e.id, d.id`, runID)
	if err != nil {
		return nil, classify(fmt.Errorf("read notifications of run %s: %w", runID, err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DeliveryState, error) {
		var d DeliveryState
		err := row.Scan(&d.Event, &d.URL, &d.Format, &d.Attempts, &d.LastStatus, &d.LastError, &d.CreatedAt, &d.DeliveredAt, &d.GivenUp)
		return d, err
	})
	if err != nil {
		return nil, classify(fmt.Errorf("read notifications of run %s: %w", runID, err))
	}
	return out, nil
}

// PruneNotifications deletes events older than before whose deliveries
// are all over (delivered or given up), with their deliveries; a run's
// go with the run anyway. It returns how many events it deleted.
func (s *Store) PruneNotifications(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM notification_events e
		WHERE e.created_at < $1 AND e.prepared_at IS NOT NULL
		  AND NOT EXISTS (SELECT 1 FROM notification_deliveries d
		                  WHERE d.event_id = e.id AND d.delivered_at IS NULL AND d.given_up_at IS NULL)`, before)
	if err != nil {
		return 0, classify(fmt.Errorf("prune notifications: %w", err))
	}
	return tag.RowsAffected(), nil
}
