package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"reverify/internal/testenv"
)

// scheduleOptions are the knobs of the schedule case (issue 17): a fleet
// whose fixed rate follows a schedule switching at the next whole minute,
// and a run with its own --max-rate beside an uncapped one.
type scheduleOptions struct {
	before, after float64 // calls/s before and after the boundary
	workers       int
	concurrency   int
	latency       time.Duration
	lead          time.Duration // at least this long of calls before the boundary
	tail          time.Duration // measured after the boundary
	fleetRate     int           // the per-run cap check: the fleet's --api-rate
	runCap        float64       // … and the capped run's --max-rate
	capSeconds    float64
}

func (s *scheduleOptions) register(fs *flag.FlagSet) {
	fs.Float64Var(&s.before, "schedule-before", 40, "schedule: the fleet's rate before the boundary, calls/s")
	fs.Float64Var(&s.after, "schedule-after", 120, "schedule: the fleet's rate after the boundary, calls/s")
	fs.IntVar(&s.workers, "schedule-workers", 2, "schedule: worker processes")
	fs.IntVar(&s.concurrency, "schedule-concurrency", 50, "schedule: concurrency of each worker")
	fs.DurationVar(&s.latency, "schedule-latency", 20*time.Millisecond, "schedule: fake API latency")
	fs.DurationVar(&s.lead, "schedule-lead", 15*time.Second, "schedule: at least this long of calls before the boundary (the next whole minute, UTC)")
	fs.DurationVar(&s.tail, "schedule-tail", 10*time.Second, "schedule: measured after the boundary")
	fs.IntVar(&s.fleetRate, "schedule-fleet-rate", 100, "schedule: the fleet's --api-rate in the per-run cap check")
	fs.Float64Var(&s.runCap, "schedule-run-cap", 20, "schedule: the capped run's --max-rate in the per-run cap check")
	fs.Float64Var(&s.capSeconds, "schedule-cap-seconds", 20, "schedule: seconds of the per-run cap check")
}

// scheduleFigures is what the schedule case measured.
type scheduleFigures struct {
	Schedule string  `json:"schedule"`
	Boundary string  `json:"boundary_utc"`
	Before   float64 `json:"before_rate"`
	After    float64 `json:"after_rate"`
	// MeasuredBefore is the calls/s over the 5 s before the boundary, and
	// MeasuredAfter over the tail's second half.
	MeasuredBefore float64 `json:"measured_before"`
	MeasuredAfter  float64 `json:"measured_after"`
	// HoldsAfter is how long after the boundary every later 1 s window
	// (stepped by 250 ms) was within 10% of the new rate; -1: never. On a
	// machine other builds share, one stall of the workers resets it.
	HoldsAfter float64 `json:"holds_after_seconds"`
	// RiseSeconds is when after the boundary a 1 s window first made 90%
	// of the way from the old rate to the new; MedianAfter is the median
	// of the 250 ms samples from 0.25 s after the boundary, as calls/s
	// (robust to stalls).
	RiseSeconds float64 `json:"rise_seconds"`
	MedianAfter float64 `json:"median_after"`
	// Samples are the calls of each 250 ms from 2 s before the boundary.
	Samples []scheduleSample `json:"samples"`
	Cap     runCapFigures    `json:"run_cap"`
}

type scheduleSample struct {
	At    float64 `json:"at"` // seconds from the boundary, at the end of the 250 ms
	Calls int     `json:"calls"`
}

// runCapFigures: a run with --max-rate beside an uncapped one, the fleet at
// a fixed rate.
type runCapFigures struct {
	FleetRate    int     `json:"fleet_rate"`
	Cap          float64 `json:"cap"`
	Seconds      float64 `json:"seconds"`
	CappedRate   float64 `json:"capped_calls_per_sec"`   // over the measurement
	CappedPeak   float64 `json:"capped_peak_per_sec"`    // the most in any 1 s
	UncappedRate float64 `json:"uncapped_calls_per_sec"` // the other run took
}

