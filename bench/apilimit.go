package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"reverify/internal/testenv"
	"reverify/liveness/fakeapi"
	"reverify/worker/fleet"
)

// apiLimitOptions are the knobs of the api-limit case (issue 17): a fake
// API with a hidden fleet-wide limit, and a fleet of worker processes
// with no rate configured.
type apiLimitOptions struct {
	rate          float64
	workers       int
	concurrency   int
	latency       time.Duration
	seconds       float64 // first phase, at the hidden rate
	stepSeconds   float64 // each of the next two: half the rate, then the rate again
	staticSeconds float64 // the baseline, --api-rate set to the hidden rate
}

func (a *apiLimitOptions) register(fs *flag.FlagSet) {
	fs.Float64Var(&a.rate, "apilimit-rate", 150, "api-limit: the fake API's hidden limit, calls/s (it later halves, then returns)")
	fs.IntVar(&a.workers, "apilimit-workers", 3, "api-limit: worker processes")
	fs.IntVar(&a.concurrency, "apilimit-concurrency", 50, "api-limit: concurrency of each worker")
	fs.DurationVar(&a.latency, "apilimit-latency", 50*time.Millisecond, "api-limit: fake API latency")
	fs.Float64Var(&a.seconds, "apilimit-seconds", 60, "api-limit: seconds at the hidden rate before it halves")
	fs.Float64Var(&a.stepSeconds, "apilimit-step-seconds", 45, "api-limit: seconds at half the rate, then again at the rate")
	fs.Float64Var(&a.staticSeconds, "apilimit-static-seconds", 40, "api-limit: seconds of the static --api-rate baseline")
}

// apiLimitPhase is one stretch of constant hidden rate.
type apiLimitPhase struct {
	Name       string  `json:"name"`
	HiddenRate float64 `json:"hidden_rate"`
	Seconds    float64 `json:"seconds"`
	OK         int     `json:"ok"`
	Limited    int     `json:"limited_429"`
	// LimitedShare is 429s ÷ answers over the whole phase.
	LimitedShare float64 `json:"limited_share"`
	// TrackSeconds is how long after the phase began every later 5 s
	// window had ≥ 0.9 of the hidden rate answered 200 and ≤ 2% 429
	// (-1: never).
	TrackSeconds float64 `json:"track_seconds"`
	// Sustained is the 200s per second over the phase's last third, and
	// SustainedRatio that ÷ the hidden rate; SustainedLimitedShare the
	// 429 share there.
	Sustained             float64 `json:"sustained_ok_per_sec"`
	SustainedRatio        float64 `json:"sustained_ratio"`
	SustainedLimitedShare float64 `json:"sustained_limited_share"`
}

// apiLimitFigures is what the api-limit case measured.
type apiLimitFigures struct {
	Workers     int             `json:"workers"`
	Concurrency int             `json:"concurrency"`
	LatencyMS   int64           `json:"api_latency_ms"`
	Adaptive    []apiLimitPhase `json:"adaptive"`
	Static      apiLimitPhase   `json:"static"`
	// AdaptiveOverStatic is the adaptive fleet's sustained rate in the
	// first phase ÷ the static baseline's.
	AdaptiveOverStatic float64 `json:"adaptive_over_static"`
	// PerSecond is the adaptive run's answers, second by second.
	PerSecond []apiLimitSecond `json:"per_second"`
}

type apiLimitSecond struct {
	OK      int     `json:"ok"`
	Limited int     `json:"limited"`
	Hidden  float64 `json:"hidden_rate"`
	// Rate and Reason are the fleet's rate at the end of the second, as
	// `runs show` reads it.
	Rate   float64 `json:"fleet_rate"`
	Reason string  `json:"fleet_rate_reason"`
}

