package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"reverify/worker/fleet"
)

// FleetReader reads the state the fleet shares through Redis
// (*fleet.Governor).
type FleetReader interface {
	Status(ctx context.Context) (fleet.Status, error)
}

// FleetTimeout bounds the fleet's Redis read at each scrape.
const FleetTimeout = 2 * time.Second

// RegisterFleet registers the gauges of the fleet's shared state, read
// from Redis at every scrape. Every worker exports the same figures:
// aggregate them with max, not sum.
//
//   - reverify_fleet_circuit_open{circuit}: 1 while the fleet holds API
//     calls, circuit "auth" (the API refused the key, 401/403) or "outage"
//     (the API looks down). An open circuit is an alert, not a reason to
//     take workers out of service: readiness does not depend on it.
//   - reverify_fleet_calls_in_flight: API calls admitted and not returned.
//   - reverify_fleet_daily_budget_calls, _used_calls, _spent: the daily
//     budget of API calls (0 = none), what today (UTC) used, and 1 once it
//     is spent.
//   - reverify_fleet_api_rate_calls{mode,reason}: the fleet's rate of API
//     calls per second now. mode "fixed" (reason "configured"; 0 = no
//     limit) or "adaptive" (reason probing, recovering, backoff-429,
//     backoff-timeout, backoff-latency, ceiling or demand; absent until a
//     worker has called the API). See docs/rate.md.
//   - reverify_fleet_up: 1 when this scrape read Redis, 0 when not (the
//     other fleet gauges are then absent).
func RegisterFleet(reg prometheus.Registerer, r FleetReader, timeout time.Duration) error {
	name := func(n string) string { return prometheus.BuildFQName(namespace, "fleet", n) }
	return reg.Register(&fleetCollector{
		reader:  r,
		timeout: timeout,
		circuit: prometheus.NewDesc(name("circuit_open"),
			"1 while the fleet holds liveness API calls: circuit auth (the API refused the key) or outage (the API looks down).",
			[]string{"circuit"}, nil),
		inFlight: prometheus.NewDesc(name("calls_in_flight"), "API calls admitted by the fleet and not yet returned.", nil, nil),
		budget:   prometheus.NewDesc(name("daily_budget_calls"), "The fleet's daily budget of API calls (0 = none).", nil, nil),
		used:     prometheus.NewDesc(name("daily_budget_used_calls"), "API calls counted against today's budget (UTC day).", nil, nil),
		spent:    prometheus.NewDesc(name("daily_budget_spent"), "1 once today's budget of API calls is spent: calls wait for the next UTC day.", nil, nil),
		up:       prometheus.NewDesc(name("up"), "1 if this scrape read the fleet's state from Redis, 0 if it failed or timed out.", nil, nil),
		rate: prometheus.NewDesc(name("api_rate_calls"),
			"The fleet's rate of API calls per second now: mode fixed (0 = no limit) or adaptive, and why it is what it is.",
			[]string{"mode", "reason"}, nil),
	})
}

type fleetCollector struct {
	reader                                           FleetReader
	timeout                                          time.Duration
	circuit, inFlight, budget, used, spent, up, rate *prometheus.Desc
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.circuit, c.inFlight, c.budget, c.used, c.spent, c.up, c.rate} {
		ch <- d
	}
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.reader.Status(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.circuit, prometheus.GaugeValue, flag(st.AuthOpenFor > 0), "auth")
	ch <- prometheus.MustNewConstMetric(c.circuit, prometheus.GaugeValue, flag(st.OutageOpenFor > 0), "outage")
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(st.InFlight))
	ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, float64(st.DailyBudget))
	ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(st.BudgetUsed))
	ch <- prometheus.MustNewConstMetric(c.spent, prometheus.GaugeValue, flag(st.BudgetSpent()))
	switch {
	case !st.Adaptive:
		ch <- prometheus.MustNewConstMetric(c.rate, prometheus.GaugeValue, st.Rate, "fixed", string(st.RateReason))
	case st.RateReason != "":
		ch <- prometheus.MustNewConstMetric(c.rate, prometheus.GaugeValue, st.Rate, "adaptive", string(st.RateReason))
	}
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
