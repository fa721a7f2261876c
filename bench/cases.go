package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// pipelineCases is case 2: the whole pipeline against the no-op handler,
// with the fake API answering at once, at 100 KB and 1 MB.
func (e *env) pipelineCases(ctx context.Context, o options) ([]pipelineFigures, []share, error) {
	var out []pipelineFigures
	var profile []share
	for _, size := range []struct {
		kb, n int
	}{{100, o.small}, {1024, o.large}} {
		if size.n == 0 {
			continue
		}
		keys, err := e.seedTimed(fmt.Sprintf("img%dk/", size.kb), size.n, size.kb<<10)
		if err != nil {
			return out, profile, err
		}
		noop := pipelineSpec{name: fmt.Sprintf("asynq no-op, C=%d", o.concurrency), kind: noopWorkerKind,
			keys: make([]string, max(20000, size.n)), concurrency: o.concurrency}
		if err := e.addPipeline(ctx, o, &out, noop); err != nil {
			return out, profile, err
		}
		real := pipelineSpec{name: fmt.Sprintf("worker %d KB, C=%d", size.kb, o.concurrency), kind: reverifyWorker,
			keys: keys, imageBytes: size.kb << 10, concurrency: o.concurrency}
		f, err := e.addVariants(ctx, o, &out, real)
		if err != nil {
			return out, profile, err
		}
		if o.profile && size.kb == 100 {
			if profile, err = e.profileRun(ctx, o, real, f.ImagesPerSec, "worker-100k.pprof"); err != nil {
				return out, profile, err
			}
		}
	}
	return out, profile, nil
}

// profileRun runs s again with the worker built with a pprof endpoint, takes
// a CPU profile over the middle of the run (past the burst of connection
// set-up) and says where the time went; the profile is kept as name.
func (e *env) profileRun(ctx context.Context, o options, s pipelineSpec, rate float64, name string) ([]share, error) {
	if err := e.buildProfiled(ctx); err != nil {
		return nil, err
	}
	s.kind, s.name = profiledWorker, s.name+" (profiled)"
	s.profilePath = filepath.Join(e.dir, name)
	s.profileSecs = max(2, int(0.6*float64(len(s.keys))/max(rate, 1)))
	f, err := e.measurePipeline(ctx, s)
	if err != nil {
		return nil, err
	}
	logf("  %-34s %8.0f images/s (under the profiler)", f.Case, f.ImagesPerSec)
	shares, err := profileBreakdown(ctx, s.profilePath)
	if err != nil {
		return nil, err
	}
	return sortedShares(shares), copyFile(s.profilePath, filepath.Join(o.outDir, name))
}

// addVariants measures a worker spec as it runs (the feeder dispatching)
// and, as the options ask, pre-enqueued (the feeder's baseline) and over
// TLS, and returns the first's figures. The variants are measured in turn,
// each repeat in the other order, so that a machine that slows down or
// speeds up through the runs favours none; each reports its median. The
// feeder's rate is compared with the pre-enqueued one, the TLS run's
// worker CPU with the feeder's.
func (e *env) addVariants(ctx context.Context, o options, out *[]pipelineFigures, s pipelineSpec) (pipelineFigures, error) {
	specs := []pipelineSpec{s}
	if o.preEnqueued {
		b := s
		b.name, b.preEnqueued = s.name+", pre-enqueued", true
		specs = append(specs, b)
	}
	if o.tls {
		t := s
		t.name, t.tls = s.name+", TLS", true
		specs = append(specs, t)
	}
	runs := make([][]pipelineFigures, len(specs))
	for k := range max(o.repeat, 1) {
		for i := range specs {
			if k%2 == 1 {
				i = len(specs) - 1 - i
			}
			f, err := e.measurePipeline(ctx, specs[i])
			if err != nil {
				return f, err
			}
			runs[i] = append(runs[i], f)
		}
	}
	figs := make([]pipelineFigures, len(specs))
	for i := range runs {
		sortByRate(runs[i])
		figs[i] = runs[i][len(runs[i])/2]
	}
	feeder := &figs[0]
	for i, sp := range specs[1:] {
		v := &figs[i+1]
		switch {
		case sp.preEnqueued && v.ImagesPerSec > 0:
			feeder.VsPreEnqueued = feeder.ImagesPerSec / v.ImagesPerSec
		case sp.tls && feeder.CPUMsPerImage > 0:
			v.CPUVsPlain = v.CPUMsPerImage / feeder.CPUMsPerImage
		}
	}
	for _, f := range figs {
		logPipeline(f)
		switch {
		case f.VsPreEnqueued > 0:
			logf("  %-34s %8.2f × pre-enqueued (target ≥ 0.95)", f.Case, f.VsPreEnqueued)
		case f.CPUVsPlain > 0:
			logf("  %-34s %8.2f × worker CPU per image over plain HTTP", f.Case, f.CPUVsPlain)
		}
	}
	*out = append(*out, figs...)
	return figs[0], nil
}

func (e *env) addPipeline(ctx context.Context, o options, out *[]pipelineFigures, s pipelineSpec) error {
	f, err := median(o.repeat, func() (pipelineFigures, error) { return e.measurePipeline(ctx, s) })
	if err != nil {
		return err
	}
	logPipeline(f)
	*out = append(*out, f)
	return nil
}

