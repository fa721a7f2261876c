package fleet

import (
	"context"
	"errors"
	"reverify"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RateSchedule is the reason of a rate its schedule sets (the fixed rate,
// or the adaptive rate held at the schedule's ceiling).
const RateSchedule RateReason = "schedule"

// scheduleRefresh is how often a governor looks for a schedule another
// worker announced: a changed schedule reaches every worker within it.
const scheduleRefresh = 5 * time.Second

// scheduleView is the rate schedule a governor follows — its own, or the
// one a worker announced later (the last announced wins) — and the span of
// the rate it gives now, so an admission does not scan the week.
type scheduleView struct {
	mu     sync.Mutex
	cur    reverify.RateSchedule
	read   time.Time // when Redis was last asked (the process's own clock: a cache age)
	warned string    // the announced schedule last warned of

	span struct {
		text     string // of the schedule it was computed for
		from     time.Time
		next     time.Time // zero: never changes
		rate     float64
		covered  bool
		computed bool
	}
}

// limit is the bound the fleet's rate has at a moment.
type limit struct {
	rate      float64   // calls/s; 0 and not stop: none
	scheduled bool      // a window of the schedule set it
	stop      bool      // the schedule allows no calls now
	next      time.Time // when the schedule changes next; zero: never, or no schedule
}

// until is how long a stop lasts, bounded so a task comes back to see a
// schedule someone changed.
func (l limit) until(now time.Time) time.Duration {
	const most = time.Minute
	if l.next.IsZero() {
		return most
	}
	return min(max(l.next.Sub(now), 100*time.Millisecond), most)
}

// schedule returns the schedule the fleet follows: the one announced last
// in Redis when there is one, else this governor's own. It reads Redis at
// most every scheduleRefresh, unless fresh.
func (g *Governor) schedule(ctx context.Context, fresh bool) reverify.RateSchedule {
	v := &g.sched
	v.mu.Lock()
	cur := v.cur
	due := fresh || time.Since(v.read) >= scheduleRefresh
	if due {
		v.read = time.Now()
	}
	v.mu.Unlock()
	if !due {
		return cur
	}
	text, err := g.rdb.Get(ctx, g.keys.rateSchedule).Result()
	next := cur
	switch {
	case errors.Is(err, redis.Nil):
		next = g.cfg.Schedule // nobody announced one
	case err != nil:
		return cur // keep following the one known; Redis errors show at admission
	case text != cur.String():
		if err := next.UnmarshalText([]byte(text)); err != nil {
			g.cfg.Logger.WarnContext(ctx, "ignoring an unreadable announced API rate schedule", "err", err)
			return cur
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.cur = next
	if next.String() != g.cfg.Schedule.String() && v.warned != next.String() {
		v.warned = next.String()
		g.cfg.Logger.WarnContext(ctx, "following the API rate schedule another worker announced, not this one's: the last announced wins",
			"announced", next.String(), "own", g.cfg.Schedule.String())
	}
	return next
}

// limitAt is the fleet's rate bound at now under sch: the schedule's rate
// where a window covers now, RatePerSecond elsewhere.
func (g *Governor) limitAt(sch reverify.RateSchedule, now time.Time) limit {
	v := &g.sched
	v.mu.Lock()
	defer v.mu.Unlock()
	sp := &v.span
	if !sp.computed || sp.text != sch.String() || now.Before(sp.from) || (!sp.next.IsZero() && !now.Before(sp.next)) {
		sp.text, sp.from, sp.computed = sch.String(), now, true
		sp.rate, sp.covered = sch.At(now)
		sp.next = sch.NextChange(now)
	}
	if sp.covered {
		return limit{rate: sp.rate, scheduled: true, stop: sp.rate <= 0, next: sp.next}
	}
	return limit{rate: float64(g.cfg.RatePerSecond), next: sp.next}
}

// limitNow is the fleet's rate bound now.
func (g *Governor) limitNow(ctx context.Context) limit {
	return g.limitAt(g.schedule(ctx, false), g.cfg.Now())
}

// lawAt is the adaptive law with the ceiling of the moment.
func (g *Governor) lawAt(l limit) Cubic {
	law := g.adaptive.law
	law.Max = l.rate
	return law
}
