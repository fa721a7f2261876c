package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/campaign"
	"reverify/metrics"
	"reverify/worker/fleet"
)

type fleetState struct {
	st  fleet.Status
	err error
}

func (f fleetState) Status(context.Context) (fleet.Status, error) { return f.st, f.err }

func TestFleetGauges(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, metrics.RegisterFleet(reg, fleetState{st: fleet.Status{AuthOpenFor: time.Minute, InFlight: 7, DailyBudget: 100, BudgetUsed: 100}}, time.Second))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP reverify_fleet_circuit_open 1 while the fleet holds liveness API calls: circuit auth (the API refused the key) or outage (the API looks down).
# TYPE reverify_fleet_circuit_open gauge
reverify_fleet_circuit_open{circuit="auth"} 1
reverify_fleet_circuit_open{circuit="outage"} 0
# HELP reverify_fleet_daily_budget_spent 1 once today's budget of API calls is spent: calls wait for the next UTC day.
# TYPE reverify_fleet_daily_budget_spent gauge
reverify_fleet_daily_budget_spent 1
# HELP reverify_fleet_up 1 if this scrape read the fleet's state from Redis, 0 if it failed or timed out.
# TYPE reverify_fleet_up gauge
reverify_fleet_up 1
`), "reverify_fleet_circuit_open", "reverify_fleet_daily_budget_spent", "reverify_fleet_up"))

	for _, tt := range []struct {
		name string
		st   fleet.Status
		want string // "" = absent
	}{
		{"fixed", fleet.Status{Rate: 50, RateReason: fleet.RateConfigured}, `{mode="fixed",reason="configured"} 50`},
		{"adaptive", fleet.Status{Adaptive: true, Rate: 142.5, RateReason: fleet.RateBackoff429}, `{mode="adaptive",reason="backoff-429"} 142.5`},
		{"adaptive, not started", fleet.Status{Adaptive: true}, ""},
		{"fixed, scheduled", fleet.Status{Rate: 40, RateReason: fleet.RateSchedule}, `{mode="fixed",reason="schedule"} 40`},
		{"adaptive, scheduled stop", fleet.Status{Adaptive: true, RateReason: fleet.RateSchedule}, `{mode="adaptive",reason="schedule"} 0`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			require.NoError(t, metrics.RegisterFleet(reg, fleetState{st: tt.st}, time.Second))
			want := ""
			if tt.want != "" {
				want = "# HELP reverify_fleet_api_rate_calls The fleet's rate of API calls per second now: mode fixed (0 = no limit) or adaptive, and why it is what it is.\n" +
					"# TYPE reverify_fleet_api_rate_calls gauge\nreverify_fleet_api_rate_calls" + tt.want + "\n"
			}
			require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "reverify_fleet_api_rate_calls"))
		})
	}

	down := prometheus.NewPedanticRegistry()
	require.NoError(t, metrics.RegisterFleet(down, fleetState{err: errors.New("redis down")}, time.Second))
	require.Equal(t, 1, testutil.CollectAndCount(down), "only reverify_fleet_up, at 0")
	require.NoError(t, testutil.GatherAndCompare(down, strings.NewReader(`
# HELP reverify_fleet_up 1 if this scrape read the fleet's state from Redis, 0 if it failed or timed out.
# TYPE reverify_fleet_up gauge
reverify_fleet_up 0
`)))
}

type ledgerState struct {
	runs map[reverify.RunStatus]int64
	age  time.Duration
}

func (l ledgerState) RunsByStatus(context.Context) (map[reverify.RunStatus]int64, error) {
	return l.runs, nil
}
func (l ledgerState) OldestCallInFlight(context.Context) (time.Duration, error) { return l.age, nil }

func TestLedgerGauges(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, metrics.RegisterLedger(reg, ledgerState{runs: map[reverify.RunStatus]int64{reverify.RunFailed: 2}, age: 90 * time.Second}, time.Second))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP reverify_api_oldest_call_in_flight_seconds Age of the oldest API call recorded as sent whose answer is not recorded (0 when none).
# TYPE reverify_api_oldest_call_in_flight_seconds gauge
reverify_api_oldest_call_in_flight_seconds 90
`), "reverify_api_oldest_call_in_flight_seconds"))
	require.Equal(t, len(reverify.RunStatuses()), testutil.CollectAndCount(reg, "reverify_runs"), "one series per run status")
}

type feederState struct{ campaign.FeedStats }

func (f feederState) Stats() campaign.FeedStats { return f.FeedStats }
func (feederState) Leading() bool               { return true }

func TestFeederCounters(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, metrics.RegisterFeeder(reg, feederState{campaign.FeedStats{Dispatched: 40, Refilled: 3}}))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP reverify_feeder_leading 1 while this process's feeder holds the lease and feeds the queue.
# TYPE reverify_feeder_leading gauge
reverify_feeder_leading 1
# HELP reverify_feeder_refilled_tasks_total Tasks the feeder put back because the queue had lost them (Redis restarted, flushed, or tasks deleted).
# TYPE reverify_feeder_refilled_tasks_total counter
reverify_feeder_refilled_tasks_total 3
`), "reverify_feeder_leading", "reverify_feeder_refilled_tasks_total"))
}
