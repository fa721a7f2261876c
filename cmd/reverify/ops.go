package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"reverify/health"
	"reverify/metrics"
	"reverify/worker"
)

// httpServer serves one handler on a listener already bound, so a busy
// port fails the command before it starts work.
type httpServer struct {
	srv  *http.Server
	addr string
	errc chan error
}

// httpLimits bound what one client can hold of a server: slow or idle
// connections and large requests (the servers face unauthenticated
// clients: probes, scrapes, the dashboard's login).
type httpLimits struct {
	ReadHeader time.Duration // the request line and headers
	Read       time.Duration // the whole request, body included
	// Write bounds a response; a long stream (the dashboard's images)
	// extends it chunk by chunk with http.ResponseController.
	Write     time.Duration
	Idle      time.Duration // a keep-alive connection between requests
	MaxHeader int           // bytes of request headers
	MaxBody   int64         // bytes of a request body
}

// defaultHTTPLimits suit /metrics, probes, the dashboard's pages and
// forms, and asynqmon's API (whose batch requests carry task IDs).
func defaultHTTPLimits() httpLimits {
	return httpLimits{
		ReadHeader: 10 * time.Second,
		Read:       30 * time.Second,
		Write:      60 * time.Second,
		Idle:       60 * time.Second,
		MaxHeader:  64 << 10,
		MaxBody:    1 << 20,
	}
}

// serveHTTP serves h on ln within defaultHTTPLimits.
func serveHTTP(ln net.Listener, h http.Handler, log *slog.Logger) *httpServer {
	return serveHTTPWith(ln, h, log, defaultHTTPLimits())
}

func serveHTTPWith(ln net.Listener, h http.Handler, log *slog.Logger, l httpLimits) *httpServer {
	s := &httpServer{
		srv: &http.Server{
			Handler:           http.MaxBytesHandler(h, l.MaxBody),
			ReadHeaderTimeout: l.ReadHeader,
			ReadTimeout:       l.Read,
			WriteTimeout:      l.Write,
			IdleTimeout:       l.Idle,
			MaxHeaderBytes:    l.MaxHeader,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		addr: ln.Addr().String(),
		errc: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.errc <- err
	}()
	return s
}

// Close stops accepting connections and waits up to 5s for open requests.
func (s *httpServer) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stop http server: %w", err)
	}
	return <-s.errc
}

// workerOps is the worker's /metrics, /healthz and /readyz, and the
// observer that feeds the metrics. Its zero value (no --metrics-addr)
// observes nothing.
type workerOps struct {
	http     *httpServer
	pipeline *metrics.Pipeline
	close    []func() error
}

// Observer is nil when metrics are off, so the handler uses its no-op.
func (o *workerOps) Observer() worker.Observer {
	if o.pipeline == nil {
		return nil
	}
	return o.pipeline
}

// addr is where the server listens ("" when off).
func (o *workerOps) addr() string {
	if o.http == nil {
		return ""
	}
	return o.http.addr
}

func (o *workerOps) Close(ctx context.Context) {
	if o.http != nil {
		_ = o.http.Close(ctx)
	}
	for _, f := range o.close {
		_ = f()
	}
}

// workerLedger is what the worker's ops ask of the ledger
// (*postgres.Store): readiness, and the backlog, runs and calls in flight
// for its gauges.
type workerLedger interface {
	ledgerProbe
	metrics.BacklogReader
	metrics.LedgerReader
}

// startWorkerOps binds addr and serves the worker's metrics and probes.
// The fleet's state (API circuits, daily budget) and the feeder's counters
// are metrics when given, never readiness: an open API circuit is the
// vendor's state, and taking every worker out of service for it would only
// block node drains and rollouts.
func startWorkerOps(addr string, redisOpt asynq.RedisConnOpt, ledger workerLedger, log *slog.Logger,
	fleetState metrics.FleetReader, feeder metrics.FeederStats) (*workerOps, error) {
	o := &workerOps{}
	if addr == "" {
		return o, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("REVERIFY_METRICS_ADDR (--metrics-addr): %w", err)
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
	checks, closeChecks := readinessChecks(redisOpt, ledger)
	o.close = append(o.close, closeChecks)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg))
	health.New(log, 0, checks...).Register(mux)
	o.http = serveHTTP(ln, mux, log)
	log.Info("serving metrics and probes", "addr", ln.Addr().String())
	return o, nil
}

// ledgerProbe is what readiness asks of the ledger (*postgres.Store).
type ledgerProbe interface {
	Ping(ctx context.Context) error
	// SchemaCurrent fails while migrations are pending, e.g. while a
	// rollout waits for `reverify migrate`.
	SchemaCurrent(ctx context.Context) error
}

// readinessChecks are the dependencies every long-running command needs:
// Redis, PostgreSQL, and a schema at this binary's version.
func readinessChecks(redisOpt asynq.RedisConnOpt, ledger ledgerProbe) ([]health.Check, func() error) {
	rc, _ := redisOpt.MakeRedisClient().(redis.UniversalClient)
	checks := []health.Check{
		{Name: "postgres", Func: ledger.Ping},
		{Name: "migrations", Func: ledger.SchemaCurrent},
	}
	if rc == nil {
		return checks, func() error { return nil }
	}
	checks = append(checks, health.Check{Name: "redis", Func: func(ctx context.Context) error { return rc.Ping(ctx).Err() }})
	return checks, rc.Close
}
