package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"reverify"
	"reverify/internal/testenv"
)

// fairnessOptions are the knobs of the fairness case (issue 17): a fleet
// at a fixed API rate, a small run alone, then beside a large run that
// holds the fleet.
type fairnessOptions struct {
	rate        int
	workers     int
	concurrency int
	latency     time.Duration
	small       int
	big         int
	horizons    string
}

func (f *fairnessOptions) register(fs *flag.FlagSet) {
	fs.IntVar(&f.rate, "fairness-rate", 100, "fairness: the fleet's fixed API rate, calls/s")
	fs.IntVar(&f.workers, "fairness-workers", 2, "fairness: worker processes")
	fs.IntVar(&f.concurrency, "fairness-concurrency", 100, "fairness: concurrency of each worker")
	fs.DurationVar(&f.latency, "fairness-latency", 50*time.Millisecond, "fairness: fake API latency")
	fs.IntVar(&f.small, "fairness-small", 1000, "fairness: images of the small run")
	fs.IntVar(&f.big, "fairness-big", 1_000_000, "fairness: objects of the large run")
	fs.StringVar(&f.horizons, "fairness-horizons", "1h,2s", "fairness: the workers' --dispatch-horizon of each variant (1h: a whole window per run, as before shares)")
}

// fairnessVariant is one way of dispatching, measured whole.
type fairnessVariant struct {
	Name    string `json:"name"`
	Horizon string `json:"dispatch_horizon"`
	// AloneSeconds is the small run alone, from its enqueue to its last
	// result; BesideSeconds the same beside the large run at equal
	// priority, BesideHighSeconds at high priority.
	AloneSeconds      float64 `json:"alone_seconds"`
	BesideSeconds     float64 `json:"beside_seconds"`
	BesideHighSeconds float64 `json:"beside_high_seconds"`
	// FirstResultBeside is the seconds from the small run's enqueue to its
	// first result, beside the large run at equal priority.
	FirstResultBeside float64 `json:"first_result_beside_seconds"`
	Ratio             float64 `json:"beside_over_alone"`        // target ≤ 2.0
	RatioHigh         float64 `json:"beside_high_over_alone"`   // weights 6:3: about 1.5
	BigDoneMeanwhile  int64   `json:"big_run_done_meanwhile"`   // the large run's results while the small ones ran
	BigIngestSeconds  float64 `json:"big_run_ingest_seconds"`   // its enqueue (COPY) of fairness-big keys
	FleetCallsPerSec  float64 `json:"fleet_results_per_second"` // results of all runs per second while they shared
}

// fairnessFigures is what the fairness case measured.
type fairnessFigures struct {
	Rate        int               `json:"rate"`
	Workers     int               `json:"workers"`
	Concurrency int               `json:"concurrency"`
	LatencyMS   int64             `json:"api_latency_ms"`
	Small       int               `json:"small"`
	Big         int               `json:"big"`
	Variants    []fairnessVariant `json:"variants"`
}

// fairnessCase measures the small run alone and beside the large one,
// first with per-run windows (a horizon long enough that every run gets a
// whole window: dispatch before shares), then with shares (the default).
func (e *env) fairnessCase(ctx context.Context, o options) (*fairnessFigures, error) {
	fo := o.fairness
	f := &fairnessFigures{Rate: fo.rate, Workers: fo.workers, Concurrency: fo.concurrency, LatencyMS: fo.latency.Milliseconds(),
		Small: fo.small, Big: fo.big}
	small, err := e.seedImages("bench", "fair/small/", fo.small, 4<<10)
	if err != nil {
		return nil, err
	}
	// The large run only needs real images for what it reaches before it
	// is cancelled (it is sent while its ingest goes on, which takes
	// minutes on a loaded machine); the rest of its keys are rows in the
	// ledger.
	seeded := min(fo.big, fo.rate*(8*fo.small/fo.rate+400))
	real, err := e.seedImages("bench", "fair/big/", seeded, 4<<10)
	if err != nil {
		return nil, err
	}
	manifest, err := e.writeManifest("fair-big.txt", func(yield func(string) bool) {
		for k := range sliceKeys(real) {
			if !yield(k) {
				return
			}
		}
		syntheticKeys("fair/missing/", fo.big-seeded)(yield)
	})
	if err != nil {
		return nil, err
	}
	smallManifest, err := e.writeManifest("fair-small.txt", sliceKeys(small))
	if err != nil {
		return nil, err
	}
	for h := range strings.SplitSeq(fo.horizons, ",") {
		v := fairnessVariant{Name: "shares, --dispatch-horizon " + h, Horizon: h}
		if h == "1h" {
			v.Name = "per-run windows (before shares)"
		}
		if err := e.fairnessVariant(ctx, fo, &v, manifest, smallManifest); err != nil {
			return f, err
		}
		f.Variants = append(f.Variants, v)
		logf("  %-32s alone %5.1f s; beside %5.1f s (%.2f×, first result %.1f s); high beside %5.1f s (%.2f×)",
			v.Name, v.AloneSeconds, v.BesideSeconds, v.Ratio, v.FirstResultBeside, v.BesideHighSeconds, v.RatioHigh)
	}
	return f, nil
}

