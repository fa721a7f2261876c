package cost

import (
	"fmt"
	"math"
	"strings"
	"time"

	"reverify"
)

// Fleet is how fast the fleet calls the API.
type Fleet struct {
	// Rate is the calls per second where no schedule window applies: the
	// fixed rate, or the adaptive rate now (0: none).
	Rate     float64
	Adaptive bool // Rate is the adaptive rate now, not a setting
	// Schedule is the fleet's rate schedule (zero: none).
	Schedule reverify.RateSchedule
	// DailyBudget is the calls the fleet may make per UTC day (0: no
	// limit), UsedToday how many of today's it made.
	DailyBudget int64
	UsedToday   int64
}

// Known reports whether the fleet has any rate to forecast with.
func (f Fleet) Known() bool { return f.Rate > 0 || !f.Schedule.IsZero() }

// Input is what a forecast is made of.
type Input struct {
	Objects  int64 // objects the run holds, or has left
	Distinct int64 // distinct images among them; -1: not counted
	Paid     int64 // API calls that get a billable answer
	Price    Price // zero: no price given
	Fleet    Fleet
	// Share is the part of the fleet's calls these calls get, when other
	// runs share it (0 or 1: all of it).
	Share float64
	Now   time.Time
}

// Forecast is what the paid calls cost and how long the fleet takes
// for them.
type Forecast struct {
	Objects  int64
	Distinct int64 // -1: not counted
	Paid     int64
	Cost     *Money // nil without a price
	// Duration is how long the fleet needs for the paid calls from Now,
	// and Finish when it is done; Finite is false when the rates ahead
	// never allow them (or the fleet has no rate: Fleet.Known).
	Duration time.Duration
	Finish   time.Time
	Finite   bool
	// Basis says what the duration assumed, as a person would say it:
	// "at 50 calls/s, with 100,000 calls a day".
	Basis string
}

// horizon is how far ahead a forecast looks before it calls the rates
// ahead too low ever to finish.
const horizon = 5 * 366 * 24 * time.Hour

// Make forecasts in.
func Make(in Input) Forecast {
	fc := Forecast{Objects: in.Objects, Distinct: in.Distinct, Paid: in.Paid, Basis: Describe(in.Fleet)}
	if !in.Price.IsZero() {
		m := in.Price.Times(in.Paid)
		fc.Cost = &m
	}
	if in.Fleet.Known() {
		calls := in.Paid
		if in.Share > 0 && in.Share < 1 {
			// The other runs go on taking the rest of the rate and budget.
			calls = int64(math.Ceil(float64(calls) / in.Share))
		}
		fc.Duration, fc.Finite = Duration(in.Fleet, calls, in.Now)
		if fc.Finite {
			fc.Finish = in.Now.Add(fc.Duration)
		}
	}
	return fc
}

// Duration is how long the fleet takes to make calls calls from now: at
// the schedule's rates (Rate outside its windows), no more per UTC day
// than the daily budget. false: never, as far as the rates ahead go.
func Duration(f Fleet, calls int64, now time.Time) (time.Duration, bool) {
	if calls <= 0 {
		return 0, true
	}
	if !f.Known() {
		return 0, false
	}
	left := float64(calls)
	used := f.UsedToday
	for t := now; t.Sub(now) < horizon; {
		end := nextUTCDay(t)
		allow := math.Inf(1)
		if f.DailyBudget > 0 {
			allow = float64(max(f.DailyBudget-used, 0))
		}
		possible := f.Schedule.Calls(t, end, f.Rate)
		if take := min(possible, allow); left <= take {
			fin, ok := f.Schedule.TimeFor(t, left, f.Rate)
			if !ok || fin.After(end) {
				fin = end // rounding at the edge of the day
			}
			return fin.Sub(now), true
		} else {
			left -= take
		}
		t, used = end, 0
	}
	return 0, false
}

func nextUTCDay(t time.Time) time.Time {
	u := t.UTC()
	return time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC)
}

// Describe says the rates a forecast assumes: "at 50 calls/s", "at the
// adaptive rate, 143.2 calls/s now", "at TZ=Europe/Berlin
// 08:00-20:00=10, 20:00-08:00=50 calls/s, with 100,000 calls a day".
func Describe(f Fleet) string {
	var parts []string
	switch {
	case !f.Schedule.IsZero() && f.Rate > 0:
		parts = append(parts, fmt.Sprintf("at %s calls/s (%s outside it)", f.Schedule, rateText(f)))
	case !f.Schedule.IsZero():
		parts = append(parts, fmt.Sprintf("at %s calls/s (no calls outside it)", f.Schedule))
	case f.Rate > 0:
		parts = append(parts, "at "+rateText(f))
	default:
		return unknownRate
	}
	if f.DailyBudget > 0 {
		parts = append(parts, fmt.Sprintf("with %s calls a day", Count(f.DailyBudget)))
	}
	return strings.Join(parts, ", ")
}

func rateText(f Fleet) string {
	r := strings.TrimSuffix(fmt.Sprintf("%.1f", f.Rate), ".0")
	if f.Adaptive {
		return "the adaptive rate, " + r + " calls/s now"
	}
	return r + " calls/s"
}

const unknownRate = "at no known rate"

// Count writes n with thousands separated: 100,000.
func Count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Human writes a duration as a person reads it: 45 s, 12.5 min, 7.3
// hours, 9.2 days.
func Human(d time.Duration) string {
	switch {
	case d < 90*time.Second:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d < 90*time.Minute:
		return fmt.Sprintf("%.1f min", d.Minutes())
	case d < 36*time.Hour:
		return fmt.Sprintf("%.1f hours", d.Hours())
	}
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}

// Sentence is the forecast's duration as one line: "at 50 calls/s, with
// 100,000 calls a day: 9.2 days".
func (fc Forecast) Sentence() string {
	if fc.Basis == unknownRate {
		return "duration unknown: no API rate known (no worker announced one, and no --api-rate or --api-rate-schedule given)"
	}
	if !fc.Finite {
		return fc.Basis + ": never (the rates ahead allow no calls)"
	}
	return fc.Basis + ": " + Human(fc.Duration)
}
