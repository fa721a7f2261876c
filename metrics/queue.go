package metrics

import (
	"net/http"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// RegisterQueues registers asynq's queue collector (asynq_queue_size,
// asynq_tasks_enqueued_total{state}, asynq_queue_latency_seconds, ...). It
// reads Redis on every scrape.
func RegisterQueues(reg prometheus.Registerer, inspector *asynq.Inspector) error {
	return reg.Register(asynqmetrics.NewQueueMetricsCollector(inspector))
}

// RegisterProcess registers the Go runtime and process collectors.
func RegisterProcess(reg prometheus.Registerer) error {
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return err
	}
	return reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Handler serves the registry in the Prometheus exposition format.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
