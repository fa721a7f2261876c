package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"reverify"
	"reverify/storage/postgres"
)

// Ledger is the outbox the Sender reads and records its attempts in;
// *postgres.Store satisfies it.
type Ledger interface {
	UnpreparedEvents(ctx context.Context, limit int) ([]postgres.NotificationEvent, error)
	PrepareEvent(ctx context.Context, id int64, body []byte, hooks []postgres.Webhook) error
	ClaimDeliveries(ctx context.Context, limit int, hold time.Duration) ([]postgres.Delivery, error)
	RecordAttempt(ctx context.Context, id int64, a postgres.Attempt) error
	PruneNotifications(ctx context.Context, before time.Time) (int64, error)
}

// Leader is a fleet-wide lease, so that one Sender sends at a time;
// *fleet.Lease satisfies it. (Deliveries are claimed, so two senders would
// not send one twice; the lease keeps the others from polling.)
type Leader interface {
	Hold(ctx context.Context) (bool, error)
	Release(ctx context.Context) error
}

// Config tunes the Sender. Zero values take the defaults given.
type Config struct {
	// Hooks are told of every event ([json:|slack:]URL, see ParseHook),
	// besides each run's own.
	Hooks []string
	// Secret signs json bodies (SignatureHeader). Without it json
	// deliveries are given up: an unsigned body cannot be trusted.
	Secret string
	// Client sends the requests; default: a 10s timeout, no redirects
	// followed (a redirect is a failed attempt).
	Client *http.Client
	// Every is how often the outbox is read when it was empty; default 1s.
	Every time.Duration
	// RetryBase is the backoff after the first failed attempt, doubling
	// at each (with jitter) up to RetryCap; defaults 10s and 1h.
	RetryBase, RetryCap time.Duration
	// MaxAttempts is how many attempts a delivery gets; default 12 (about
	// half a day with the default backoff).
	MaxAttempts int
	// Retain is how long events are kept once their deliveries are over;
	// default 30 days.
	Retain time.Duration
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Client == nil {
		c.Client = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if c.Every <= 0 {
		c.Every = time.Second
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 10 * time.Second
	}
	if c.RetryCap <= 0 {
		c.RetryCap = time.Hour
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 12
	}
	if c.Retain <= 0 {
		c.Retain = 30 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Sender prepares the outbox's events and delivers them.
type Sender struct {
	ledger Ledger
	lease  Leader
	hooks  []postgres.Webhook
	cfg    Config
	log    *slog.Logger
	now    func() time.Time

	mu         sync.Mutex
	lastPruned time.Time
}

// NewSender returns a sender over the ledger; lease may be nil (this
// sender always sends). It refuses a webhook it cannot parse, and json
// webhooks without a secret.
func NewSender(ledger Ledger, lease Leader, cfg Config) (*Sender, error) {
	cfg.defaults()
	s := &Sender{ledger: ledger, lease: lease, cfg: cfg, log: cfg.Logger, now: time.Now}
	for _, spec := range cfg.Hooks {
		h, err := ParseHook(spec)
		if err != nil {
			return nil, err
		}
		if h.Format == reverify.WebhookJSON && cfg.Secret == "" {
			return nil, fmt.Errorf("webhook %s gets signed JSON: set a signing secret", Redact(spec))
		}
		s.hooks = append(s.hooks, h)
	}
	return s, nil
}

// Run sends while it holds the lease, until ctx ends; it stands by
// otherwise. Errors are logged and the round tried again.
func (s *Sender) Run(ctx context.Context) error {
	held := false
	defer func() {
		if held && s.lease != nil {
			_ = s.lease.Release(context.WithoutCancel(ctx))
		}
	}()
	for {
		wait := s.cfg.Every
		if s.lease != nil {
			h, err := s.lease.Hold(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "notification lease check failed; standing by", "err", err)
			}
			held = h
		} else {
			held = true
		}
		if held {
			n, err := s.Round(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "sending notifications failed; will try again", "err", err)
			}
			if n > 0 && err == nil {
				wait = 0 // more may be due
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// batch is how many events or deliveries a round takes at once.
const batch = 32

// Round prepares the events that have no deliveries yet and makes one
// attempt at every delivery due, side by side. It returns how many
// events and attempts it handled.
func (s *Sender) Round(ctx context.Context) (int, error) {
	prepared, err := s.prepare(ctx)
	if err != nil {
		return prepared, err
	}
	ds, err := s.ledger.ClaimDeliveries(ctx, batch, s.cfg.Client.Timeout+30*time.Second)
	if err != nil {
		return prepared, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ds))
	for i, d := range ds {
		wg.Go(func() {
			a := s.attempt(ctx, d)
			if !a.Delivered && ctx.Err() != nil {
				return // stopped mid-attempt: the claim lapses and it is made again
			}
			errs[i] = s.ledger.RecordAttempt(context.WithoutCancel(ctx), d.ID, a)
		})
	}
	wg.Wait()
	s.prune(ctx)
	return prepared + len(ds), errors.Join(errs...)
}

// prepare fixes the body of new events and records their deliveries.
func (s *Sender) prepare(ctx context.Context) (int, error) {
	evs, err := s.ledger.UnpreparedEvents(ctx, batch)
	if err != nil {
		return 0, err
	}
	for _, ev := range evs {
		body, err := newBody(ev)
		if err != nil {
			// An event that cannot be read must not hold up the others: it
			// is sent with what is known of it.
			s.log.ErrorContext(ctx, "notification event unreadable; sending its type only", "event", ev.Event, "event_id", ev.ID, "err", err)
			if body, err = json.Marshal(Body{ID: ev.ID, Type: ev.Event, CreatedAt: ev.CreatedAt.UTC(), Actor: ev.Actor, Reason: ev.Reason}); err != nil {
				return 0, err
			}
		}
		hooks := make([]postgres.Webhook, 0, len(ev.Hooks)+len(s.hooks))
		for _, spec := range ev.Hooks {
			h, err := ParseHook(spec)
			if err != nil {
				s.log.WarnContext(ctx, "skipping a webhook that does not parse", "event", ev.Event, "webhook", Redact(spec))
				continue
			}
			hooks = append(hooks, h)
		}
		hooks = append(hooks, s.hooks...)
		if err := s.ledger.PrepareEvent(ctx, ev.ID, body, hooks); err != nil {
			return 0, err
		}
	}
	return len(evs), nil
}

// attempt sends one delivery and says how it went and when to try again.
func (s *Sender) attempt(ctx context.Context, d postgres.Delivery) postgres.Attempt {
	log := s.log.With("event", d.Event, "event_id", d.EventID, "delivery_id", d.ID, "webhook", Redact(d.URL), "attempt", d.Attempts+1)
	status, retryAfter, err := s.send(ctx, d)
	if err == nil {
		log.DebugContext(ctx, "webhook delivered", "http_status", status)
		return postgres.Attempt{Status: status, Delivered: true}
	}
	a := postgres.Attempt{Status: status, Error: err.Error()}
	var perm permanent
	if !errors.As(err, &perm) && d.Attempts+1 < s.cfg.MaxAttempts {
		a.RetryAt = s.now().Add(max(s.backoff(d.Attempts+1), min(retryAfter, s.cfg.RetryCap)))
		log.WarnContext(ctx, "webhook delivery failed; will retry", "http_status", status, "err", a.Error, "retry_at", a.RetryAt)
		return a
	}
	log.ErrorContext(ctx, "webhook delivery failed; giving up", "http_status", status, "err", a.Error)
	return a
}

// permanent is a failure retrying cannot mend.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// send posts a delivery's body. Its errors never hold the URL.
func (s *Sender) send(ctx context.Context, d postgres.Delivery) (status int, retryAfter time.Duration, err error) {
	body := []byte(d.Body)
	if d.Format == reverify.WebhookSlack {
		if body, err = slackBody(body); err != nil {
			return 0, 0, permanent{err}
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, permanent{errors.New("invalid webhook URL")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "reverify-webhooks")
	req.Header.Set(EventHeader, string(d.Event))
	req.Header.Set(DeliveryHeader, strconv.FormatInt(d.ID, 10))
	if d.Format == reverify.WebhookJSON {
		if s.cfg.Secret == "" {
			return 0, 0, permanent{errors.New("no signing secret configured (REVERIFY_NOTIFY_SECRET): signed JSON not sent")}
		}
		req.Header.Set(SignatureHeader, Sign(s.cfg.Secret, s.now(), body))
	}
	res, err := s.cfg.Client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // *url.Error repeats the URL
		}
		return 0, 0, fmt.Errorf("post: %w", err)
	}
	defer res.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(res.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return res.StatusCode, 0, nil
	}
	err = fmt.Errorf("HTTP %d%s", res.StatusCode, printable(snippet))
	switch {
	case res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusRequestTimeout || res.StatusCode >= 500:
		return res.StatusCode, retryAfterOf(res, s.now()), err
	}
	return res.StatusCode, 0, permanent{err} // 3xx and other 4xx: the webhook refuses it as sent
}

// backoff is the wait before attempt n+1 after n failed: RetryBase doubled
// n-1 times, capped at RetryCap, half of it fixed and half random.
func (s *Sender) backoff(n int) time.Duration {
	d := s.cfg.RetryBase
	for i := 1; i < n && d < s.cfg.RetryCap; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RetryCap)
	return d/2 + rand.N(d/2+1)
}

func retryAfterOf(res *http.Response, now time.Time) time.Duration {
	v := res.Header.Get("Retry-After")
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}

// printable is the start of a response body for an error message: one
// line of printable text.
func printable(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, strings.TrimSpace(string(b)))
	if s == "" {
		return ""
	}
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return ": " + s
}

// prune deletes old events at most once an hour.
func (s *Sender) prune(ctx context.Context) {
	s.mu.Lock()
	due := s.now().Sub(s.lastPruned) >= time.Hour
	if due {
		s.lastPruned = s.now()
	}
	s.mu.Unlock()
	if !due {
		return
	}
	if n, err := s.ledger.PruneNotifications(ctx, s.now().Add(-s.cfg.Retain)); err != nil {
		s.log.WarnContext(ctx, "could not prune old notifications", "err", err)
	} else if n > 0 {
		s.log.InfoContext(ctx, "pruned old notifications", "events", n)
	}
}
