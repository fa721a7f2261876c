package fleet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reverify"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Signal is what an answered (or unanswered) call tells the adaptive rate.
type Signal int

// Signals.
const (
	SignalAnswered Signal = iota + 1 // any answer but a 429: its latency counts
	SignalLimited                    // 429
	SignalTimeout                    // no answer within the call timeout
)

func (s Signal) String() string {
	switch s {
	case SignalAnswered:
		return "answered"
	case SignalLimited:
		return "429"
	case SignalTimeout:
		return "timeout"
	}
	return "unknown(" + strconv.Itoa(int(s)) + ")"
}

// adaptiveTTL: a fleet idle this long forgets its rate and starts again.
const adaptiveTTL = time.Hour

// reserveScript spaces the fleet's calls at its rate (adaptive or fixed,
// each with its own keys): it reserves
// the next free instant (a GCRA's theoretical arrival time, with no burst)
// when it is at most max wait away, counts the attempt in the current
// second (reserved or not: the demand, not what the rate let through), and
// returns the controller's state, so every admission refreshes the
// process's copy without another round trip. A max wait below 0 only
// reads. Times are Redis's, in microseconds.
//
// KEYS: state hash (the controller's and the demand's), arrival time
// ARGV: interval µs, max wait µs, ttl ms
// Returns: {reserved, wait µs, now s, msec, mprev, mcur, wmax, base, since ms, cause, ver, mavg}
// (mprev: the calls of second msec-1, mcur: of second msec, mavg: their
// moving average, halved each second, up to msec-1)
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if tat < now then tat = now end
local wait = tat - now
local ok = 0
if tonumber(ARGV[2]) >= 0 then
  if wait <= tonumber(ARGV[2]) then
    ok = 1
    redis.call('SET', KEYS[2], string.format('%.0f', tat + tonumber(ARGV[1])), 'PX', ARGV[3])
  end
  local sec = tonumber(t[1])
  local msec = tonumber(redis.call('HGET', KEYS[1], 'msec') or '0')
  if sec == msec then
    redis.call('HINCRBY', KEYS[1], 'mcur', 1)
  else
    local cur = tonumber(redis.call('HGET', KEYS[1], 'mcur') or '0')
    local avg = (tonumber(redis.call('HGET', KEYS[1], 'mavg') or '0') + cur) / 2
    local prev = cur
    if sec > msec + 1 then
      avg = avg / 2 ^ math.min(sec - msec - 1, 60)
      prev = 0
    end
    redis.call('HSET', KEYS[1], 'mprev', prev, 'mcur', 1, 'msec', sec, 'mavg', string.format('%.3f', avg))
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
local v = redis.call('HMGET', KEYS[1], 'msec', 'mprev', 'mcur', 'wmax', 'base', 'since', 'cause', 'ver', 'mavg')
return {ok, string.format('%.0f', wait), t[1], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]}
`)

// casScript replaces the controller's state if nobody changed it since
// version ARGV[1] was read: of the workers that see one overload, one
// cuts. It clears the schedule of reserved instants, made at the old rate.
//
// KEYS: state hash, arrival time
// ARGV: expected version, wmax, base, since ms, cause, ttl ms, 1 = a cut
var casScript = redis.NewScript(`
local v = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
if v ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'ver', v + 1, 'wmax', ARGV[2], 'base', ARGV[3], 'since', ARGV[4], 'cause', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
if ARGV[7] == '1' then redis.call('DEL', KEYS[2]) end
return 1
`)

// shared is the controller's state as read from Redis.
type shared struct {
	st       CubicState
	ver      int64
	measured float64 // calls attempted in the last whole second (Cubic.Rate's demand)
	ok       bool    // the fleet has a state (ver > 0)
}

func parseShared(res []any) (shared, error) {
	if len(res) != 12 {
		return shared{}, fmt.Errorf("fleet adaptive rate: unexpected answer of %d values", len(res))
	}
	num := func(i int) float64 {
		s, _ := res[i].(string)
		f, _ := strconv.ParseFloat(s, 64)
		return f
	}
	// The attempts of the last whole second, or their moving average when
	// higher: tasks come back from their retry waits in bursts, and a
	// second's dip is no reason to bound the rate.
	now, msec, avg := num(2), num(3), num(11)
	var sh shared
	switch msec {
	case now:
		sh.measured = max(num(4), avg)
	case now - 1:
		sh.measured = max(num(5), (avg+num(5))/2)
	}
	sh.ver = int64(num(10))
	if sh.ver > 0 {
		sh.ok = true
		sh.st = CubicState{WMax: num(6), Base: num(7), Since: time.UnixMilli(int64(num(8))), Cause: RateReason(fmt.Sprint(res[9]))}
	}
	return sh, nil
}

// adaptive is a process's side of the fleet's adaptive rate: the law, the
// last state it saw, and its own view of the API's latency.
type adaptive struct {
	law     Cubic
	latency *LatencyRise

	mu      sync.Mutex
	last    shared
	rebased time.Time // this process's last Rebase attempt
}

// remember keeps the state last read. A fleet idle past adaptiveTTL has
// none: the next admission starts it again.
func (a *adaptive) remember(sh shared) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = sh
}

// rebase restarts the curve at the demand bound when the fleet has had
// less work than rate (Cubic.Rebase); each process tries at most once per
// reaction window.
func (g *Governor) rebase(ctx context.Context, law Cubic) error {
	a := g.adaptive
	now := g.cfg.Now()
	a.mu.Lock()
	sh := a.last
	due := now.Sub(a.rebased) >= law.withDefaults().Window
	next, ok := law.Rebase(sh.st, now, sh.measured)
	if ok && due && sh.ok {
		a.rebased = now
	}
	a.mu.Unlock()
	if !ok || !due || !sh.ok {
		return nil
	}
	done, err := g.casAdaptive(ctx, sh.ver, next, false)
	if done {
		a.remember(shared{st: next, ver: sh.ver + 1, measured: sh.measured, ok: true})
	}
	return err
}

// reserveHorizon is how far ahead a call may reserve its instant. The
// instants reserved are spaced at the rate of when they were taken, so a
// deep queue of them (MaxWait, 2 s) would make the calls follow a rising
// adaptive rate that much later — and overshoot the limit by as much
// growth before the first 429 comes back.
const reserveHorizon = 250 * time.Millisecond

// waitForAdaptive waits for the fleet's next call instant at the
// adaptive rate. A cut while it sleeps voids the reservation (made at the
// old rate): it reserves again, so a cut holds at once.
func (g *Governor) waitForAdaptive(ctx context.Context, deadline time.Time, sch reverify.RateSchedule) error {
	a := g.adaptive
	if err := g.ensureAdaptive(ctx); err != nil {
		return err
	}
	if err := g.rebase(ctx, g.lawAt(g.limitAt(sch, g.cfg.Now()))); err != nil {
		return err
	}
	rate := func() limit {
		now := g.cfg.Now()
		l := g.limitAt(sch, now)
		if l.stop {
			return l
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		l.rate, _ = g.lawAt(l).Rate(a.last.st, now, a.last.measured)
		return l
	}
	return g.reserve(ctx, deadline, g.keys.adaptive, g.keys.adaptiveTAT, rate, func(sh shared, wait time.Duration) bool {
		a.remember(sh)
		return true
	}, func(sh shared, wait time.Duration) bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.last.ver != sh.ver && a.last.st.Since.After(g.cfg.Now().Add(-wait))
	})
}

// waitForFixed waits for the fleet's next call instant at the fixed rate
// (the schedule's where a window covers the moment).
func (g *Governor) waitForFixed(ctx context.Context, deadline time.Time, sch reverify.RateSchedule) error {
	rate := func() limit { return g.limitAt(sch, g.cfg.Now()) }
	return g.reserve(ctx, deadline, g.keys.fixedStats, g.keys.fixedTAT, rate, nil, nil)
}

// reserve reserves the fleet's next call instant at rate(), at most
// reserveHorizon ahead (a farther one, up to the deadline, it waits to
// come near first), and sleeps until it. seen is given every state read;
// voided, after the sleep, says whether the reservation no longer holds.
// An instant past the deadline, or a schedule that stops calls, is a
// *Denied. No instant is reserved past the schedule's next change at the
// rate before it, so the new rate holds from the change on (the arrival
// time carries across it: calls stay spaced).
func (g *Governor) reserve(ctx context.Context, deadline time.Time, stateKey, tatKey string, rate func() limit,
	seen func(shared, time.Duration) bool, voided func(shared, time.Duration) bool) error {
	for {
		now := g.cfg.Now()
		l := rate()
		switch {
		case l.stop:
			return &Denied{Reason: reverify.WaitFleetRate, After: l.until(now)}
		case l.rate <= 0:
			return nil // no limit now
		}
		maxWait := max(deadline.Sub(now), 0)
		horizon := min(maxWait, reserveHorizon)
		if !l.next.IsZero() {
			horizon = min(horizon, max(l.next.Sub(now), 0))
		}
		res, err := reserveScript.Run(ctx, g.rdb, []string{stateKey, tatKey},
			int64(1e6/l.rate), horizon.Microseconds(), adaptiveTTL.Milliseconds()).Slice()
		if err != nil {
			return fmt.Errorf("fleet rate: %w", err)
		}
		sh, err := parseShared(res)
		if err != nil {
			return err
		}
		w, _ := strconv.ParseInt(fmt.Sprint(res[1]), 10, 64)
		wait := time.Duration(w) * time.Microsecond
		if seen != nil {
			seen(sh, wait)
		}
		if reserved, _ := res[0].(int64); reserved != 1 {
			if wait > maxWait {
				after := max(wait-maxWait, 100*time.Millisecond)
				if !l.next.IsZero() {
					// A wait worked out at the old rate would bring the task
					// back late after the schedule's change: come back by it.
					after = min(after, max(l.next.Sub(now), 100*time.Millisecond))
				}
				return &Denied{Reason: reverify.WaitFleetRate, After: after}
			}
			// Within MaxWait but past the horizon: come back near it.
			if err := sleep(ctx, wait-horizon+rand.N(horizon/2+time.Microsecond)); err != nil {
				return err
			}
			continue
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		if voided == nil || !voided(sh, wait) {
			return nil
		}
	}
}

// ensureAdaptive gives the fleet a state when it has none (first start,
// or idle past adaptiveTTL).
func (g *Governor) ensureAdaptive(ctx context.Context) error {
	a := g.adaptive
	a.mu.Lock()
	ok := a.last.ok
	a.mu.Unlock()
	if ok {
		return nil
	}
	sh, err := g.readAdaptive(ctx)
	if err != nil || sh.ok {
		return err
	}
	if _, err := g.casAdaptive(ctx, sh.ver, a.law.Start(g.cfg.Now()), false); err != nil {
		return err
	}
	_, err = g.readAdaptive(ctx)
	return err
}

func (g *Governor) readAdaptive(ctx context.Context) (shared, error) {
	res, err := reserveScript.Run(ctx, g.rdb, []string{g.keys.adaptive, g.keys.adaptiveTAT}, 0, -1, adaptiveTTL.Milliseconds()).Slice()
	if err != nil {
		return shared{}, fmt.Errorf("fleet adaptive rate: %w", err)
	}
	sh, err := parseShared(res)
	if err != nil {
		return shared{}, err
	}
	if g.adaptive != nil {
		g.adaptive.remember(sh)
	}
	return sh, nil
}

func (g *Governor) casAdaptive(ctx context.Context, ver int64, st CubicState, cut bool) (bool, error) {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	voids := 0 // a cut voids the reservations made at the old rate
	if cut {
		voids = 1
	}
	n, err := casScript.Run(ctx, g.rdb, []string{g.keys.adaptive, g.keys.adaptiveTAT}, ver, f(st.WMax), f(st.Base),
		st.Since.UnixMilli(), string(st.Cause), adaptiveTTL.Milliseconds(), voids).Int()
	if err != nil {
		return false, fmt.Errorf("fleet adaptive rate: %w", err)
	}
	return n == 1, nil
}

// Adapt tells the adaptive rate how a call sent at sent went: a 429 or a
// timeout cuts the fleet's rate (once per reaction window, whichever
// worker sees it first); an answer feeds the latency watch, which cuts it
// when the API's latency rises well above its usual. It returns true when
// this report cut the rate. Without an adaptive rate it does nothing.
func (g *Governor) Adapt(ctx context.Context, sent time.Time, latency time.Duration, s Signal) (bool, error) {
	a := g.adaptive
	if a == nil {
		return false, nil
	}
	var cause RateReason
	switch s {
	case SignalLimited:
		cause = RateBackoff429
	case SignalTimeout:
		cause = RateBackoffTimeout
	default:
		if !a.latency.Observe(latency) {
			return false, nil
		}
		cause = RateBackoffLatency
	}
	for range 3 {
		sh, err := g.readAdaptive(ctx)
		if err != nil {
			return false, err
		}
		if !sh.ok {
			return false, nil
		}
		next, cut := g.lawAt(g.limitNow(ctx)).Throttle(sh.st, g.cfg.Now(), sent, sh.measured, cause)
		if !cut {
			return false, nil
		}
		ok, err := g.casAdaptive(ctx, sh.ver, next, true)
		if err != nil {
			return false, err
		}
		if ok {
			a.remember(shared{st: next, ver: sh.ver + 1, measured: sh.measured, ok: true})
			return true, nil
		}
	}
	return false, errors.New("fleet adaptive rate: state kept changing")
}

// rateStatus is the fleet's rate and why, for Status. A governor made
// without the workers' settings (`runs show`) uses the ones the workers
// announced.
func (g *Governor) rateStatus(ctx context.Context, sch reverify.RateSchedule) (float64, RateReason, bool, error) {
	now := g.cfg.Now()
	l := g.limitAt(sch, now)
	law := Cubic{}
	if g.adaptive != nil {
		law = g.lawAt(l)
	} else {
		mode, err := g.rdb.Get(ctx, g.keys.rateMode).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, "", false, fmt.Errorf("read the announced rate: %w", err)
		}
		kind, n, _ := strings.Cut(mode, " ")
		ceiling, _ := strconv.Atoi(n)
		if !l.scheduled && (kind == "fixed" || kind == "adaptive") {
			l.rate = float64(ceiling) // the workers' --api-rate, not this process's
		}
		switch {
		case kind == "fixed", kind != "adaptive":
			if l.scheduled {
				return l.rate, RateSchedule, false, nil
			}
			return l.rate, RateConfigured, false, nil
		}
		law.Max = l.rate
	}
	if l.stop {
		return 0, RateSchedule, true, nil
	}
	sh, err := g.readAdaptive(ctx)
	if err != nil {
		return 0, "", true, err
	}
	if !sh.ok {
		return 0, "", true, nil // no worker has called the API yet
	}
	r, why := law.Rate(sh.st, now, sh.measured)
	if why == RateCeiling && l.scheduled {
		why = RateSchedule
	}
	return r, why, true, nil
}

// LatencyRise watches one process's API latency: a fast moving average
// against a baseline that follows the lowest it has been and creeps up
// slowly, so that a lasting change of the API's speed becomes the new
// usual within a few thousand calls. It is safe for concurrent use.
type LatencyRise struct {
	Factor float64       // a rise is fast > Factor × baseline …
	Margin time.Duration // … and fast > baseline + Margin

	mu         sync.Mutex
	n          int
	fast, base float64 // seconds
}

// Observe adds one answer's latency and reports whether latency has risen.
func (l *LatencyRise) Observe(d time.Duration) bool {
	if l == nil || l.Factor <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	x := d.Seconds()
	l.n++
	if l.n == 1 {
		l.fast, l.base = x, x
		return false
	}
	l.fast += 0.1 * (x - l.fast)
	if l.fast < l.base {
		l.base = l.fast
	} else {
		l.base += 0.001 * (l.fast - l.base)
	}
	return l.n >= 50 && l.fast > l.Factor*l.base && l.fast-l.base > l.Margin.Seconds()
}
