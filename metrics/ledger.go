package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"reverify"
)

// LedgerReader reads what the ledger's alerts watch (*postgres.Store).
type LedgerReader interface {
	// RunsByStatus counts the runs in each status.
	RunsByStatus(ctx context.Context) (map[reverify.RunStatus]int64, error)
	// OldestCallInFlight is the age of the oldest call recorded as sent
	// without an answer (0 when none).
	OldestCallInFlight(ctx context.Context) (time.Duration, error)
}

// RegisterLedger registers gauges read from the ledger at every scrape,
// within timeout (absent when the read fails; reverify_backlog_up tells
// whether the ledger answers). Every worker exports the same figures:
// aggregate them with max.
//
//   - reverify_runs{status}: runs in each status (0 when none); a rise of
//     status="failed" is a run that failed.
//   - reverify_api_oldest_call_in_flight_seconds: age of the oldest API
//     call sent whose answer is not recorded (0 when none). Past twice the
//     API timeout its worker died mid-call: the outcome (billed or not) is
//     unknown until the object is tried again.
func RegisterLedger(reg prometheus.Registerer, r LedgerReader, timeout time.Duration) error {
	return reg.Register(&ledgerCollector{
		reader:  r,
		timeout: timeout,
		runs: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "runs"),
			"Runs in each status, from the ledger.", []string{"status"}, nil),
		inFlight: prometheus.NewDesc(prometheus.BuildFQName(namespace, "api", "oldest_call_in_flight_seconds"),
			"Age of the oldest API call recorded as sent whose answer is not recorded (0 when none).", nil, nil),
	})
}

type ledgerCollector struct {
	reader         LedgerReader
	timeout        time.Duration
	runs, inFlight *prometheus.Desc
}

func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.runs
	ch <- c.inFlight
}

func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if byStatus, err := c.reader.RunsByStatus(ctx); err == nil {
		for _, s := range reverify.RunStatuses() {
			ch <- prometheus.MustNewConstMetric(c.runs, prometheus.GaugeValue, float64(byStatus[s]), string(s))
		}
	}
	if age, err := c.reader.OldestCallInFlight(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, age.Seconds())
	}
}
