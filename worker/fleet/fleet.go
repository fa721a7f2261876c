// Package fleet governs calls to the liveness API across every worker
// process: one request rate, one in-flight cap and one daily budget shared
// through Redis (the API key's quota is the fleet's, not a process's), and
// circuits that stop the whole fleet when the API refuses the key or is down.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reverify"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Denied means the fleet may not call the API now; try again after After.
// It is not a failure of the image.
type Denied struct {
	Reason reverify.WaitReason
	After  time.Duration
}

func (d *Denied) Error() string {
	return fmt.Sprintf("api call not admitted (%s); retry in %s", d.Reason, d.After.Round(time.Millisecond))
}

// Config sets the fleet's limits. Zero values mean "no limit".
type Config struct {
	Prefix        string // Redis key prefix; default "{reverify-fleet}:"
	RatePerSecond int    // calls per second for the whole fleet; with Adaptive, the ceiling (0 = none)
	// Adaptive: the fleet finds the API's limit itself (Cubic) and
	// follows it, instead of a fixed RatePerSecond.
	Adaptive bool
	Law      Cubic // the adaptive rate's constants; zero values are defaults, Max is RatePerSecond
	// LatencyFactor: with Adaptive, the rate is also cut when the API's
	// latency rises above this many times its usual (and by 250 ms);
	// default 3, < 0 = never.
	LatencyFactor  float64
	MaxInFlight    int           // calls in flight at once for the whole fleet
	DailyBudget    int64         // calls per UTC day
	SlotLease      time.Duration // an in-flight slot a crashed process never released frees itself after this; default 2m
	MaxWait        time.Duration // how long Admit waits for a slot or a rate token before giving up; default 2s
	AuthCooldown   time.Duration // how long a 401/403 stops the fleet; default 1m
	OutageMinFails int           // transient failures in one window that, when at least half of its calls, open the outage circuit; default 20
	OutageWindow   time.Duration // default 30s
	OutageCooldown time.Duration // default 30s
	Now            func() time.Time
	Events         Events // told when the fleet stops calling the API; nil: nobody is
	// Schedule makes the rate follow the clock (docs/rate.md, "Scheduled
	// rates"): where one of its windows covers the moment, its rate is the
	// fixed rate, or the adaptive rate's ceiling; 0 there = no calls.
	// RatePerSecond applies where no window covers. A schedule another
	// worker announced later replaces it (the last announced wins).
	Schedule reverify.RateSchedule
	Logger   *slog.Logger // warnings; nil: discarded
}

// Events is told when the fleet stops calling the API, so that people
// hear of it (notify.Recorder records it for webhooks). Exactly one
// process of the fleet is told of each opening and each spent budget. Its
// methods are called on an API call's path: they must return at once.
type Events interface {
	// CircuitOpened: why is reverify.WaitAuthCircuit (the API refused the
	// key; reason says how) or reverify.WaitOutageCircuit (most calls
	// fail); the fleet holds calls for cooldown.
	CircuitOpened(ctx context.Context, why reverify.WaitReason, reason string, cooldown time.Duration)
	// BudgetSpent: the call just admitted used the last of the budget of
	// day (UTC, YYYY-MM-DD).
	BudgetSpent(ctx context.Context, day string, budget int64)
}