// scheduleCase runs both checks.
func (e *env) scheduleCase(ctx context.Context, o options) (*scheduleFigures, error) {
	s := o.schedule
	f := &scheduleFigures{Before: s.before, After: s.after}
	n := int(s.before*(s.lead.Seconds()+60)+s.after*(s.tail.Seconds()+5)) + 500
	n = max(n, int(float64(s.fleetRate)*(s.capSeconds+10)*1.2))
	keys, err := e.seedTimed("schedule/", n, 0)
	if err != nil {
		return nil, err
	}
	if err := e.scheduleRun(ctx, s, keys, f); err != nil {
		return f, err
	}
	logf("  schedule %s: %.1f calls/s before, %.1f after (median of 250 ms: %.0f); 90%% of the new rate %.2f s after the boundary, every 1 s within 10%% from %.2f s",
		f.Schedule, f.MeasuredBefore, f.MeasuredAfter, f.MedianAfter, f.RiseSeconds, f.HoldsAfter)
	if err := e.runCapRun(ctx, s, keys, &f.Cap); err != nil {
		return f, err
	}
	logf("  run cap %.0f/s beside an uncapped run, fleet at %d/s: capped %.1f/s (peak %.0f in 1 s), uncapped %.1f/s",
		f.Cap.Cap, f.Cap.FleetRate, f.Cap.CappedRate, f.Cap.CappedPeak, f.Cap.UncappedRate)
	return f, nil
}

// scheduleRun: workers with a fixed rate that follows a schedule whose
// boundary is the next whole minute (UTC) at least lead away; the fake's
// calls are sampled every 250 ms around it.
func (e *env) scheduleRun(ctx context.Context, s scheduleOptions, keys []string, f *scheduleFigures) error {
	if err := e.flushRedis(ctx); err != nil {
		return err
	}
	boundary := time.Now().UTC().Add(s.lead + 5*time.Second).Truncate(time.Minute).Add(time.Minute)
	clock := func(t time.Time) string { return t.Format("15:04") }
	f.Schedule = fmt.Sprintf("TZ=UTC %s-%s=%g, %s-%s=%g",
		clock(boundary.Add(-2*time.Minute)), clock(boundary), s.before, clock(boundary), clock(boundary.Add(2*time.Minute)), s.after)
	f.Boundary = boundary.Format(time.RFC3339)
	api, url, err := e.startHiddenLimitAPI(ctx, s.latency, 0)
	if err != nil {
		return err
	}
	defer func() { _ = api.Terminate() }()
	queue := "bench-sched-" + randomHex(4)
	stop, err := e.startWorkers(s, url, queue, "schedule", "REVERIFY_API_RATE_MODE=fixed", "REVERIFY_API_RATE_SCHEDULE="+f.Schedule)
	defer stop()
	if err != nil {
		return err
	}
	if err := e.enqueueKeys(ctx, queue, "schedule", keys, ""); err != nil {
		return err
	}
	var calls []scheduleSample
	end := boundary.Add(s.tail)
	for t := boundary.Add(-7 * time.Second); !t.After(end); t = t.Add(250 * time.Millisecond) {
		if err := waitShort(ctx, time.Until(t)); err != nil {
			return err
		}
		st, err := fakeStats(ctx, url)
		if err != nil {
			return err
		}
		calls = append(calls, scheduleSample{At: t.Sub(boundary).Seconds(), Calls: st.Calls})
	}
	if last := calls[len(calls)-1].Calls; last >= len(keys) {
		return fmt.Errorf("schedule: the run ran out of images (%d calls)", last)
	}
	rate := func(from, to float64) float64 { // calls/s between two sample times
		var a, b *scheduleSample
		for i := range calls {
			if a == nil && calls[i].At >= from-1e-9 {
				a = &calls[i]
			}
			if calls[i].At <= to+1e-9 {
				b = &calls[i]
			}
		}
		if a == nil || b == nil || b.At <= a.At {
			return 0
		}
		return float64(b.Calls-a.Calls) / (b.At - a.At)
	}
	f.MeasuredBefore = rate(-5, 0)
	f.MeasuredAfter = rate(s.tail.Seconds()/2, s.tail.Seconds())
	f.HoldsAfter = -1
	for t := 0.0; t+1 <= s.tail.Seconds(); t += 0.25 {
		if r := rate(t, t+1); math.Abs(r-s.after) > 0.1*s.after {
			f.HoldsAfter = -1
		} else if f.HoldsAfter < 0 {
			f.HoldsAfter = t
		}
	}
	f.RiseSeconds = -1
	for t := 0.0; t+1 <= s.tail.Seconds(); t += 0.25 {
		if rate(t, t+1) >= s.before+0.9*(s.after-s.before) {
			f.RiseSeconds = t
			break
		}
	}
	var after []float64
	for i := 1; i < len(calls); i++ {
		if calls[i].At >= 0.5-1e-9 { // the 250 ms from 0.25 s on
			after = append(after, 4*float64(calls[i].Calls-calls[i-1].Calls))
		}
	}
	slices.Sort(after)
	if len(after) > 0 {
		f.MedianAfter = after[len(after)/2]
	}
	for i := 1; i < len(calls); i++ {
		if calls[i].At >= -2 {
			f.Samples = append(f.Samples, scheduleSample{At: calls[i].At, Calls: calls[i].Calls - calls[i-1].Calls})
		}
	}
	return nil
}

