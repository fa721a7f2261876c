package fleet_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify/worker/fleet"
)

// simVendor is a vendor with a hidden limit: a token bucket of R(t)
// calls/s holding R/5, answering after latency, or not at all while down.
type simVendor struct {
	limit   func(t time.Duration) float64 // R at t
	down    func(t time.Duration) bool    // no answer: the call times out
	demand  func(t time.Duration) float64 // calls/s the fleet has work for; nil = always more than rate
	latency time.Duration
	tokens  float64
	last    time.Duration
}

func (v *simVendor) admit(t time.Duration) bool {
	r := v.limit(t)
	v.tokens = min(max(r/5, 1), v.tokens+(t-v.last).Seconds()*r)
	v.last = t
	if v.tokens >= 1 {
		v.tokens--
		return true
	}
	return false
}

// simSecond is what happened in one simulated second.
type simSecond struct {
	ok, limited, timedOut int
	rate                  float64 // the controller's rate at the end of it
}

// simulate drives the control law for d of simulated time in 1 ms steps,
// with a fleet that always has calls to make, and returns each second.
func simulate(t *testing.T, law fleet.Cubic, v *simVendor, d time.Duration) []simSecond {
	t.Helper()
	const step = time.Millisecond
	const timeout = 5 * time.Second
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type pending struct {
		sent, due time.Duration
		status    int // 200, 429, 0 = timed out
	}
	st := law.Start(epoch)
	var queue []pending
	secs := make([]simSecond, int(d/time.Second))
	sentThis, sentPrev := 0, -1 // calls sent this second and the previous one (-1: unknown)
	credit, work := 0.0, 0.0
	for now := time.Duration(0); now < d; now += step {
		if now%time.Second == 0 && now > 0 {
			sentPrev, sentThis = sentThis, 0
		}
		clock := epoch.Add(now)
		if next, ok := law.Rebase(st, clock, float64(sentPrev)); ok {
			st = next
		}
		rate, _ := law.Rate(st, clock, float64(sentPrev))
		credit += rate * step.Seconds()
		if v.demand == nil {
			work = 1
		} else {
			work = min(work+v.demand(now)*step.Seconds(), 1+rate) // work waiting: at most a second's worth
		}
		if credit >= 1 && work >= 1 {
			credit = min(credit-1, 1)
			work--
			sentThis++
			switch {
			case v.down(now):
				queue = append(queue, pending{sent: now, due: now + timeout})
			case v.admit(now):
				queue = append(queue, pending{sent: now, due: now + v.latency, status: 200})
			default:
				queue = append(queue, pending{sent: now, due: now + v.latency/5, status: 429})
			}
		}
		kept := queue[:0]
		for _, p := range queue {
			if p.due > now {
				kept = append(kept, p)
				continue
			}
			s := &secs[now/time.Second]
			switch p.status {
			case 200:
				s.ok++
			case 429:
				s.limited++
				st, _ = law.Throttle(st, clock, epoch.Add(p.sent), float64(sentPrev), fleet.RateBackoff429)
			default:
				s.timedOut++
				st, _ = law.Throttle(st, clock, epoch.Add(p.sent), float64(sentPrev), fleet.RateBackoffTimeout)
			}
		}
		queue = kept
		secs[now/time.Second].rate = rate
	}
	return secs
}

// over sums the seconds [from, to): calls answered 200 per second, and the
// share of answered calls that got 429.
func over(secs []simSecond, from, to int) (okPerSec, limitedShare float64) {
	ok, limited := 0, 0
	for _, s := range secs[from:to] {
		ok += s.ok
		limited += s.limited
	}
	return float64(ok) / float64(to-from), float64(limited) / float64(max(ok+limited, 1))
}

// tracked returns the first second from start after which every 5-second
// window up to end carries at least share of r, with at most 2% of 429.
func tracked(secs []simSecond, start, end int, r, share float64) int {
	first := -1
	for s := start; s+5 <= end; s++ {
		ok, limited := over(secs, s, s+5)
		switch {
		case ok < share*r || limited > 0.02:
			first = -1
		case first < 0:
			first = s
		}
	}
	return first
}