func (c *Config) defaults() {
	if c.Prefix == "" {
		c.Prefix = "{reverify-fleet}:" // one hash slot, so the scripts work on Redis Cluster
	}
	if c.SlotLease <= 0 {
		c.SlotLease = 2 * time.Minute
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 2 * time.Second
	}
	if c.AuthCooldown <= 0 {
		c.AuthCooldown = time.Minute
	}
	if c.OutageMinFails <= 0 {
		c.OutageMinFails = 20
	}
	if c.OutageWindow <= 0 {
		c.OutageWindow = 30 * time.Second
	}
	if c.OutageCooldown <= 0 {
		c.OutageCooldown = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.LatencyFactor == 0 {
		c.LatencyFactor = 3
	}
	c.Law.Max = float64(c.RatePerSecond)
}

// Governor admits API calls. It is safe for concurrent use.
type Governor struct {
	rdb      redis.UniversalClient
	cfg      Config
	keys     keys
	adaptive *adaptive // nil: a fixed rate
	sched    scheduleView
}

// keys are the fleet's fixed Redis keys, all under the prefix.
type keys struct {
	authCircuit, outageCircuit, inflight, budgetLimit     string
	adaptive, adaptiveTAT, rateMode, fixedStats, fixedTAT string
	rateSchedule                                          string
}

// New returns a governor over rdb.
func New(rdb redis.UniversalClient, cfg Config) *Governor {
	cfg.defaults()
	p := cfg.Prefix
	g := &Governor{rdb: rdb, cfg: cfg, keys: keys{
		authCircuit: p + "circuit:auth", outageCircuit: p + "circuit:outage",
		inflight: p + "inflight", budgetLimit: p + "budget:limit",
		adaptive: p + "adaptive", adaptiveTAT: p + "adaptive:tat", rateMode: p + "rate:mode",
		fixedStats: p + "rate:fixed", fixedTAT: p + "rate:fixed:tat", rateSchedule: p + "rate:schedule",
	}}
	g.sched.cur = cfg.Schedule
	if cfg.Adaptive {
		g.adaptive = &adaptive{law: cfg.Law, latency: &LatencyRise{Factor: cfg.LatencyFactor, Margin: 250 * time.Millisecond}}
	}
	return g
}

func (g *Governor) budgetKey(now time.Time) string {
	return g.cfg.Prefix + "budget:" + now.UTC().Format(time.DateOnly)
}

func (g *Governor) windowKey(kind string, now time.Time) string {
	return g.cfg.Prefix + kind + ":" + strconv.FormatInt(now.UnixMilli()/g.cfg.OutageWindow.Milliseconds(), 10)
}

// admitScript checks the circuits, the in-flight cap and the daily budget,
// and takes a slot and a unit of budget, atomically; an admitted call
// returns {0, calls admitted today}.
//
// KEYS: auth circuit, outage circuit, in-flight set, budget, window calls
// ARGV: now ms, max in flight, holder, lease expiry ms, budget, budget ttl s, window ttl ms
var admitScript = redis.NewScript(`
local t = redis.call('PTTL', KEYS[1])
if t > 0 then return {1, t} end
t = redis.call('PTTL', KEYS[2])
if t > 0 then return {2, t} end
local maxin = tonumber(ARGV[2])
if maxin > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
  if redis.call('ZCARD', KEYS[3]) >= maxin then return {3, 0} end
end
local budget = tonumber(ARGV[5])
if budget > 0 then
  local used = tonumber(redis.call('GET', KEYS[4]) or '0')
  if used >= budget then return {4, 0} end
end
if maxin > 0 then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[4] - ARGV[1])
end
local used = redis.call('INCR', KEYS[4])
redis.call('EXPIRE', KEYS[4], ARGV[6])
redis.call('INCR', KEYS[5])
redis.call('PEXPIRE', KEYS[5], ARGV[7])
return {0, used}
`)

// Permit is an admitted call; release it when the call has returned.
type Permit struct {
	holder string
	at     time.Time // when it was counted
}

// Admit waits (up to MaxWait) until the fleet may make one more call, and
// counts it against the daily budget. It returns a *Denied when the call
// must wait longer: an open circuit, a spent budget, or a fleet at its cap.
// The rate token comes last, right before the call, so calls reach the
// API spaced by the rate; a call the rate defers gives its budget back.
func (g *Governor) Admit(ctx context.Context, holder string) (Permit, error) {
	deadline := g.cfg.Now().Add(g.cfg.MaxWait)
	for {
		p, wait, err := g.tryAdmit(ctx, holder)
		if err != nil {
			return Permit{}, err
		}
		if wait == nil {
			if err := g.waitForRate(ctx, deadline); err != nil {
				g.Withdraw(context.WithoutCancel(ctx), p)
				return Permit{}, err
			}
			return p, nil
		}
		if wait.Reason != reverify.WaitFleetBusy || !g.cfg.Now().Add(wait.After).Before(deadline) {
			return Permit{}, wait
		}
		if err := sleep(ctx, wait.After); err != nil {
			return Permit{}, err
		}
	}
}

func (g *Governor) tryAdmit(ctx context.Context, holder string) (Permit, *Denied, error) {
	now := g.cfg.Now()
	res, err := admitScript.Run(ctx, g.rdb,
		[]string{g.keys.authCircuit, g.keys.outageCircuit, g.keys.inflight, g.budgetKey(now), g.windowKey("calls", now)},
		now.UnixMilli(), g.cfg.MaxInFlight, holder, now.Add(g.cfg.SlotLease).UnixMilli(), g.cfg.DailyBudget,
		int((48 * time.Hour).Seconds()), 2*g.cfg.OutageWindow.Milliseconds()).Int64Slice()
	if err != nil {
		return Permit{}, nil, fmt.Errorf("fleet admit: %w", err)
	}
	switch res[0] {
	case 0:
		if b := g.cfg.DailyBudget; b > 0 && res[1] == b && g.cfg.Events != nil {
			g.cfg.Events.BudgetSpent(ctx, now.UTC().Format(time.DateOnly), b)
		}
		return Permit{holder: holder, at: now}, nil, nil
	case 1:
		return Permit{}, &Denied{Reason: reverify.WaitAuthCircuit, After: time.Duration(res[1]) * time.Millisecond}, nil
	case 2:
		return Permit{}, &Denied{Reason: reverify.WaitOutageCircuit, After: time.Duration(res[1]) * time.Millisecond}, nil
	case 3:
		return Permit{}, &Denied{Reason: reverify.WaitFleetBusy, After: 20 * time.Millisecond}, nil
	default:
		return Permit{}, &Denied{Reason: reverify.WaitBudget, After: untilNextUTCDay(now)}, nil
	}
}

// waitForRate waits for the fleet's next call instant: at the adaptive
// rate, or at the fixed one (none: at once). Both reserve the instant
// ahead, so no instant is lost to a waiting call that woke up late (a
// polled limiter with no burst loses each such delay for good: 19% of a
// fixed 150/s, docs/performance.md).
func (g *Governor) waitForRate(ctx context.Context, deadline time.Time) error {
	sch := g.schedule(ctx, false)
	switch {
	case g.adaptive != nil:
		return g.waitForAdaptive(ctx, deadline, sch)
	case g.cfg.RatePerSecond > 0 || !sch.IsZero():
		return g.waitForFixed(ctx, deadline, sch)
	}
	return nil
}

// Release frees the permit's in-flight slot.
func (g *Governor) Release(ctx context.Context, p Permit) {
	if g.cfg.MaxInFlight <= 0 || p.holder == "" {
		return
	}
	// A slot that cannot be released here expires with its lease.
	_ = g.rdb.ZRem(ctx, g.keys.inflight, p.holder).Err()
}

// Withdraw gives back an admission whose call is not made: its slot, its
// unit of budget and its count in the outage window. Losing one only
// overstates the day's use.
func (g *Governor) Withdraw(ctx context.Context, p Permit) {
	g.Release(ctx, p)
	_ = refundScript.Run(ctx, g.rdb, []string{g.budgetKey(p.at), g.windowKey("calls", p.at)}).Err()
}

// refundScript takes one off each counter that still exists (an expired
// one must not come back without its TTL).
var refundScript = redis.NewScript(`
for _, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then redis.call('DECR', k) end
end
return 0
`)

// Outcome of a failed call, as far as the circuits care. Answered calls
// need no report: the admit script already counted them.
type Outcome int

// Outcomes.
const (
	Transient Outcome = iota + 1 // 5xx, timeout, network error, malformed answer
	AuthError                    // 401/403
)

// failScript counts a transient failure in the current window and opens
// the outage circuit when failures are many and at least half of the calls.
//
// KEYS: window fails, window calls, outage circuit
// ARGV: min fails, window ttl ms, cooldown ms
var failScript = redis.NewScript(`
local f = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local c = tonumber(redis.call('GET', KEYS[2]) or '0')
if f >= tonumber(ARGV[1]) and f * 2 >= c then
  if redis.call('SET', KEYS[3], 'open', 'PX', ARGV[3], 'NX') then return 1 end
end
return 0
`)

// Report tells the circuits how a call went. It returns true when this
// report opened a circuit (so the caller logs it once); Events is told.
func (g *Governor) Report(ctx context.Context, o Outcome, reason string) (opened bool, err error) {
	now := g.cfg.Now()
	switch o {
	case AuthError:
		ok, err := g.rdb.SetNX(ctx, g.keys.authCircuit, reason, g.cfg.AuthCooldown).Result()
		if err != nil {
			return false, fmt.Errorf("open auth circuit: %w", err)
		}
		if ok && g.cfg.Events != nil {
			g.cfg.Events.CircuitOpened(ctx, reverify.WaitAuthCircuit, reason, g.cfg.AuthCooldown)
		}
		return ok, nil
	case Transient:
		n, err := failScript.Run(ctx, g.rdb,
			[]string{g.windowKey("fails", now), g.windowKey("calls", now), g.keys.outageCircuit},
			g.cfg.OutageMinFails, 2*g.cfg.OutageWindow.Milliseconds(), g.cfg.OutageCooldown.Milliseconds()).Int()
		if err != nil {
			return false, fmt.Errorf("count api failure: %w", err)
		}
		if n == 1 && g.cfg.Events != nil {
			g.cfg.Events.CircuitOpened(ctx, reverify.WaitOutageCircuit, reason, g.cfg.OutageCooldown)
		}
		return n == 1, nil
	}
	return false, nil
}

// NotifierLease names the lease of the notification sender for a ledger:
// of the workers of one ledger, one sends at a time.
func NotifierLease(ledgerID string) string { return "reverify:{notify-" + ledgerID + "}:leader" }

// Status is the fleet's state, for health checks and `runs show`.
type Status struct {
	AuthOpenFor   time.Duration // 0 when closed
	AuthReason    string
	OutageOpenFor time.Duration
	InFlight      int64
	MaxInFlight   int
	RatePerSecond int
	BudgetUsed    int64
	DailyBudget   int64
	BudgetResets  time.Duration // until the next UTC day
	// Rate is the fleet's rate of API calls now (calls/s; 0 with a fixed
	// rate = no limit, or with an adaptive one = not started yet) and
	// RateReason why: configured, or the adaptive rate's state.
	Rate       float64
	RateReason RateReason
	Adaptive   bool
	// Schedule is the rate schedule the fleet follows (the one announced
	// last; zero: none), and RateChangesAt when its rate changes next
	// (zero: never, or no schedule).
	Schedule      reverify.RateSchedule
	RateChangesAt time.Time
}

// BudgetSpent reports whether today's budget is used up.
func (s Status) BudgetSpent() bool { return s.DailyBudget > 0 && s.BudgetUsed >= s.DailyBudget }

// Status reads the fleet's state.
func (g *Governor) Status(ctx context.Context) (Status, error) {
	now := g.cfg.Now()
	pipe := g.rdb.Pipeline()
	authTTL := pipe.PTTL(ctx, g.keys.authCircuit)
	authReason := pipe.Get(ctx, g.keys.authCircuit)
	outageTTL := pipe.PTTL(ctx, g.keys.outageCircuit)
	inflight := pipe.ZCount(ctx, g.keys.inflight, strconv.FormatInt(now.UnixMilli(), 10), "+inf")
	used := pipe.Get(ctx, g.budgetKey(now))
	announced := pipe.Get(ctx, g.keys.budgetLimit)
	_, err := pipe.Exec(ctx)
	if err != nil && !errors.Is(err, redis.Nil) {
		return Status{}, fmt.Errorf("read fleet status: %w", err)
	}
	s := Status{
		MaxInFlight: g.cfg.MaxInFlight, RatePerSecond: g.cfg.RatePerSecond, DailyBudget: g.cfg.DailyBudget,
		BudgetResets: untilNextUTCDay(now), InFlight: inflight.Val(),
	}
	if d := authTTL.Val(); d > 0 {
		s.AuthOpenFor, s.AuthReason = d, authReason.Val()
	}
	if d := outageTTL.Val(); d > 0 {
		s.OutageOpenFor = d
	}
	s.BudgetUsed, _ = used.Int64()
	s.Schedule = g.schedule(ctx, true)
	s.RateChangesAt = g.limitAt(s.Schedule, now).next
	if s.Rate, s.RateReason, s.Adaptive, err = g.rateStatus(ctx, s.Schedule); err != nil {
		return Status{}, fmt.Errorf("read fleet status: %w", err)
	}
	if s.DailyBudget == 0 {
		s.DailyBudget, _ = announced.Int64()
	}
	return s, nil
}

// Announce publishes this process's daily budget, rate setting and rate
// schedule, so tools that do not know the workers' settings (`runs show`)
// can tell when the budget is spent and what the rate is. The schedule
// announced last is the one every worker follows (within a few seconds);
// replacing another one is logged as a warning.
func (g *Governor) Announce(ctx context.Context) error {
	mode := "fixed " + strconv.Itoa(g.cfg.RatePerSecond)
	if g.adaptive != nil {
		mode = "adaptive " + strconv.Itoa(g.cfg.RatePerSecond)
	}
	pipe := g.rdb.TxPipeline()
	pipe.Set(ctx, g.keys.budgetLimit, g.cfg.DailyBudget, 0)
	pipe.Set(ctx, g.keys.rateMode, mode, 0)
	prev := pipe.SetArgs(ctx, g.keys.rateSchedule, g.cfg.Schedule.String(), redis.SetArgs{Get: true})
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("announce daily budget and rate: %w", err)
	}
	if was, err := prev.Result(); err == nil && was != g.cfg.Schedule.String() {
		g.cfg.Logger.WarnContext(ctx, "workers announce different API rate schedules; the last announced wins, this one's",
			"was", was, "now", g.cfg.Schedule.String())
	}
	g.sched.mu.Lock()
	g.sched.cur, g.sched.read = g.cfg.Schedule, time.Now()
	g.sched.mu.Unlock()
	return nil
}

func untilNextUTCDay(now time.Time) time.Duration {
	u := now.UTC()
	next := time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC)
	return next.Sub(u)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