// runCapRun: the fleet at a fixed --api-rate, a run capped by --max-rate
// beside an uncapped one; the ledger's calls of each are read every second.
func (e *env) runCapRun(ctx context.Context, s scheduleOptions, keys []string, f *runCapFigures) error {
	f.FleetRate, f.Cap, f.Seconds = s.fleetRate, s.runCap, s.capSeconds
	if err := e.flushRedis(ctx); err != nil {
		return err
	}
	api, url, err := e.startHiddenLimitAPI(ctx, s.latency, 0)
	if err != nil {
		return err
	}
	defer func() { _ = api.Terminate() }()
	capped, uncapped := "bench-sched-cap-"+randomHex(4), "bench-sched-free-"+randomHex(4)
	stop, err := e.startWorkers(s, url, capped+","+uncapped, "runcap", "REVERIFY_API_RATE_MODE=fixed",
		"REVERIFY_API_RATE="+strconv.Itoa(s.fleetRate))
	defer stop()
	if err != nil {
		return err
	}
	half := len(keys) / 2
	if err := e.enqueueKeys(ctx, capped, "runcap-capped", keys[:half], strconv.FormatFloat(s.runCap, 'f', -1, 64)); err != nil {
		return err
	}
	if err := e.enqueueKeys(ctx, uncapped, "runcap-free", keys[half:], ""); err != nil {
		return err
	}
	ids := make([]string, 2)
	for i, q := range []string{capped, uncapped} {
		if ids[i], err = e.runOf(ctx, q); err != nil {
			return err
		}
	}
	made := func() ([2]int64, error) {
		var out [2]int64
		for i, id := range ids {
			p, err := e.store.Progress(ctx, id)
			if err != nil {
				return out, err
			}
			out[i] = p.APICalls
		}
		return out, nil
	}
	if err := waitShort(ctx, 3*time.Second); err != nil { // past the start
		return err
	}
	first, err := made()
	if err != nil {
		return err
	}
	t0, prev := time.Now(), first
	var last [2]int64
	for i := 1; i <= int(s.capSeconds); i++ {
		if err := waitShort(ctx, time.Until(t0.Add(time.Duration(i)*time.Second))); err != nil {
			return err
		}
		if last, err = made(); err != nil {
			return err
		}
		f.CappedPeak = max(f.CappedPeak, float64(last[0]-prev[0]))
		prev = last
	}
	secs := time.Since(t0).Seconds()
	f.CappedRate = float64(last[0]-first[0]) / secs
	f.UncappedRate = float64(last[1]-first[1]) / secs
	return nil
}

// startWorkers starts the case's worker processes on queues (comma
// separated); stop ends them.
func (e *env) startWorkers(s scheduleOptions, url, queues, name string, workerEnv ...string) (stop func(), err error) {
	var procs []*testenv.Process
	stop = func() {
		for _, p := range procs {
			_ = p.Terminate()
		}
	}
	for i := range s.workers {
		w, err := testenv.Start(testenv.Command{Name: fmt.Sprintf("%s worker %d", name, i+1), Bin: e.bin,
			Log:  filepath.Join(e.dir, fmt.Sprintf("%s-worker-%d.log", name, i+1)),
			Args: []string{"worker", "--concurrency", strconv.Itoa(s.concurrency), "--queues", queues},
			Env:  append(append(e.procEnv(), "REVERIFY_API_URL="+url), workerEnv...)})
		if err != nil {
			return stop, err
		}
		procs = append(procs, w)
	}
	return stop, nil
}

// enqueueKeys enqueues keys as one run on queue, labelled with it, capped
// at maxRate when set.
func (e *env) enqueueKeys(ctx context.Context, queue, name string, keys []string, maxRate string) error {
	manifest, err := e.writeManifest(name+"-"+queue+".txt", sliceKeys(keys))
	if err != nil {
		return err
	}
	args := []string{"enqueue", "--manifest", manifest, "--manifest-format", "lines", "--bucket", "bench", "--queue", queue,
		"--label", benchLabel + "=" + queue}
	if maxRate != "" {
		args = append(args, "--max-rate", maxRate)
	}
	enq, err := testenv.Start(testenv.Command{Name: "enqueue " + name, Bin: e.bin, Env: e.procEnv(),
		Log: filepath.Join(e.dir, name+"-enqueue.log"), Args: args})
	if err != nil {
		return err
	}
	if err := enq.Wait(ctx); err != nil {
		return fmt.Errorf("enqueue %s: %w", name, err)
	}
	return nil
}
