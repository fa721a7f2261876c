package reverify

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// RunLimits are a run's own caps on its API calls, below the fleet's
// (`enqueue --max-rate --max-in-flight`): they only ever lower what the
// fleet allows the run. The zero value caps nothing.
type RunLimits struct {
	// MaxRate is the run's calls per second (0 = no cap), where Schedule
	// has no window.
	MaxRate float64
	// Schedule is a per-run rate schedule: where one of its windows covers
	// the moment, its rate is the run's cap (0 = the run makes no calls
	// then).
	Schedule    RateSchedule
	MaxInFlight int // the run's calls in flight at once (0 = no cap)
}

// IsZero reports whether the limits cap nothing.
func (l RunLimits) IsZero() bool { return l.MaxRate == 0 && l.Schedule.IsZero() && l.MaxInFlight == 0 }

// RateAt returns the run's rate cap at t, and false when it has none then.
func (l RunLimits) RateAt(t time.Time) (float64, bool) {
	if r, ok := l.Schedule.At(t); ok {
		return r, true
	}
	return l.MaxRate, l.MaxRate > 0
}

// Validate reports limits that cannot be enforced.
func (l RunLimits) Validate() error {
	if l.MaxRate < 0 || math.IsNaN(l.MaxRate) || math.IsInf(l.MaxRate, 0) || l.MaxInFlight < 0 {
		return errors.New("run limits: max rate and max in flight must not be negative (0 = no cap)")
	}
	return nil
}

// RateText is the rate cap as ParseMaxRate reads it: a number, a
// schedule, or "" for none.
func (l RunLimits) RateText() string {
	if !l.Schedule.IsZero() {
		return l.Schedule.String()
	}
	if l.MaxRate > 0 {
		return strconv.FormatFloat(l.MaxRate, 'f', -1, 64)
	}
	return ""
}

// ParseMaxRate reads a run's rate cap: calls per second ("20"; 0 = none)
// or a rate schedule ("TZ=Europe/Berlin 08:00-20:00=5"), setting the
// matching fields of l.
func (l *RunLimits) ParseMaxRate(s string) error {
	s = strings.TrimSpace(s)
	l.MaxRate, l.Schedule = 0, RateSchedule{}
	if s == "" {
		return nil
	}
	if r, err := strconv.ParseFloat(s, 64); err == nil {
		if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
			return fmt.Errorf("max rate %q: want calls per second ≥ 0 or a rate schedule", s)
		}
		l.MaxRate = r
		return nil
	}
	sch, err := ParseRateSchedule(s)
	if err != nil {
		return fmt.Errorf("max rate: not a number of calls per second, nor a rate schedule: %w", err)
	}
	l.Schedule = sch
	return nil
}
