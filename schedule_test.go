package reverify

import (
	"strings"
	"testing"
	"time"
)

func TestParseRateScheduleRefusesBadInput(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"TZ=Mars/Olympus 08:00-20:00=10", "unknown time zone"},
		{"TZ=Local 08:00-20:00=10", "name the time zone"},
		{"08:00-20:00", `no "=RATE"`},
		{"08:00-20:00=fast", "not a number"},
		{"08:00-20:00=-1", "not a number"},
		{"8:00-20:00=10", "not HH:MM"},
		{"08:00-25:00=10", "past 23:59"},
		{"24:00-08:00=10", "past 23:59"},
		{"08:00-08:00=10", "empty"},
		{"Funday 08:00-20:00=10", "not one of"},
		{"08:00-20:00=10,,20:00-08:00=1", "empty window"},
		{"08:00-20:00=10, 19:00-08:00=100", `overlaps window "08:00-20:00=10" at Mon 19:00`},
		{"Sat-Sun 00:00-24:00=100, Sun 10:00-11:00=5", "overlaps"},
		{"Mon 08:00 20:00=10", `want "[DAYS ]HH:MM-HH:MM=RATE"`},
	} {
		_, err := ParseRateSchedule(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRateSchedule(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestRateScheduleFollowsTheZonesClock(t *testing.T) {
	s, err := ParseRateSchedule("TZ=Europe/Berlin Mon-Fri 08:00-20:00=10, Mon-Thu 20:00-08:00=100, Fri 20:00-24:00=100, Sat-Sun 00:00-24:00=50")
	if err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, tc := range []struct {
		at   time.Time
		want float64
		ok   bool
	}{
		{time.Date(2026, 11, 30, 8, 0, 0, 0, berlin), 10, true},   // Monday morning
		{time.Date(2026, 11, 30, 7, 59, 59, 0, berlin), 0, false}, // Monday before 8: no window, the fallback applies
		{time.Date(2026, 11, 30, 19, 59, 0, 0, berlin), 10, true}, // Monday evening
		{time.Date(2026, 11, 30, 20, 0, 0, 0, berlin), 100, true}, // Monday night
		{time.Date(2026, 12, 1, 7, 0, 0, 0, berlin), 100, true},   // Tuesday before 8, Monday's night
		{time.Date(2026, 12, 4, 23, 0, 0, 0, berlin), 100, true},  // Friday night
		{time.Date(2026, 12, 5, 9, 0, 0, 0, berlin), 50, true},    // Saturday
		{time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC), 10, true}, // 08:00 in Berlin (UTC+1 in winter)
		{time.Date(2026, 7, 6, 6, 30, 0, 0, time.UTC), 10, true},  // 08:30 in Berlin in summer (UTC+2)
		{time.Date(2026, 7, 7, 5, 30, 0, 0, time.UTC), 100, true}, // Tuesday 07:30 in Berlin in summer
	} {
		got, ok := s.At(tc.at)
		if got != tc.want || ok != tc.ok {
			t.Errorf("At(%s) = %v, %v; want %v, %v", tc.at.Format(time.RFC3339), got, ok, tc.want, tc.ok)
		}
	}
}

func TestRateScheduleChangesAndTotals(t *testing.T) {
	s, err := ParseRateSchedule("TZ=Europe/Berlin 08:00-20:00=10, 20:00-08:00=100")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "TZ=Europe/Berlin 08:00-20:00=10, 20:00-08:00=100"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	from := time.Date(2026, 11, 30, 7, 30, 15, 0, berlin)
	if got, want := s.NextChange(from), time.Date(2026, 11, 30, 8, 0, 0, 0, berlin); !got.Equal(want) {
		t.Errorf("NextChange = %s, want %s", got, want)
	}
	// Across the night to summer time: 2026-03-29 02:00 Berlin skips an hour.
	dst := time.Date(2026, 3, 28, 21, 0, 0, 0, berlin)
	if got, want := s.NextChange(dst), time.Date(2026, 3, 29, 8, 0, 0, 0, berlin); !got.Equal(want) {
		t.Errorf("NextChange over the DST shift = %s, want %s", got, want)
	}
	if got, want := s.Calls(dst, time.Date(2026, 3, 29, 8, 0, 0, 0, berlin), 0), 100.0*10*3600; got != want {
		t.Errorf("Calls over a 10-hour night (one hour skipped) = %v, want %v", got, want)
	}
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, berlin)
	if got, want := s.Calls(day, day.Add(24*time.Hour), 0), (12*10+12*100)*3600.0; got != want {
		t.Errorf("Calls over a day = %v, want %v", got, want)
	}
	// 7:30 → 8:00 at 100/s is 180,000 calls; 36,000 more at 10/s take an hour.
	end, ok := s.TimeFor(time.Date(2026, 11, 30, 7, 30, 0, 0, berlin), 216000, 0)
	if want := time.Date(2026, 11, 30, 9, 0, 0, 0, berlin); !ok || !end.Equal(want) {
		t.Errorf("TimeFor = %s, %v; want %s", end, ok, want)
	}
	stop, _ := ParseRateSchedule("00:00-12:00=0")
	if _, ok := stop.TimeFor(day, 1, 0); ok {
		t.Error("TimeFor with every rate 0 finished; want never")
	}
	always, _ := ParseRateSchedule("00:00-24:00=5")
	if got := always.NextChange(day); !got.IsZero() {
		t.Errorf("NextChange of a constant schedule = %s, want zero", got)
	}
	if end, ok := always.TimeFor(day, 50, 0); !ok || !end.Equal(day.Add(10*time.Second)) {
		t.Errorf("TimeFor at a constant 5/s = %s, %v", end, ok)
	}
}

func TestRateScheduleText(t *testing.T) {
	var s RateSchedule
	if err := s.UnmarshalText([]byte("Sat 10:00-12:00=3")); err != nil {
		t.Fatal(err)
	}
	b, _ := s.MarshalText()
	if string(b) != "TZ=UTC Sat 10:00-12:00=3" {
		t.Errorf("MarshalText = %q", b)
	}
	if err := s.UnmarshalText(nil); err != nil || !s.IsZero() {
		t.Errorf("empty text: %v, zero %v", err, s.IsZero())
	}
}
