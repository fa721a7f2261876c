package report

import (
	"fmt"
	"io"
	"time"

	"reverify/cost"
)

// ForecastDoc is a cost forecast: what the paid calls cost and how long
// the fleet takes for them (docs/cost.md).
type ForecastDoc struct {
	Objects        int64       `json:"objects"`
	DistinctImages *int64      `json:"distinct_images"` // null: not counted
	PaidCalls      int64       `json:"paid_calls"`
	PricePerCall   *cost.Money `json:"price_per_call"` // null: no price given
	Cost           *cost.Money `json:"cost"`           // null: no price given
	// DurationSeconds is how long the fleet needs (null: no rate known,
	// or the rates ahead never allow the calls); Finish when it is done.
	DurationSeconds *float64   `json:"duration_seconds"`
	Finish          *time.Time `json:"finish"`
	Basis           string     `json:"basis"` // the rates assumed, in words
	// FleetFrom says where the fleet's rate, schedule and budget came
	// from: "redis" (what the workers announced) or "flags".
	FleetFrom string `json:"fleet_from"`
}

// NewForecastDoc describes a forecast made with price (zero: none), from
// the fleet settings of from.
func NewForecastDoc(fc cost.Forecast, price cost.Price, from string) *ForecastDoc {
	d := &ForecastDoc{Objects: fc.Objects, PaidCalls: fc.Paid, Cost: fc.Cost, Basis: fc.Basis, FleetFrom: from}
	if fc.Distinct >= 0 {
		n := fc.Distinct
		d.DistinctImages = &n
	}
	if !price.IsZero() {
		one := price.Times(1)
		d.PricePerCall = &one
	}
	if fc.Finite {
		s := fc.Duration.Seconds()
		fin := fc.Finish.UTC()
		d.DurationSeconds, d.Finish = &s, &fin
	}
	return d
}

// fleetFromText says where a forecast's fleet settings came from.
func fleetFromText(from string) string {
	if from == "redis" {
		return "the fleet's rate, schedule and budget as its workers announced them in Redis"
	}
	return "the rate, schedule and budget given to this command (no worker announced a rate in Redis)"
}

// WriteForecast prints a dry run's cost and duration.
func WriteForecast(w io.Writer, d *ForecastDoc, fc cost.Forecast) {
	distinct := "not counted (each object sent is a paid call)"
	if d.DistinctImages != nil {
		distinct = cost.Count(*d.DistinctImages)
	}
	fmt.Fprintf(w, "  objects: %s; distinct images: %s; paid calls: %s\n", cost.Count(d.Objects), distinct, cost.Count(d.PaidCalls))
	fmt.Fprintf(w, "  cost: %s\n", costText(d.Cost, d.PricePerCall))
	fmt.Fprintf(w, "  duration: %s\n", fc.Sentence())
	fmt.Fprintf(w, "  (from %s)\n", fleetFromText(d.FleetFrom))
}

func costText(m, price *cost.Money) string {
	if m == nil {
		return "unknown: no price per call (--price-per-call or REVERIFY_PRICE_PER_CALL)"
	}
	return fmt.Sprintf("%s (%s a call)", m, price)
}

// SpendDoc is what a run's billable answers cost so far.
type SpendDoc struct {
	BillableAnswers int64       `json:"billable_answers"`
	PricePerCall    *cost.Money `json:"price_per_call"` // null: no price given
	Spent           *cost.Money `json:"spent"`          // null: no price given
}

// NewSpendDoc prices billable answers.
func NewSpendDoc(billable int64, price cost.Price) *SpendDoc {
	d := &SpendDoc{BillableAnswers: billable}
	if !price.IsZero() {
		one, spent := price.Times(1), price.Times(billable)
		d.PricePerCall, d.Spent = &one, &spent
	}
	return d
}

// RunCostText says a run's forecast and spend in words: its ETA, the
// paid calls it has left with their cost, and its spend so far.
func RunCostText(fc cost.Forecast, d *ForecastDoc, spend *SpendDoc) (eta, left, spent string) {
	switch {
	case d.Objects == 0:
		eta = "none: nothing left to send"
	case fc.Finite:
		eta = fmt.Sprintf("%s, at %s (%s)", cost.Human(fc.Duration), fc.Finish.Local().Format(time.DateTime), fc.Basis)
	default:
		eta = fc.Sentence()
	}
	left = fmt.Sprintf("%s paid calls, costing %s", cost.Count(d.PaidCalls), costText(d.Cost, d.PricePerCall))
	if spend.Spent == nil {
		spent = fmt.Sprintf("%s billable answers (no price per call given)", cost.Count(spend.BillableAnswers))
	} else {
		spent = fmt.Sprintf("%s (%s billable answers × %s)", spend.Spent, cost.Count(spend.BillableAnswers), spend.PricePerCall)
	}
	return eta, left, spent
}

// WriteRunCost prints a run's forecast (the calls it has left) and its
// spend so far, for `runs show`.
func WriteRunCost(w io.Writer, fc cost.Forecast, d *ForecastDoc, spend *SpendDoc) {
	eta, left, spent := RunCostText(fc, d, spend)
	fmt.Fprintf(w, "forecast:\n  left: %s\n  ETA: %s\n", left, eta)
	if d.FleetFrom != "" {
		fmt.Fprintf(w, "  (from %s, at the run's share of it)\n", fleetFromText(d.FleetFrom))
	}
	fmt.Fprintf(w, "  spent: %s\n", spent)
}
