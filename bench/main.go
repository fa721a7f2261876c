// Command bench measures reverify end to end and prints its figures as
// ratios against baselines measured in the same run (issue 6): enqueue
// against a bare asynq loop, the pipeline against an asynq no-op handler,
// latency-bound throughput against Little's law, worker memory per
// in-flight image, and the ledger's write rates.
//
// Every reverify process is the real binary (`reverify worker`, `reverify
// enqueue`, `reverify fake-api`), built by the harness; CPU and memory are
// read from /proc. The harness starts its own versitygw, creates its own
// PostgreSQL database (dropped at the end) and uses a Redis database it
// flushes (15 by default), so it never touches what tests use. Figures are
// written to bench/results/ as JSON. Timing never fails anything.
//
//	go run ./bench                      # everything (run times: docs/performance.md)
//	go run ./bench -cases pipeline -repeat 3
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "helper-") {
		err = runHelper(ctx, os.Args[1], os.Args[2:])
	} else {
		err = run(ctx, os.Args[1:])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	o, err := parseOptions(args)
	if err != nil {
		return err
	}
	if o.chartFrom != "" {
		return chartOf(o.chartFrom)
	}
	e, err := newEnv(ctx, o)
	if err != nil {
		return err
	}
	defer e.close()
	r := newReport(ctx, o)
	r.Options = args
	logf("scratch %s, database %s, redis db %d, versitygw %s", e.dir, e.dbName, e.redisDB, e.s3.Endpoint)
	if err := e.runCases(ctx, o, r); err != nil {
		r.print(os.Stdout)
		if path, werr := r.write(o.outDir); werr == nil {
			logf("the figures so far written to %s", path)
		}
		return err
	}
	r.print(os.Stdout)
	path, err := r.write(o.outDir)
	if err != nil {
		return err
	}
	logf("figures written to %s", path)
	chart, err := writeChart(path, r)
	if chart != "" {
		logf("case 3 chart written to %s", chart)
	}
	return err
}

func (e *env) runCases(ctx context.Context, o options, r *report) error {
	var err error
	if o.has("enqueue") {
		logf("case 1: enqueue")
		if r.Enqueue, err = e.enqueueCases(ctx, o); err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
	}
	if o.has("pipeline") {
		logf("case 2: pipeline overhead, fake API at zero latency")
		if r.Pipeline, r.Profile, err = e.pipelineCases(ctx, o); err != nil {
			return fmt.Errorf("pipeline: %w", err)
		}
	}
	if o.has("latency") {
		logf("case 3: latency-bound, fake API at %s", o.latency)
		if r.Latency, r.LatencyProfile, err = e.latencyCases(ctx, o); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	if o.has("memory") {
		logf("case 4: worker memory at concurrency %d, %d KB images", o.memConcurrency, o.memImageKB)
		if r.Memory, err = e.memoryCase(ctx, o); err != nil {
			return fmt.Errorf("memory: %w", err)
		}
	}
	if o.has("ledger") {
		logf("case 5: ledger writes")
		if r.Ledger, err = e.ledgerCases(ctx, o); err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
	}
	if o.has("api-limit") {
		logf("case 7: api-limit, %d workers with no rate configured, fake API with a hidden limit of %v/s", o.apiLimit.workers, o.apiLimit.rate)
		if r.APILimit, err = e.apiLimitCase(ctx, o); err != nil {
			return fmt.Errorf("api-limit: %w", err)
		}
	}
	if o.has("dedupe") {
		logf("case 8: dedupe, %d objects of which %.0f%% repeat another's bytes, %d workers at %d calls/s", o.dedupe.objects, 100*o.dedupe.share, o.dedupe.workers, o.dedupe.rate)
		if r.Dedupe, err = e.dedupeCase(ctx, o); err != nil {
			return fmt.Errorf("dedupe: %w", err)
		}
	}
	if o.has("fairness") {
		logf("case 9: fairness, a %d-image run alone and beside a %d-object run, fleet at %d calls/s",
			o.fairness.small, o.fairness.big, o.fairness.rate)
		if r.Fairness, err = e.fairnessCase(ctx, o); err != nil {
			return fmt.Errorf("fairness: %w", err)
		}
	}
	if o.has("schedule") {
		logf("case 10: schedule, %d workers, fixed rate %v/s switching to %v/s at the next whole minute; a run capped at %v/s",
			o.schedule.workers, o.schedule.before, o.schedule.after, o.schedule.runCap)
		if r.Schedule, err = e.scheduleCase(ctx, o); err != nil {
			return fmt.Errorf("schedule: %w", err)
		}
	}
	if o.has("scale") {
		logf("case 6: scale, a %d-object run", o.scaleObjects)
		f, err := e.scaleCase(ctx, o)
		r.Scale = &f
		if err != nil {
			return fmt.Errorf("scale: %w", err)
		}
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// rater is a measurement with one headline rate, used to pick a median.
type rater interface{ rate() float64 }

// median runs measure k times and returns the run with the median rate.
func median[T rater](k int, measure func() (T, error)) (T, error) {
	var runs []T
	for range max(k, 1) {
		f, err := measure()
		if err != nil {
			return f, err
		}
		runs = append(runs, f)
	}
	sortByRate(runs)
	return runs[len(runs)/2], nil
}

func sortByRate[T rater](s []T) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].rate() < s[j-1].rate(); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func (f enqueueFigures) rate() float64 { return f.KeysPerSec }
