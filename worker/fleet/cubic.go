package fleet

import (
	"math"
	"time"
)

// RateReason says why the fleet's adaptive rate is what it is.
type RateReason string

// Rate reasons, as `runs show` and /metrics print them.
const (
	RateConfigured      RateReason = "configured"      // a fixed --api-rate (or none)
	RateProbing         RateReason = "probing"         // above the last rate the API refused: growing to find the limit
	RateRecovering      RateReason = "recovering"      // below the last rate the API refused: growing back towards it
	RateBackoff429      RateReason = "backoff-429"     // just cut after a 429
	RateBackoffTimeout  RateReason = "backoff-timeout" // just cut after a call timed out
	RateBackoffLatency  RateReason = "backoff-latency" // just cut after the API's latency rose
	RateCeiling         RateReason = "ceiling"         // held at the configured ceiling
	RateDemand          RateReason = "demand"          // held at 1.5× the calls the fleet asked for in the last second
	rateReasonUnknown   RateReason = ""                //
	backoffHoldsReasonF            = 1.0               // a cut shows as backoff-* until the rate is back to this share of the cut's start
)

// Cubic is the control law of the adaptive fleet rate: CUBIC (RFC 9438),
// with the constants of the AWS SDKs' adaptive retry mode (β = 0.7,
// C = 0.4). After a cut at time t₀ from rate W_max to β·W_max the rate is
//
//	W(t) = C·(t − t₀ − K)³ + W_max,  K = ∛(W_max·(1−β)/C)
//
// concave up to W_max (it comes back fast, then lingers near the rate
// that was refused), convex beyond it (it probes for more, slowly first).
// The law is pure: the caller keeps the state (in Redis, for the fleet)
// and the clock.
type Cubic struct {
	C       float64       // scale; default 0.4
	Beta    float64       // share kept on a cut; default 0.7
	Min     float64       // the rate never goes below; default 1/s
	Max     float64       // ceiling; 0 = none
	Initial float64       // where a fleet without state starts; default 10/s
	Window  time.Duration // reaction window: at most one cut per window; default 500ms
}

func (c Cubic) withDefaults() Cubic {
	if c.C <= 0 {
		c.C = 0.4
	}
	if c.Beta <= 0 || c.Beta >= 1 {
		c.Beta = 0.7
	}
	if c.Min <= 0 {
		c.Min = 1
	}
	if c.Initial <= 0 {
		c.Initial = 10
	}
	if c.Max > 0 {
		c.Initial = min(c.Initial, c.Max)
		c.Min = min(c.Min, c.Max)
	}
	if c.Window <= 0 {
		c.Window = 500 * time.Millisecond
	}
	return c
}

// CubicState is what the fleet shares: the rate last refused, the rate
// right after the cut, and when and why it was cut.
type CubicState struct {
	WMax  float64    // calls/s when the API last refused
	Base  float64    // calls/s right after the cut (β·WMax, or Initial at the start)
	Since time.Time  // when the cut (or the start) happened
	Cause RateReason // backoff-* of the last cut; probing at the start
}

// demandFactor bounds the rate by the calls the fleet tried to make: the
// AWS SDKs use 2 (of the calls made); 1.5 keeps the burst smaller when a
// fleet short of work gets it.
const demandFactor = 1.5

// Start is the state of a fleet that has no state yet: at Initial, probing.
func (c Cubic) Start(now time.Time) CubicState {
	c = c.withDefaults()
	return CubicState{WMax: c.Initial, Base: c.Initial, Since: now, Cause: RateProbing}
}

// Rate is the fleet's rate at now, and why. measured is the calls the
// fleet tried to make in the last second, admitted or not (< 0: unknown);
// the rate stays below 1.5 times that (at least Initial), so a fleet with
// less work than rate does not build up a rate it never tested (and then
// send a burst at it when work comes).
func (c Cubic) Rate(st CubicState, now time.Time, measured float64) (float64, RateReason) {
	c = c.withDefaults()
	k := math.Cbrt(max(st.WMax-st.Base, 0) / c.C)
	t := now.Sub(st.Since).Seconds()
	w := c.C*math.Pow(t-k, 3) + st.WMax
	reason := RateProbing
	switch {
	case t < c.Window.Seconds() || (t < k && w < st.Base+(st.WMax-st.Base)/2):
		reason = st.Cause // the first half of the way back still shows the cut
	case t < k:
		reason = RateRecovering
	}
	if measured >= 0 {
		if d := max(demandFactor*measured, c.Initial); w > d {
			w, reason = d, RateDemand
		}
	}
	if c.Max > 0 && w >= c.Max {
		w, reason = c.Max, RateCeiling
	}
	return max(w, c.Min), reason
}

// Throttle applies a sign that the API is overloaded (cause backoff-*)
// seen at now, for a call sent at sent. It cuts the rate to β of what it
// was (bounded by the measured rate, as Rate bounds it), at most once per
// reaction window, and not for a 429 or a slow answer to a call sent
// before the last cut: the fleet reacts once to one overload, not once
// per worker or per call. Timeouts are exempt from the second rule: they
// arrive a whole call timeout late, and one cut per timeout-long round
// would let the rate grow back between cuts through an outage.
// When the rate refused is below the previous one, the limit has come
// down: W_max is set lower still (RFC 9438 §4.7, fast convergence).
func (c Cubic) Throttle(st CubicState, now, sent time.Time, measured float64, cause RateReason) (CubicState, bool) {
	c = c.withDefaults()
	if now.Sub(st.Since) < c.Window || (cause != RateBackoffTimeout && sent.Before(st.Since)) {
		return st, false
	}
	// Not β × measured: a fleet short of work for a second would cut far
	// below the limit (the AWS SDKs' min(measured, rate) is for one client
	// that is always busy).
	cur, _ := c.Rate(st, now, measured)
	wmax := cur
	if cur < st.WMax {
		wmax = cur * (1 + c.Beta) / 2
	}
	base := max(cur*c.Beta, c.Min)
	return CubicState{WMax: max(wmax, base), Base: base, Since: now, Cause: cause}, true
}

// Rebase keeps a fleet short of work from holding a rate it never
// tested: when the curve is at least twice the demand bound (a long time
// without a cut, spent with less work than rate), the curve restarts at
// that bound, climbing back towards the rate last refused (W_max is kept)
// or probing from the bound when that is above it. It acts at most once
// per reaction window (RFC 7661 in spirit: validate the rate by use).
func (c Cubic) Rebase(st CubicState, now time.Time, measured float64) (CubicState, bool) {
	c = c.withDefaults()
	if measured < 0 || now.Sub(st.Since) < c.Window {
		return st, false
	}
	free, _ := c.Rate(st, now, -1)
	bound := max(demandFactor*measured, c.Initial)
	if c.Max > 0 {
		bound = min(bound, c.Max)
	}
	if free < 2*bound {
		return st, false
	}
	return CubicState{WMax: max(st.WMax, bound), Base: bound, Since: now, Cause: RateDemand}, true
}