// apiLimitCase runs the fleet with no rate configured through the hidden
// rate R, R/2 and R again, then the static baseline at --api-rate R.
func (e *env) apiLimitCase(ctx context.Context, o options) (*apiLimitFigures, error) {
	a := o.apiLimit
	f := &apiLimitFigures{Workers: a.workers, Concurrency: a.concurrency, LatencyMS: a.latency.Milliseconds()}
	total := a.seconds + 2*a.stepSeconds
	n := int(a.rate*max(total, a.staticSeconds)*1.1) + 200
	keys, err := e.seedTimed("apilimit/", n, 0)
	if err != nil {
		return nil, err
	}
	schedule := []apiLimitPhase{
		{Name: "R", HiddenRate: a.rate, Seconds: a.seconds},
		{Name: "R/2", HiddenRate: a.rate / 2, Seconds: a.stepSeconds},
		{Name: "R again", HiddenRate: a.rate, Seconds: a.stepSeconds},
	}
	secs, err := e.apiLimitRun(ctx, a, keys, schedule, "REVERIFY_API_RATE_MODE=auto")
	if err != nil {
		return nil, err
	}
	f.PerSecond = secs
	start := 0
	for _, p := range schedule {
		end := start + int(p.Seconds)
		f.Adaptive = append(f.Adaptive, apiLimitSummary(p, secs[start:min(end, len(secs))]))
		start = end
	}
	static := []apiLimitPhase{{Name: "static --api-rate R", HiddenRate: a.rate, Seconds: a.staticSeconds}}
	ssecs, err := e.apiLimitRun(ctx, a, keys, static, "REVERIFY_API_RATE_MODE=fixed",
		"REVERIFY_API_RATE="+strconv.Itoa(int(math.Round(a.rate))))
	if err != nil {
		return nil, err
	}
	f.Static = apiLimitSummary(static[0], ssecs)
	if f.Static.Sustained > 0 {
		f.AdaptiveOverStatic = f.Adaptive[0].Sustained / f.Static.Sustained
	}
	for _, p := range append(f.Adaptive, f.Static) {
		logf("  %-22s R=%5.1f: sustained %6.1f/s (%.3f R, %.2f%% 429), tracked after %4.0f s, %.2f%% 429 over the phase",
			p.Name, p.HiddenRate, p.Sustained, p.SustainedRatio, 100*p.SustainedLimitedShare, p.TrackSeconds, 100*p.LimitedShare)
	}
	logf("  adaptive ÷ static: %.3f", f.AdaptiveOverStatic)
	return f, nil
}

