package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"reverify"
	"reverify/campaign"
	"reverify/cost"
	"reverify/dashboard"
	"reverify/report"
	"reverify/storage/postgres"
	"reverify/worker/fleet"
)

// costFlags are what a cost forecast reads besides the counts: the price
// per call, and the fleet's settings for when no worker announced them.
type costFlags struct {
	price    string
	rate     int
	schedule string
	budget   int64
}

func registerPrice(f *pflag.FlagSet, p *string) {
	stringSetting(f, p, "price-per-call", "REVERIFY_PRICE_PER_CALL", "",
		`price of one billable API answer, an amount and a currency, e.g. "0.0021 EUR" (empty = costs not shown)`)
}

// registerFleet takes the fleet's settings as the worker does, for a
// forecast made where no worker announced them.
func (c *costFlags) registerFleet(f *pflag.FlagSet, e *envErrors) {
	e.intSetting(f, &c.rate, "api-rate", "REVERIFY_API_RATE", 0,
		"dry run: the fleet's API calls per second, when no worker announced a rate in Redis (docs/cost.md)")
	stringSetting(f, &c.schedule, "api-rate-schedule", "REVERIFY_API_RATE_SCHEDULE", "",
		`dry run: the fleet's rate schedule, e.g. "TZ=Europe/Berlin 08:00-20:00=10, 20:00-08:00=100", when no worker announced one`)
	e.int64Setting(f, &c.budget, "api-daily-budget", "REVERIFY_API_DAILY_BUDGET", 0,
		"dry run: the fleet's API calls per UTC day, when no worker announced a rate in Redis (0 = no limit)")
}

func parsePrice(s string) (cost.Price, error) {
	if s == "" {
		return cost.Price{}, nil
	}
	p, err := cost.ParsePrice(s)
	if err != nil {
		return p, fmt.Errorf("invalid REVERIFY_PRICE_PER_CALL (--price-per-call): %w", err)
	}
	return p, nil
}

// flagFleet is the fleet the flags describe.
func (c costFlags) flagFleet() (cost.Fleet, error) {
	if c.rate < 0 || c.budget < 0 {
		return cost.Fleet{}, fmt.Errorf("invalid REVERIFY_API_RATE or REVERIFY_API_DAILY_BUDGET: must not be negative")
	}
	f := cost.Fleet{Rate: float64(c.rate), DailyBudget: c.budget}
	if c.schedule != "" {
		s, err := reverify.ParseRateSchedule(c.schedule)
		if err != nil {
			return f, fmt.Errorf("invalid REVERIFY_API_RATE_SCHEDULE (--api-rate-schedule): %w", err)
		}
		f.Schedule = s
	}
	return f, nil
}

// costFleet is the fleet as fleet.Status tells it.
func costFleet(st fleet.Status) cost.Fleet {
	return cost.Fleet{Rate: st.Rate, Adaptive: st.Adaptive, Schedule: st.Schedule, DailyBudget: st.DailyBudget,
		UsedToday: st.BudgetUsed}
}

// forecastFleet is the fleet a forecast assumes: what the workers
// announced in Redis when it is reachable and tells a rate, else what
// the flags say ("redis" or "flags").
func (a *app) forecastFleet(ctx context.Context, c costFlags) (cost.Fleet, string, error) {
	if st, ok := a.fleetStatus(ctx); ok {
		if f := costFleet(st); f.Known() {
			return f, "redis", nil
		}
	}
	f, err := c.flagFleet()
	return f, "flags", err
}

// dryRunForecast is a dry run's cost and duration.
func (a *app) dryRunForecast(ctx context.Context, e campaign.Estimate, c costFlags) (cost.Forecast, *report.ForecastDoc, error) {
	price, err := parsePrice(c.price)
	if err != nil {
		return cost.Forecast{}, nil, err
	}
	fl, from, err := a.forecastFleet(ctx, c)
	if err != nil {
		return cost.Forecast{}, nil, err
	}
	fc := cost.Make(cost.Input{Objects: e.Matched, Distinct: e.Distinct, Paid: campaign.PaidCalls(e), Price: price, Fleet: fl, Now: time.Now()})
	return fc, report.NewForecastDoc(fc, price, from), nil
}

// runForecast is a run's ETA and cost for the calls it has left, at its
// share of the fleet (its priority's weight among the runs being sent),
// and its spend so far. The fleet's settings come from Redis only.
func (a *app) runForecast(ctx context.Context, store *postgres.Store, p postgres.Progress, st fleet.Status, fleetOK bool,
	price cost.Price) (cost.Forecast, *report.ForecastDoc, *report.SpendDoc, error) {
	var fl cost.Fleet
	from := ""
	if fleetOK {
		fl, from = costFleet(st), "redis"
	}
	runs, err := store.DispatchRuns(ctx)
	if err != nil {
		return cost.Forecast{}, nil, nil, err
	}
	left := campaign.CallsLeft(p)
	fc := cost.Make(cost.Input{Objects: p.Pending, Distinct: -1, Paid: left, Price: price, Fleet: fl,
		Share: campaign.ShareOf(p.Run, runs), Now: time.Now()})
	return fc, report.NewForecastDoc(fc, price, from), report.NewSpendDoc(p.BillableAnswers, price), nil
}

// dashboardForecaster gives the dashboard's run page the fleet's rate and
// the run's forecast, as `runs show` prints them.
type dashboardForecaster struct {
	a     *app
	store *postgres.Store
	price cost.Price
}

func (f dashboardForecaster) RunForecast(ctx context.Context, runID string) (dashboard.RunForecast, error) {
	p, err := f.store.Progress(ctx, runID)
	if err != nil {
		return dashboard.RunForecast{}, err
	}
	st, ok := f.a.fleetStatus(ctx)
	fc, doc, spend, err := f.a.runForecast(ctx, f.store, p, st, ok, f.price)
	if err != nil {
		return dashboard.RunForecast{}, err
	}
	var out dashboard.RunForecast
	if ok {
		out.FleetRate, out.Schedule = report.FleetRateText(st), report.ScheduleText(st)
	}
	out.ETA, out.Left, out.Spent = report.RunCostText(fc, doc, spend)
	return out, nil
}