func TestCubicSimulatedVendor(t *testing.T) {
	t.Parallel()
	never := func(time.Duration) bool { return false }
	law := fleet.Cubic{}
	t.Run("step 150 to 75 to 150", func(t *testing.T) {
		t.Parallel()
		limit := func(t time.Duration) float64 {
			if t >= 120*time.Second && t < 240*time.Second {
				return 75
			}
			return 150
		}
		secs := simulate(t, law, &simVendor{limit: limit, down: never, latency: 80 * time.Millisecond}, 360*time.Second)
		for _, p := range []struct {
			name       string
			from, to   int
			r          float64
			changeAt   int
			trackedMax int
		}{
			{"start", 0, 120, 150, 0, 60},
			{"drop", 120, 240, 75, 120, 30},
			{"rise", 240, 360, 150, 240, 30},
		} {
			at := tracked(secs, p.from, p.to, p.r, 0.9)
			require.GreaterOrEqual(t, at, 0, "%s: never tracked %v/s", p.name, p.r)
			require.LessOrEqual(t, at-p.changeAt, p.trackedMax, "%s: tracked after %d s", p.name, at-p.changeAt)
			ok, share := over(secs, at, p.to)
			t.Logf("%s: tracked %v/s after %d s; then %.1f/s (%.3f R), %.2f%% 429", p.name, p.r, at-p.changeAt, ok, ok/p.r, 100*share)
			require.GreaterOrEqual(t, ok, 0.9*p.r)
			require.LessOrEqual(t, ok, 1.01*p.r)
			require.LessOrEqual(t, share, 0.02)
		}
	})
	t.Run("ramp 50 to 200 and back", func(t *testing.T) {
		t.Parallel()
		// Up over 120 s, down over 120 s: 1.25 calls/s each second.
		limit := func(t time.Duration) float64 {
			s := t.Seconds()
			if s < 120 {
				return 50 + 150*s/120
			}
			return max(200-150*(s-120)/120, 50)
		}
		secs := simulate(t, law, &simVendor{limit: limit, down: never, latency: 80 * time.Millisecond}, 240*time.Second)
		sent, allowed := 0.0, 0.0
		for s := 30; s < 240; s++ {
			ok, _ := over(secs, s, s+1)
			sent += ok
			allowed += limit(time.Duration(s)*time.Second + 500*time.Millisecond)
		}
		_, share := over(secs, 30, 240)
		t.Logf("ramp: %.3f of the allowed calls, %.2f%% 429", sent/allowed, 100*share)
		require.GreaterOrEqual(t, sent/allowed, 0.88)
		require.LessOrEqual(t, share, 0.02)
	})
	t.Run("work comes and goes", func(t *testing.T) {
		t.Parallel()
		// 20 s with work for 30 calls/s, then 20 s with work for more
		// than the limit, and so on: each return of work must not burst.
		demand := func(t time.Duration) float64 {
			if int(t.Seconds())/20%2 == 0 {
				return 30
			}
			return 1000
		}
		secs := simulate(t, law, &simVendor{limit: func(time.Duration) float64 { return 150 }, down: never,
			demand: demand, latency: 80 * time.Millisecond}, 240*time.Second)
		ok, share := over(secs, 20, 240)
		t.Logf("work comes and goes: %.1f/s, %.2f%% 429", ok, 100*share)
		require.LessOrEqual(t, share, 0.005, "no burst when work returns (about 1% without Rebase)")
		for from := 40; from < 240; from += 40 { // the busy stretches, past their first 10 s
			ok, _ := over(secs, from-10, from)
			require.GreaterOrEqual(t, ok, 0.85*150, "busy stretch ending at %d s", from)
		}
	})
	t.Run("outage", func(t *testing.T) {
		t.Parallel()
		// Down from 60 s to 90 s: calls time out after 5 s.
		down := func(t time.Duration) bool { return t >= 60*time.Second && t < 90*time.Second }
		secs := simulate(t, law, &simVendor{limit: func(time.Duration) float64 { return 150 }, down: down, latency: 80 * time.Millisecond}, 180*time.Second)
		require.Less(t, secs[88].rate, 150.0*0.7, "the timeouts cut the rate")
		timedOut := 0
		for _, s := range secs[60:100] {
			timedOut += s.timedOut
		}
		at := tracked(secs, 90, 180, 150, 0.9)
		require.GreaterOrEqual(t, at, 0, "never recovered")
		ok, share := over(secs, at, 180)
		t.Logf("outage: %d calls timed out; recovered %d s after; then %.1f/s, %.2f%% 429", timedOut, at-90, ok, 100*share)
		require.LessOrEqual(t, at-90, 30)
		require.Less(t, timedOut, 30*150*7/10, "the fleet did not keep sending at full rate into the outage")
		require.GreaterOrEqual(t, ok, 0.9*150)
		require.LessOrEqual(t, share, 0.02)
	})
}

