package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"reverify"
)

// BacklogReader reads the backlog from the ledger (*postgres.Store).
type BacklogReader interface {
	// Backlog returns the pending objects of the runs being sent, by run
	// priority.
	Backlog(ctx context.Context) (map[reverify.Priority]int64, error)
}

// BacklogTimeout bounds the backlog query of one scrape: well under
// Prometheus' default scrape timeout (10s), so a PostgreSQL that does not
// answer costs the scrape this gauge, not the whole scrape.
const BacklogTimeout = 2 * time.Second

// RegisterBacklog registers the backlog gauges, read from the ledger's
// counters at every scrape:
//
//   - reverify_backlog_objects{priority}: pending objects of the runs being
//     sent (enqueuing, running), one series per priority (0 when none).
//     With a window of tasks in Redis, asynq's pending lists no longer
//     measure this.
//   - reverify_backlog_up: 1 when the last read succeeded, 0 when the
//     ledger did not answer within timeout; the objects gauge is then
//     absent rather than 0, which would read as "no work".
func RegisterBacklog(reg prometheus.Registerer, r BacklogReader, timeout time.Duration) error {
	return reg.Register(&backlogCollector{
		reader:  r,
		timeout: timeout,
		objects: prometheus.NewDesc(prometheus.BuildFQName(namespace, "backlog", "objects"),
			"Pending objects of the runs being sent (enqueuing, running), by run priority, from the ledger's counters. The same figure as the backlog view KEDA scales on.",
			[]string{"priority"}, nil),
		up: prometheus.NewDesc(prometheus.BuildFQName(namespace, "backlog", "up"),
			"1 if this scrape read the backlog from PostgreSQL, 0 if it failed or timed out (reverify_backlog_objects is then absent).",
			nil, nil),
	})
}

type backlogCollector struct {
	reader      BacklogReader
	timeout     time.Duration
	objects, up *prometheus.Desc
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.objects
	ch <- c.up
}

// Collect reads the ledger. A collector gets no context from the scrape,
// so the read has one of its own, bounded by the timeout.
func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	backlog, err := c.reader.Backlog(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, p := range reverify.Priorities() {
		ch <- prometheus.MustNewConstMetric(c.objects, prometheus.GaugeValue, float64(backlog[p]), string(p))
	}
}