// apiLimitRun starts the fake API and the workers (with workerEnv), queues
// keys as one run, and follows the schedule of hidden rates from the first
// call on; it returns the answers of each second.
func (e *env) apiLimitRun(ctx context.Context, a apiLimitOptions, keys []string, schedule []apiLimitPhase, workerEnv ...string) ([]apiLimitSecond, error) {
	if err := e.flushRedis(ctx); err != nil {
		return nil, err
	}
	api, url, err := e.startHiddenLimitAPI(ctx, a.latency, schedule[0].HiddenRate)
	if err != nil {
		return nil, err
	}
	defer func() { _ = api.Terminate() }()
	queue := "bench-apilimit-" + randomHex(4)
	for i := range a.workers {
		w, err := testenv.Start(testenv.Command{Name: fmt.Sprintf("worker %d", i+1), Bin: e.bin,
			Log:  filepath.Join(e.dir, fmt.Sprintf("apilimit-worker-%d.log", i+1)),
			Args: []string{"worker", "--concurrency", strconv.Itoa(a.concurrency), "--queues", queue},
			Env:  append(append(e.procEnv(), "REVERIFY_API_URL="+url), workerEnv...)})
		if err != nil {
			return nil, err
		}
		defer func() { _ = w.Terminate() }()
	}
	manifest, err := e.writeManifest("apilimit-"+queue+".txt", sliceKeys(keys))
	if err != nil {
		return nil, err
	}
	enq, err := testenv.Start(testenv.Command{Name: "enqueue", Bin: e.bin, Env: e.procEnv(),
		Log:  filepath.Join(e.dir, "apilimit-enqueue.log"),
		Args: []string{"enqueue", "--manifest", manifest, "--manifest-format", "lines", "--bucket", "bench", "--queue", queue}})
	if err != nil {
		return nil, err
	}
	if err := enq.Wait(ctx); err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}

	// The clock starts at the first call.
	var t0 time.Time
	for t0.IsZero() {
		st, err := fakeStats(ctx, url)
		if err != nil {
			return nil, err
		}
		if st.Calls > 0 {
			t0 = time.Now()
		} else if err := waitShort(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
	var secs []apiLimitSecond
	prev := fakeapi.Stats{ByStatus: map[int]int{}}
	elapsed := 0.0
	for _, p := range schedule {
		if len(secs) > 0 { // the first phase's rate is the fake's from the start
			if err := setHiddenRate(ctx, url, p.HiddenRate); err != nil {
				return nil, err
			}
		}
		elapsed += p.Seconds
		for len(secs) < int(elapsed) {
			if err := waitShort(ctx, time.Until(t0.Add(time.Duration(len(secs)+1)*time.Second))); err != nil {
				return nil, err
			}
			st, err := fakeStats(ctx, url)
			if err != nil {
				return nil, err
			}
			fs, err := fleet.New(e.redis, fleet.Config{}).Status(ctx)
			if err != nil {
				return nil, err
			}
			secs = append(secs, apiLimitSecond{OK: st.ByStatus[200] - prev.ByStatus[200],
				Limited: st.ByStatus[429] - prev.ByStatus[429], Hidden: p.HiddenRate,
				Rate: math.Round(fs.Rate*10) / 10, Reason: string(fs.RateReason)})
			prev = st
		}
	}
	if scored := prev.ByStatus[200]; scored >= len(keys) {
		return secs, fmt.Errorf("api-limit: the run ran out of images (%d scored): the figures are low", scored)
	}
	return secs, nil
}

// apiLimitSummary sums one phase's seconds.
func apiLimitSummary(p apiLimitPhase, secs []apiLimitSecond) apiLimitPhase {
	sum := func(s []apiLimitSecond) (ok, limited int) {
		for _, x := range s {
			ok, limited = ok+x.OK, limited+x.Limited
		}
		return ok, limited
	}
	share := func(ok, limited int) float64 { return float64(limited) / float64(max(ok+limited, 1)) }
	p.OK, p.Limited = sum(secs)
	p.LimitedShare = share(p.OK, p.Limited)
	last := secs[len(secs)*2/3:]
	ok, limited := sum(last)
	p.Sustained = float64(ok) / float64(max(len(last), 1))
	p.SustainedRatio = p.Sustained / p.HiddenRate
	p.SustainedLimitedShare = share(ok, limited)
	p.TrackSeconds = -1
	for s := 0; s+5 <= len(secs); s++ {
		ok, limited := sum(secs[s : s+5])
		switch {
		case float64(ok) < 0.9*5*p.HiddenRate || share(ok, limited) > 0.02:
			p.TrackSeconds = -1
		case p.TrackSeconds < 0:
			p.TrackSeconds = float64(s)
		}
	}
	return p
}

// startHiddenLimitAPI starts `reverify fake-api` with a hidden limit.
func (e *env) startHiddenLimitAPI(ctx context.Context, latency time.Duration, rate float64) (*testenv.Process, string, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, "", err
	}
	p, err := testenv.Start(testenv.Command{Name: "fake-api", Bin: e.bin, Log: filepath.Join(e.dir, "apilimit-fake-api.log"),
		Args: []string{"fake-api", "--addr", port.Addr(), "--latency", latency.String(),
			"--hidden-rate", strconv.FormatFloat(rate, 'f', -1, 64)},
		Env: []string{"REVERIFY_API_KEY=" + apiKey}})
	if err != nil {
		return nil, "", err
	}
	url := "http://" + port.Addr()
	ready, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.WaitReady(ready, func(ctx context.Context) error { _, err := fakeStats(ctx, url); return err }); err != nil {
		_ = p.Terminate()
		return nil, "", fmt.Errorf("fake API on %s did not answer: %w", port.Addr(), err)
	}
	return p, url, nil
}

func fakeStats(ctx context.Context, url string) (fakeapi.Stats, error) {
	var st fakeapi.Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/_fake/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("fake API stats: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("fake API stats: %w", err)
	}
	return st, nil
}

// setHiddenRate changes the fake's hidden limit through its control surface.
func setHiddenRate(ctx context.Context, url string, rate float64) error {
	body, _ := json.Marshal(map[string]float64{"hiddenRate": rate})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/_fake/options", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("set hidden rate: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("set hidden rate: HTTP %d", resp.StatusCode)
	}
	return nil
}
