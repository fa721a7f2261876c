package campaign

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/worker/fleet"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		total   int
		weights []int
		want    []int
	}{
		{"equal", 100, []int{3, 3}, []int{50, 50}},
		{"by weight", 100, []int{6, 3, 1}, []int{60, 30, 10}},
		{"remainders to the largest, then the earlier", 10, []int{3, 3, 3}, []int{4, 3, 3}},
		{"less than runs", 1, []int{1, 1}, []int{1, 0}},
		{"nothing", 0, []int{3}, []int{0}},
		{"no weight", 10, []int{0, 0}, []int{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, split(tc.total, tc.weights))
		})
	}
}

func TestSpare(t *testing.T) {
	shares := []int{30, 30, 10}
	w := []int{3, 3, 1}
	st := []windowState{{tasks: 30}, {tasks: 5, dry: true}, {tasks: 10}}
	require.Equal(t, []int{19, 0, 6}, spare(shares, w, st, 1000))
	require.Equal(t, []int{5, 0, 6}, spare(shares, w, st, 35), "up to the window")
	st[0].err = true
	require.Equal(t, []int{0, 0, 25}, spare(shares, w, st, 1000), "a run whose top-up failed takes nothing")
	require.Nil(t, spare(shares, w, []windowState{{tasks: 30}, {tasks: 30}, {tasks: 10}}, 1000), "nothing left over")
	require.Nil(t, spare(shares, w, []windowState{{tasks: 3, dry: true}, {tasks: 3, dry: true}, {tasks: 3, dry: true}}, 1000),
		"nobody to take it")
	capped := []windowState{{tasks: 30}, {tasks: 8, capped: 8}, {tasks: 10}}
	require.Equal(t, []int{17, 0, 5}, spare(shares, w, capped, 1000), "a run held to 8 by its own caps leaves 22")
}

func TestFleetRateNow(t *testing.T) {
	sch, err := reverify.ParseRateSchedule("TZ=UTC 08:00-20:00=10, 22:00-23:00=0")
	require.NoError(t, err)
	day := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		st    fleet.Status
		at    time.Time
		rate  float64
		known bool
	}{
		{"fixed", fleet.Status{Rate: 50}, day, 50, true},
		{"no limit", fleet.Status{}, day, 0, false},
		{"schedule covers now", fleet.Status{Rate: 50, Schedule: sch}, day, 10, true},
		{"the adaptive rate under the schedule", fleet.Status{Rate: 4, Adaptive: true, Schedule: sch}, day, 4, true},
		{"outside the schedule", fleet.Status{Rate: 50, Schedule: sch}, day.Add(9 * time.Hour), 50, true},
		{"schedule stops calls", fleet.Status{Rate: 50, Schedule: sch}, day.Add(10*time.Hour + 30*time.Minute), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := FleetRateNow(tc.st, tc.at)
			require.Equal(t, tc.known, ok)
			require.InDelta(t, tc.rate, r, 1e-9)
		})
	}
}
