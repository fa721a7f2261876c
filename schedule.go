package reverify

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// RateSchedule is an API rate that follows the clock of a time zone, such
// as "TZ=Europe/Berlin Mon-Fri 08:00-20:00=10, 20:00-08:00=100": 10
// calls/s on weekdays by day, 100 at night. Windows are wall-clock times
// in the zone (UTC when no TZ= is given), so they follow daylight saving;
// a window that ends before it starts runs past midnight, and belongs to
// the day it starts on. Times no window covers fall back to whatever rate
// applies without the schedule. The zero RateSchedule has no windows.
type RateSchedule struct {
	text  string
	zone  *time.Location
	items []rateWindow
	week  []int16 // minute of the week (Monday 00:00 = 0) → index into items, or -1
}

type rateWindow struct {
	rate float64
	text string
}

const minutesPerWeek = 7 * 24 * 60

var weekdays = [7]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}

// ParseRateSchedule reads a schedule: an optional "TZ=<IANA zone>" then
// comma-separated windows "[DAYS ]HH:MM-HH:MM=RATE", where DAYS is a day
// ("Sat") or a range ("Mon-Fri"; every day when omitted) and RATE is calls
// per second (0 stops calls in that window). Windows must not overlap.
func ParseRateSchedule(s string) (RateSchedule, error) {
	text := strings.TrimSpace(s)
	if text == "" {
		return RateSchedule{}, errors.New("rate schedule is empty")
	}
	sch := RateSchedule{zone: time.UTC, week: make([]int16, minutesPerWeek)}
	for i := range sch.week {
		sch.week[i] = -1
	}
	rest := text
	if strings.HasPrefix(rest, "TZ=") {
		name, after, _ := strings.Cut(rest[len("TZ="):], " ")
		if name == "" || name == "Local" {
			return RateSchedule{}, fmt.Errorf("rate schedule %q: name the time zone (e.g. TZ=Europe/Berlin)", text)
		}
		loc, err := time.LoadLocation(name)
		if err != nil {
			return RateSchedule{}, fmt.Errorf("rate schedule %q: unknown time zone %q: %w", text, name, err)
		}
		sch.zone, rest = loc, after
	}
	for part := range strings.SplitSeq(rest, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return RateSchedule{}, fmt.Errorf("rate schedule %q: an empty window (two commas, or a comma at the end)", text)
		}
		if err := sch.add(part); err != nil {
			return RateSchedule{}, fmt.Errorf("rate schedule %q: window %q: %w", text, part, err)
		}
	}
	sch.text = sch.canonical()
	return sch, nil
}

// add marks the minutes of one window, refusing overlaps.
func (s *RateSchedule) add(part string) error {
	days := []int{0, 1, 2, 3, 4, 5, 6}
	spec := part
	if f := strings.Fields(part); len(f) == 2 {
		d, err := parseDays(f[0])
		if err != nil {
			return err
		}
		days, spec = d, f[1]
	} else if len(f) != 1 {
		return errors.New(`want "[DAYS ]HH:MM-HH:MM=RATE"`)
	}
	span, rateText, ok := strings.Cut(spec, "=")
	if !ok {
		return errors.New(`no "=RATE" (calls per second)`)
	}
	rate, err := strconv.ParseFloat(rateText, 64)
	if err != nil || rate < 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
		return fmt.Errorf("rate %q is not a number of calls per second ≥ 0", rateText)
	}
	fromText, toText, ok := strings.Cut(span, "-")
	if !ok {
		return errors.New(`want a span "HH:MM-HH:MM"`)
	}
	from, err := parseClock(fromText, false)
	if err != nil {
		return err
	}
	to, err := parseClock(toText, true)
	if err != nil {
		return err
	}
	if from == to {
		return errors.New("the window is empty (use 00:00-24:00 for a whole day)")
	}
	length := to - from
	if length < 0 {
		length += 24 * 60
	}
	idx := int16(len(s.items))
	s.items = append(s.items, rateWindow{rate: rate, text: part})
	for _, d := range days {
		for m := range length {
			at := (d*24*60 + from + m) % minutesPerWeek
			if prev := s.week[at]; prev >= 0 {
				return fmt.Errorf("overlaps window %q at %s %02d:%02d", s.items[prev].text,
					weekdays[at/(24*60)], at%(24*60)/60, at%60)
			}
			s.week[at] = idx
		}
	}
	return nil
}