func logPipeline(f pipelineFigures) {
	logf("  %-34s %8.0f images/s %7.3f ms CPU/image %5.2f cores  peak RSS %6.1f MB",
		f.Case, f.ImagesPerSec, f.CPUMsPerImage, f.CPUCores, f.PeakRSSMB)
}

// latencyCases is case 3: the fake API at a fixed latency, one worker at
// each concurrency level, against Little's law. With o.profile, the
// highest level runs once more under the profiler.
func (e *env) latencyCases(ctx context.Context, o options) ([]pipelineFigures, []share, error) {
	need := 0
	for _, c := range o.levels {
		need = max(need, littleCount(c, o.latency, o.levelSeconds))
	}
	pool, err := e.seedTimed("lat/", need, o.latencyImageKB<<10)
	if err != nil {
		return nil, nil, err
	}
	var out []pipelineFigures
	var last pipelineSpec
	var lastRate float64
	for _, c := range o.levels {
		if o.queueBaselines {
			// Queueing alone, with a handler that only waits L: one asynq
			// server, then reverify's lanes.
			for _, lanes := range []int{1, 0} {
				name := fmt.Sprintf("C=%d, L=%s, wait-only handler, 1 asynq server", c, o.latency)
				if lanes == 0 {
					name = fmt.Sprintf("C=%d, L=%s, wait-only handler, reverify lanes", c, o.latency)
				}
				s := pipelineSpec{name: name, kind: sleepWorkerKind, keys: make([]string, littleCount(c, o.latency, o.levelSeconds)),
					concurrency: c, latency: o.latency, lanes: lanes}
				if err := e.addPipeline(ctx, o, &out, s); err != nil {
					return out, nil, err
				}
			}
		}
		s := pipelineSpec{name: fmt.Sprintf("C=%d, L=%s", c, o.latency), kind: reverifyWorker,
			keys: pool[:littleCount(c, o.latency, o.levelSeconds)], imageBytes: o.latencyImageKB << 10,
			concurrency: c, latency: o.latency}
		f, err := e.addVariants(ctx, o, &out, s)
		if err != nil {
			return out, nil, err
		}
		last, lastRate = s, f.ImagesPerSec
	}
	if !o.profile || len(out) == 0 {
		return out, nil, nil
	}
	profile, err := e.profileRun(ctx, o, last, lastRate, "worker-latency.pprof")
	return out, profile, err
}

func littleCount(c int, l time.Duration, seconds float64) int {
	return int(float64(c) / l.Seconds() * seconds)
}

// memoryCase is case 4: peak RSS of one worker holding memConcurrency
// images in flight.
func (e *env) memoryCase(ctx context.Context, o options) ([]pipelineFigures, error) {
	keys, err := e.seedTimed("mem/", o.memImages, o.memImageKB<<10)
	if err != nil {
		return nil, err
	}
	var out []pipelineFigures
	s := pipelineSpec{name: fmt.Sprintf("C=%d, %d KB, L=%s", o.memConcurrency, o.memImageKB, o.latency),
		kind: reverifyWorker, keys: keys, imageBytes: o.memImageKB << 10, concurrency: o.memConcurrency, latency: o.latency}
	if err := e.addPipeline(ctx, o, &out, s); err != nil || !o.profile {
		return out, err
	}
	// A heap profile with every slot busy shows what an in-flight image holds.
	if err := e.buildProfiled(ctx); err != nil {
		return out, err
	}
	s.kind, s.name, s.profilePath = profiledWorker, s.name+" (heap profile)", filepath.Join(o.outDir, "worker-heap.pprof")
	f, err := e.measurePipeline(ctx, s)
	if err != nil {
		return out, err
	}
	logf("  %-34s peak RSS %6.1f MB; heap profile in %s", f.Case, f.PeakRSSMB, s.profilePath)
	return out, nil
}

// ledgerCases is case 5: AddObjects once, then the result path at each
// writer count, each write committed alone (the baseline) and grouped.
func (e *env) ledgerCases(ctx context.Context, o options) ([]ledgerFigures, error) {
	var out []ledgerFigures
	for i, writers := range []int{50, 200, 500} {
		for _, grouped := range []bool{false, true} {
			var adds, results []ledgerFigures
			for range max(o.repeat, 1) {
				f, err := e.ledgerCase(ctx, o.ledgerRows, writers, grouped)
				if err != nil {
					return out, err
				}
				adds, results = append(adds, f[0]), append(results, f[1])
			}
			sortByRate(adds)
			sortByRate(results)
			keep := []ledgerFigures{results[len(results)/2]}
			if i == 0 && !grouped {
				keep = append([]ledgerFigures{adds[len(adds)/2]}, keep...)
			}
			for _, f := range keep {
				logf("  %-34s %8d rows %8.0f rows/s", f.Case, f.Rows, f.RowsPerSec)
				out = append(out, f)
			}
		}
	}
	return out, nil
}

func (e *env) seedTimed(prefix string, n, size int) ([]string, error) {
	t := time.Now()
	keys, err := e.seedImages("bench", prefix, n, size)
	if err != nil {
		return nil, err
	}
	logf("  seeded %d objects of %d KB in %s", n, size>>10, time.Since(t).Round(time.Millisecond))
	return keys, nil
}
