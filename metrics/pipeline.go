package metrics

import (
	"reverify"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "reverify"

// Pipeline counts what the verify handler does. It implements
// worker.Observer and is safe for concurrent use.
type Pipeline struct {
	fetchSeconds *prometheus.HistogramVec
	fetchBytes   prometheus.Counter
	apiSeconds   *prometheus.HistogramVec
	apiCalls     *prometheus.CounterVec
	billable     prometheus.Counter
	scores       prometheus.Histogram
	results      *prometheus.CounterVec
	waits        *prometheus.CounterVec
	waitSeconds  *prometheus.CounterVec

	now       func() time.Time
	mu        sync.Mutex
	openUntil time.Time // auth circuit, as seen through the observer
}

// NewPipeline registers the pipeline's collectors on reg.
func NewPipeline(reg prometheus.Registerer) *Pipeline {
	p := &Pipeline{
		fetchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "s3", Name: "fetch_duration_seconds",
			Help:    "Time to read one object from S3, by result (ok, error).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
		fetchBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "s3", Name: "fetched_bytes_total",
			Help: "Bytes read from S3.",
		}),
		apiSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "api", Name: "call_duration_seconds",
			Help:    "Latency of liveness API calls, by outcome (scored, rejected, rate_limited, auth, transient).",
			Buckets: []float64{.05, .1, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10, 30},
		}, []string{"outcome"}),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "api", Name: "calls_total",
			Help: "API calls made to the liveness API, whatever the answer, by outcome.",
		}, []string{"outcome"}),
		billable: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "api", Name: "billable_answers_total",
			Help: "Billable answers: answers of the liveness API that carried a transaction ID, what the vendor bills.",
		}),
		scores: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "liveness_score",
			Help:    "Liveness scores returned by the API (0-100).",
			Buckets: prometheus.LinearBuckets(10, 10, 10),
		}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "results_total",
			Help: "Terminal results recorded, by status (scored, rejected, invalid_image, not_found, failed).",
		}, []string{"status"}),
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "waits_total",
			Help: "Tasks put back without counting a failure, by reason (rate_limited, auth_circuit_open, outage_circuit_open, fleet_rate, fleet_concurrency, daily_budget_spent, ledger_unavailable, run_paused, ...).",
		}, []string{"reason"}),
		waitSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "wait_seconds_total",
			Help: "Delay those tasks were put back for, by reason.",
		}, []string{"reason"}),
		now: time.Now,
	}
	circuit := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: "api", Name: "circuit_open",
		Help: "1 while this process holds API calls because the API refused the key (401/403).",
	}, func() float64 {
		if p.CircuitOpen() {
			return 1
		}
		return 0
	})
	reg.MustRegister(p.fetchSeconds, p.fetchBytes, p.apiSeconds, p.apiCalls, p.billable,
		p.scores, p.results, p.waits, p.waitSeconds, circuit)
	return p
}

// ObjectFetched implements worker.Observer.
func (p *Pipeline) ObjectFetched(d time.Duration, bytes int64, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	p.fetchSeconds.WithLabelValues(result).Observe(d.Seconds())
	if bytes > 0 {
		p.fetchBytes.Add(float64(bytes))
	}
}

// APICalled implements worker.Observer.
func (p *Pipeline) APICalled(outcome reverify.CallOutcome, d time.Duration, score *float64, billable bool) {
	p.apiSeconds.WithLabelValues(string(outcome)).Observe(d.Seconds())
	p.apiCalls.WithLabelValues(string(outcome)).Inc()
	if billable {
		p.billable.Inc()
	}
	if score != nil {
		p.scores.Observe(*score)
	}
	if outcome.KeyAccepted() {
		// The API accepted the key: whatever held calls is over.
		p.mu.Lock()
		p.openUntil = time.Time{}
		p.mu.Unlock()
	}
}

// ResultRecorded implements worker.Observer.
func (p *Pipeline) ResultRecorded(status reverify.Status) {
	p.results.WithLabelValues(string(status)).Inc()
}

// Waited implements worker.Observer. An auth circuit wait tells how long the
// handler holds calls, which is what the circuit gauge reports.
func (p *Pipeline) Waited(reason reverify.WaitReason, d time.Duration) {
	p.waits.WithLabelValues(string(reason)).Inc()
	p.waitSeconds.WithLabelValues(string(reason)).Add(max(d, 0).Seconds()) // a counter panics on negatives
	if reason == reverify.WaitAuthCircuit {
		until := p.now().Add(d)
		p.mu.Lock()
		if until.After(p.openUntil) {
			p.openUntil = until
		}
		p.mu.Unlock()
	}
}

// CircuitOpen reports whether API calls are held after a 401/403.
func (p *Pipeline) CircuitOpen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.now().Before(p.openUntil)
}
