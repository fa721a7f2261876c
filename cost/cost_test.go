package cost_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/cost"
)

func TestParsePrice(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "0.0021 EUR", want: "0.0021 EUR"},
		{in: "EUR 0.0021", want: "0.0021 EUR"},
		{in: " 1 USD ", want: "1.00 USD"},
		{in: ".5 GBP", want: "0.50 GBP"},
		{in: "0 EUR", want: "0.00 EUR"},
		{in: "0.0021", err: "want an amount and a currency"},
		{in: "0.0021 eur", err: "not a three-letter code"},
		{in: "-1 EUR", err: "not a decimal number"},
		{in: "1e-3 EUR", err: "not a decimal number"},
		{in: "1.2.3 EUR", err: "not a decimal number"},
		{in: ". EUR", err: "not a decimal number"},
		{in: "0.0000000000001 EUR", err: "too many digits"},
		{in: "1234567890123456789 EUR", err: "too many digits"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, err := cost.ParsePrice(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, p.String())
		})
	}
}

func TestPriceTimesIsExact(t *testing.T) {
	p, err := cost.ParsePrice("0.0021 EUR")
	require.NoError(t, err)
	require.Equal(t, "2100.0000 EUR", p.Times(1_000_000).String())
	require.Equal(t, "0.0000 EUR", p.Times(0).String())
	// 0.1 × 3 is 0.30000000000000004 in floats.
	dime, err := cost.ParsePrice("0.1 USD")
	require.NoError(t, err)
	require.Equal(t, "0.30", dime.Times(3).Amount())
	big, err := cost.ParsePrice("999999.999999 EUR")
	require.NoError(t, err)
	require.Equal(t, "99999999999900000.000000 EUR", big.Times(100_000_000_000).String(), "no overflow")
	b, err := json.Marshal(p.Times(2000))
	require.NoError(t, err)
	require.JSONEq(t, `{"amount": "4.2000", "currency": "EUR"}`, string(b))
}

func TestDuration(t *testing.T) {
	midnight := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC) // a Monday
	sched := func(s string) reverify.RateSchedule {
		t.Helper()
		r, err := reverify.ParseRateSchedule(s)
		require.NoError(t, err)
		return r
	}
	dayNight := sched("TZ=UTC 08:00-20:00=10, 20:00-08:00=50")
	for _, tc := range []struct {
		name  string
		fleet cost.Fleet
		calls int64
		from  time.Time
		want  time.Duration
		never bool
	}{
		{name: "fixed rate", fleet: cost.Fleet{Rate: 50}, calls: 10_000, from: midnight, want: 200 * time.Second},
		{name: "nothing to do", fleet: cost.Fleet{}, calls: 0, from: midnight, want: 0},
		{name: "daily budget binds", fleet: cost.Fleet{Rate: 50, DailyBudget: 100_000}, calls: 1_000_000, from: midnight,
			want: 9*24*time.Hour + 2000*time.Second},
		{name: "today's budget partly used", fleet: cost.Fleet{Rate: 10, DailyBudget: 1000, UsedToday: 900}, calls: 300,
			from: midnight.Add(23 * time.Hour), want: time.Hour + 20*time.Second},
		{name: "schedule by day and night", fleet: cost.Fleet{Schedule: dayNight}, calls: 3_000_000,
			from: midnight.Add(8 * time.Hour), want: 24*time.Hour + 40_800*time.Second},
		{name: "schedule and budget: the budget binds", fleet: cost.Fleet{Schedule: dayNight, DailyBudget: 100_000},
			calls: 920_000, from: midnight.Add(12 * time.Hour),
			// 12:00 at 10/s: 100,000 by 14:46:40; then 100,000 a day
			// from midnight at 50/s (2,000 s) for 8 more days, and
			// 20,000 (400 s) on the ninth.
			want: 9*24*time.Hour - 12*time.Hour + 400*time.Second},
		{name: "fallback outside the schedule", fleet: cost.Fleet{Rate: 20, Schedule: sched("TZ=UTC 00:00-01:00=10")},
			calls: 36_000 + 20*60, from: midnight, want: time.Hour + time.Minute},
		{name: "a schedule that never allows a call", fleet: cost.Fleet{Schedule: sched("00:00-24:00=0")}, calls: 1,
			from: midnight, never: true},
		{name: "no rate", fleet: cost.Fleet{DailyBudget: 10}, calls: 1, from: midnight, never: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := cost.Duration(tc.fleet, tc.calls, tc.from)
			require.Equal(t, !tc.never, ok)
			if !tc.never {
				require.Equal(t, tc.want, d)
			}
		})
	}
}

func TestForecast(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	price, err := cost.ParsePrice("0.0021 EUR")
	require.NoError(t, err)
	sched, err := reverify.ParseRateSchedule("TZ=UTC 08:00-20:00=10, 20:00-08:00=50")
	require.NoError(t, err)
	fc := cost.Make(cost.Input{Objects: 1_000_000, Distinct: -1, Paid: 920_000, Price: price, Now: now,
		Fleet: cost.Fleet{Schedule: sched, DailyBudget: 100_000}})
	require.Equal(t, "1932.0000 EUR", fc.Cost.String())
	require.True(t, fc.Finite)
	require.Equal(t, now.Add(fc.Duration), fc.Finish)
	require.Equal(t, "at TZ=UTC 08:00-20:00=10, 20:00-08:00=50 calls/s (no calls outside it), with 100,000 calls a day: 8.5 days",
		fc.Sentence())

	fc = cost.Make(cost.Input{Objects: 10, Paid: 10, Now: now, Fleet: cost.Fleet{Rate: 143.24, Adaptive: true}})
	require.Nil(t, fc.Cost, "no price, no cost")
	require.Equal(t, "at the adaptive rate, 143.2 calls/s now: 0 s", fc.Sentence())

	fc = cost.Make(cost.Input{Objects: 100, Paid: 100, Now: now, Fleet: cost.Fleet{Rate: 10}, Share: 0.25})
	require.Equal(t, 40*time.Second, fc.Duration, "a quarter of 10 calls/s")

	fc = cost.Make(cost.Input{Objects: 10, Paid: 10, Now: now})
	require.False(t, fc.Finite)
	require.Contains(t, fc.Sentence(), "duration unknown")
}

func TestHumanAndCount(t *testing.T) {
	require.Equal(t, "45 s", cost.Human(45*time.Second))
	require.Equal(t, "12.5 min", cost.Human(750*time.Second))
	require.Equal(t, "7.5 hours", cost.Human(450*time.Minute))
	require.Equal(t, "9.2 days", cost.Human(221*time.Hour))
	require.Equal(t, "100,000", cost.Count(100000))
	require.Equal(t, "999", cost.Count(999))
	require.Equal(t, "1,000,000", cost.Count(1e6))
}

func TestMoneyJSONRoundTrip(t *testing.T) {
	p, err := cost.ParsePrice("0.0021 EUR")
	require.NoError(t, err)
	b, err := json.Marshal(p.Times(7))
	require.NoError(t, err)
	var m cost.Money
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, "0.0147 EUR", m.String())
	require.Error(t, json.Unmarshal([]byte(`{"amount":"x","currency":"EUR"}`), &m))
}
