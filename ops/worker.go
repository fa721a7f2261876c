package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"reverify/health"
	"reverify/metrics"
	"reverify/worker"
)

// Worker is the worker's /metrics, /healthz and /readyz, and the
// observer that feeds the metrics. Its zero value (no address) observes
// nothing.
type Worker struct {
	http     *Server
	pipeline *metrics.Pipeline
	close    []func() error
}

// Observer is nil when metrics are off, so the handler uses its no-op.
func (o *Worker) Observer() worker.Observer {
	if o.pipeline == nil {
		return nil
	}
	return o.pipeline
}

// Addr is where the server listens ("" when off).
func (o *Worker) Addr() string {
	if o.http == nil {
		return ""
	}
	return o.http.addr
}

func (o *Worker) Close(ctx context.Context) {
	if o.http != nil {
		_ = o.http.Close(ctx)
	}
	for _, f := range o.close {
		_ = f()
	}
}

// WorkerLedger is what the worker's ops ask of the ledger
// (*postgres.Store): readiness, and the backlog, runs and calls in flight
// for its gauges.
type WorkerLedger interface {
	LedgerProbe
	metrics.BacklogReader
	metrics.LedgerReader
}

// StartWorker serves the worker's metrics and probes on ln (nil: none;
// the Worker then observes nothing). The fleet's state (API circuits, daily budget) and the feeder's counters
// are metrics when given, never readiness: an open API circuit is the
// vendor's state, and taking every worker out of service for it would only
// block node drains and rollouts.
func StartWorker(ln net.Listener, redisOpt asynq.RedisConnOpt, ledger WorkerLedger, log *slog.Logger,
	fleetState metrics.FleetReader, feeder metrics.FeederStats) (*Worker, error) {
	o := &Worker{}
	if ln == nil {
		return o, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	o.pipeline = metrics.NewPipeline(reg)
	inspector := asynq.NewInspector(redisOpt)
	o.close = append(o.close, inspector.Close)
	errs := []error{metrics.RegisterQueues(reg, inspector), metrics.RegisterProcess(reg),
		metrics.RegisterBacklog(reg, ledger, metrics.BacklogTimeout), metrics.RegisterLedger(reg, ledger, metrics.BacklogTimeout)}
	if fleetState != nil {
		errs = append(errs, metrics.RegisterFleet(reg, fleetState, metrics.FleetTimeout))
	}
	if feeder != nil {
		errs = append(errs, metrics.RegisterFeeder(reg, feeder))
	}
	if err := errors.Join(errs...); err != nil {
		ln.Close()
		o.Close(context.Background())
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	checks, closeChecks := Readiness(redisOpt, ledger)
	o.close = append(o.close, closeChecks)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg))
	health.New(log, 0, checks...).Register(mux)
	o.http = Serve(ln, mux, log)
	log.Info("serving metrics and probes", "addr", ln.Addr().String())
	return o, nil
}