func TestCubicLaw(t *testing.T) {
	t.Parallel()
	law := fleet.Cubic{Max: 100}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := law.Start(t0)
	r, why := law.Rate(st, t0, -1)
	require.Equal(t, 10.0, r)
	require.Equal(t, fleet.RateProbing, why)

	r, why = law.Rate(st, t0.Add(time.Hour), -1)
	require.Equal(t, 100.0, r)
	require.Equal(t, fleet.RateCeiling, why)

	r, why = law.Rate(st, t0.Add(time.Hour), 20)
	require.Equal(t, 30.0, r, "1.5 times what the fleet asked for")
	require.Equal(t, fleet.RateDemand, why)

	// A cut: the reaction window and calls sent before it are ignored.
	_, ok := law.Throttle(st, t0.Add(300*time.Millisecond), t0.Add(200*time.Millisecond), -1, fleet.RateBackoff429)
	require.False(t, ok, "within the reaction window")
	at := t0.Add(6 * time.Second)
	cut, ok := law.Throttle(st, at, at.Add(-time.Second), -1, fleet.RateBackoff429)
	require.True(t, ok)
	before, _ := law.Rate(st, at, -1)
	require.InDelta(t, before, cut.WMax, 1e-9)
	r, why = law.Rate(cut, at, -1)
	require.InDelta(t, 0.7*before, r, 1e-9)
	require.Equal(t, fleet.RateBackoff429, why)
	_, ok = law.Throttle(cut, at.Add(2*time.Second), at.Add(-time.Millisecond), -1, fleet.RateBackoff429)
	require.False(t, ok, "sent before the cut")

	// Back at W_max after K = ∛(W_max·0.3/0.4).
	k := time.Duration(math.Cbrt(cut.WMax*0.3/0.4) * float64(time.Second))
	r, why = law.Rate(cut, at.Add(k+time.Millisecond), -1)
	require.InDelta(t, cut.WMax, r, 1e-3)
	require.Equal(t, fleet.RateProbing, why)
	r, why = law.Rate(cut, at.Add(k/2), -1)
	require.Equal(t, fleet.RateRecovering, why)
	require.Greater(t, r, 0.7*cut.WMax)
}

func TestLatencyRise(t *testing.T) {
	t.Parallel()
	l := &fleet.LatencyRise{Factor: 3, Margin: 250 * time.Millisecond}
	for range 200 {
		require.False(t, l.Observe(50*time.Millisecond), "steady latency")
	}
	rose := 0
	for range 50 {
		if l.Observe(time.Second) {
			rose++
		}
	}
	require.Positive(t, rose, "50 ms to 1 s is a rise")

	small := &fleet.LatencyRise{Factor: 3, Margin: 250 * time.Millisecond}
	for range 200 {
		small.Observe(10 * time.Millisecond)
	}
	for range 100 {
		require.False(t, small.Observe(100*time.Millisecond), "10× but under the margin")
	}
	require.False(t, (&fleet.LatencyRise{Factor: -1}).Observe(time.Hour), "off")
}