func parseDays(s string) ([]int, error) {
	day := func(name string) (int, error) {
		for i, d := range weekdays {
			if strings.EqualFold(d, name) {
				return i, nil
			}
		}
		return 0, fmt.Errorf("day %q is not one of Mon Tue Wed Thu Fri Sat Sun", name)
	}
	first, last, isRange := strings.Cut(s, "-")
	a, err := day(first)
	if err != nil {
		return nil, err
	}
	b := a
	if isRange {
		if b, err = day(last); err != nil {
			return nil, err
		}
	}
	var out []int
	for d := a; ; d = (d + 1) % 7 {
		out = append(out, d)
		if d == b {
			return out, nil
		}
	}
}

// parseClock reads HH:MM as minutes of the day; 24:00 only as an end.
func parseClock(s string, end bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil || mm < 0 || mm > 59 || hh < 0 {
		return 0, fmt.Errorf("time %q is not HH:MM", s)
	}
	if hh == 24 && mm == 0 && end {
		return 24 * 60, nil
	}
	if hh > 23 {
		return 0, fmt.Errorf("time %q is past 23:59", s)
	}
	return hh*60 + mm, nil
}

func (s RateSchedule) canonical() string {
	parts := make([]string, len(s.items))
	for i, w := range s.items {
		parts[i] = w.text
	}
	return "TZ=" + s.zone.String() + " " + strings.Join(parts, ", ")
}

// IsZero reports whether the schedule has no windows.
func (s RateSchedule) IsZero() bool { return len(s.items) == 0 }

// String returns the schedule in the form ParseRateSchedule reads, with
// its zone always named.
func (s RateSchedule) String() string { return s.text }

// Zone is the time zone the windows are read in.
func (s RateSchedule) Zone() *time.Location {
	if s.zone == nil {
		return time.UTC
	}
	return s.zone
}

// MarshalText writes the schedule as String does.
func (s RateSchedule) MarshalText() ([]byte, error) { return []byte(s.text), nil }

// UnmarshalText reads a schedule; empty text is the zero schedule.
func (s *RateSchedule) UnmarshalText(b []byte) error {
	if len(strings.TrimSpace(string(b))) == 0 {
		*s = RateSchedule{}
		return nil
	}
	v, err := ParseRateSchedule(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// minuteOfWeek is t's wall-clock minute of the week in the schedule's zone.
func (s RateSchedule) minuteOfWeek(t time.Time) int {
	l := t.In(s.Zone())
	day := (int(l.Weekday()) + 6) % 7 // Monday = 0
	return day*24*60 + l.Hour()*60 + l.Minute()
}

// At returns the rate at t, and false when no window covers t.
func (s RateSchedule) At(t time.Time) (rate float64, ok bool) {
	if s.IsZero() {
		return 0, false
	}
	i := s.week[s.minuteOfWeek(t)]
	if i < 0 {
		return 0, false
	}
	return s.items[i].rate, true
}

// NextChange returns the first instant after t at which At gives another
// answer, or the zero time when it never changes.
func (s RateSchedule) NextChange(t time.Time) time.Time {
	if s.IsZero() {
		return time.Time{}
	}
	rate, ok := s.At(t)
	m := t.Truncate(time.Minute)
	// A week and a day of minutes covers every window and a daylight
	// saving shift.
	for range minutesPerWeek + 24*60 {
		m = m.Add(time.Minute)
		if r, o := s.At(m); o != ok || r != rate {
			return m
		}
	}
	return time.Time{}
}

// Calls returns how many calls the schedule allows from from to to, where
// times no window covers run at fallback calls/s.
func (s RateSchedule) Calls(from, to time.Time, fallback float64) float64 {
	var n float64
	for t := from; t.Before(to); {
		rate, ok := s.At(t)
		if !ok {
			rate = fallback
		}
		next := s.NextChange(t)
		if next.IsZero() || next.After(to) {
			next = to
		}
		n += rate * next.Sub(t).Seconds()
		t = next
	}
	return n
}

// TimeFor returns when calls calls, started at from, are done at the
// schedule's rates (fallback where no window covers), and false when that
// never happens (every rate ahead is 0).
func (s RateSchedule) TimeFor(from time.Time, calls, fallback float64) (time.Time, bool) {
	t := from
	for calls > 0 {
		if t.Sub(from) > 5*366*24*time.Hour {
			return time.Time{}, false // rates ahead stay at 0
		}
		rate, ok := s.At(t)
		if !ok {
			rate = fallback
		}
		next := s.NextChange(t)
		if next.IsZero() {
			if rate <= 0 {
				return time.Time{}, false
			}
			return t.Add(time.Duration(calls / rate * float64(time.Second))), true
		}
		if span := next.Sub(t).Seconds(); rate*span >= calls {
			return t.Add(time.Duration(calls / rate * float64(time.Second))), true
		} else {
			calls -= rate * span
		}
		t = next
	}
	return t, true
}