func (e *env) fairnessVariant(ctx context.Context, fo fairnessOptions, v *fairnessVariant, bigManifest, smallManifest string) error {
	if err := e.flushRedis(ctx); err != nil {
		return err
	}
	api, url, err := e.startFakeAPI(ctx, fo.latency, false)
	if err != nil {
		return err
	}
	defer func() { _ = api.Terminate() }()
	queue := "bench-fair-" + randomHex(4)
	for i := range fo.workers {
		w, err := testenv.Start(testenv.Command{Name: fmt.Sprintf("worker %d", i+1), Bin: e.bin,
			Log: filepath.Join(e.dir, fmt.Sprintf("fair-worker-%d.log", i+1)),
			Args: []string{"worker", "--concurrency", strconv.Itoa(fo.concurrency), "--queues", priorityQueues(queue),
				"--dispatch-horizon", v.Horizon},
			Env: append(append(e.procEnv(), "REVERIFY_API_URL="+url, "REVERIFY_API_RATE="+strconv.Itoa(fo.rate)), e.workerEnv...)})
		if err != nil {
			return err
		}
		defer func() { _ = w.Terminate() }()
	}
	smallRun := func(priority reverify.Priority) (total, first float64, err error) {
		start := time.Now()
		id, err := e.enqueueRun(ctx, smallManifest, queue, priority, "small")
		if err != nil {
			return 0, 0, err
		}
		for {
			c, err := e.store.RunWithCounts(ctx, id)
			if err != nil {
				return 0, 0, err
			}
			if c.Done > 0 && first == 0 {
				first = time.Since(start).Seconds()
			}
			if c.Run.Total > 0 && c.Done >= c.Run.Total {
				return time.Since(start).Seconds(), first, nil
			}
			if c.Run.Status.Ended() {
				return 0, 0, fmt.Errorf("fairness: small run %s ended %s with %d of %d done", id, c.Run.Status, c.Done, c.Run.Total)
			}
			if time.Since(start) > 10*time.Minute {
				return 0, 0, fmt.Errorf("fairness: small run %s not done after 10 minutes", id)
			}
			if err := waitShort(ctx, 50*time.Millisecond); err != nil {
				return 0, 0, err
			}
		}
	}
	if v.AloneSeconds, _, err = smallRun(reverify.PriorityNormal); err != nil {
		return err
	}

	start := time.Now()
	big, err := e.enqueueRun(ctx, bigManifest, queue, reverify.PriorityNormal, "big")
	if err != nil {
		return err
	}
	v.BigIngestSeconds = time.Since(start).Seconds()
	// Let the large run hold the fleet: a few seconds of results.
	for {
		c, err := e.store.RunWithCounts(ctx, big)
		if err != nil {
			return err
		}
		if c.Done >= int64(3*fo.rate) {
			break
		}
		if err := waitShort(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	before, err := e.store.RunWithCounts(ctx, big)
	if err != nil {
		return err
	}
	if v.BesideSeconds, v.FirstResultBeside, err = smallRun(reverify.PriorityNormal); err != nil {
		return err
	}
	if v.BesideHighSeconds, _, err = smallRun(reverify.PriorityHigh); err != nil {
		return err
	}
	after, err := e.store.RunWithCounts(ctx, big)
	if err != nil {
		return err
	}
	v.BigDoneMeanwhile = after.Done - before.Done
	v.FleetCallsPerSec = float64(v.BigDoneMeanwhile+2*int64(fo.small)) / (v.BesideSeconds + v.BesideHighSeconds)
	if n := after.ByStatus[reverify.StatusNotFound]; n > 0 {
		return fmt.Errorf("fairness: the large run reached %d unseeded keys: the figures are not of a fleet at its rate", n)
	}
	v.Ratio = v.BesideSeconds / v.AloneSeconds
	v.RatioHigh = v.BesideHighSeconds / v.AloneSeconds
	_, err = e.cli(ctx, nil, "runs", "cancel", big, "--reason", "bench")
	return err
}

// enqueueRun starts a run of a manifest of keys in the bench bucket and
// returns its ID.
func (e *env) enqueueRun(ctx context.Context, manifest, queue string, p reverify.Priority, name string) (string, error) {
	var run struct {
		Run reverify.Run `json:"run"`
	}
	if _, err := e.cli(ctx, &run, "enqueue", "--manifest", manifest, "--manifest-format", "lines", "--bucket", "bench",
		"--queue", queue, "--priority", string(p), "--name", name, "-o", "json"); err != nil {
		return "", err
	}
	return run.Run.ID, nil
}

func (f *fairnessFigures) print(w io.Writer) {
	fmt.Fprintf(w, "\nfairness: a %d-image run alone and beside a %d-object one, fleet at %d calls/s (%d workers × %d)\n",
		f.Small, f.Big, f.Rate, f.Workers, f.Concurrency)
	fmt.Fprintf(w, "  %-34s %8s %8s %8s %8s %10s\n", "dispatch", "alone s", "beside s", "ratio", "high s", "high ratio")
	for _, v := range f.Variants {
		fmt.Fprintf(w, "  %-34s %8.1f %8.1f %8.2f %8.1f %10.2f\n", v.Name, v.AloneSeconds, v.BesideSeconds, v.Ratio,
			v.BesideHighSeconds, v.RatioHigh)
	}
	fmt.Fprintln(w, "  target: beside ÷ alone ≤ 2.0 at equal priority")
}
