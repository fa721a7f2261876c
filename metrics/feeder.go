package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"reverify/campaign"
)

// FeederStats is what a worker's feeder did (*campaign.Feeder).
type FeederStats interface {
	Stats() campaign.FeedStats
	Leading() bool
}

// RegisterFeeder registers this process's feeder counters. Only the
// feeder holding the lease works, so sum them over the workers:
//
//   - reverify_feeder_dispatched_tasks_total: tasks added to the queue.
//   - reverify_feeder_refilled_tasks_total: tasks put back because the
//     queue had lost them (Redis restarted or flushed, tasks deleted). Any
//     rise is worth a look.
//   - reverify_feeder_leading: 1 while this process holds the lease.
func RegisterFeeder(reg prometheus.Registerer, f FeederStats) error {
	name := func(n string) string { return prometheus.BuildFQName(namespace, "feeder", n) }
	cs := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name("dispatched_tasks_total"),
			Help: "Tasks the feeder added to the queue."},
			func() float64 { return float64(f.Stats().Dispatched) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name("refilled_tasks_total"),
			Help: "Tasks the feeder put back because the queue had lost them (Redis restarted, flushed, or tasks deleted)."},
			func() float64 { return float64(f.Stats().Refilled) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name("leading"),
			Help: "1 while this process's feeder holds the lease and feeds the queue."},
			func() float64 { return flag(f.Leading()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
