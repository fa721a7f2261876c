package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"reverify"
	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

// workerKind says which process consumes the queue.
type workerKind int

const (
	reverifyWorker  workerKind = iota // `reverify worker`
	noopWorkerKind                    // the asynq no-op baseline
	profiledWorker                    // `reverify worker` built with a pprof endpoint
	sleepWorkerKind                   // worker.Server around a handler that only waits (queueing alone)
)

// verifies reports whether the kind runs reverify's verify handler (fake API,
// S3 and ledger included).
func (k workerKind) verifies() bool { return k == reverifyWorker || k == profiledWorker }

// pipelineSpec is one pipeline measurement.
type pipelineSpec struct {
	name        string
	kind        workerKind
	keys        []string // objects in bucket "bench"; the no-op only uses the count
	imageBytes  int
	concurrency int
	latency     time.Duration
	profilePath string // profiledWorker: where the profile goes
	profileSecs int    // seconds of CPU profile; 0 = a heap profile
	pprofAddr   string
	lanes       int // sleepWorkerKind: worker.Config.Lanes (0 = reverify's default)
	// preEnqueued holds the queue paused until the worker's feeder has put
	// every task in it (a window of them all): the feeder's baseline.
	preEnqueued bool
	tls         bool // versitygw and the fake API over HTTPS
}

// Dispatch modes of a verifying run, in pipelineFigures.Dispatch.
const (
	dispatchFeeder      = "feeder"       // the worker's feeder tops up a window as tasks finish
	dispatchPreEnqueued = "pre-enqueued" // every task was in asynq before processing started
)

// pipelineFigures is what one pipeline run measured.
type pipelineFigures struct {
	Case          string  `json:"case"`
	Images        int     `json:"images"`
	ImageKB       int     `json:"image_kb"`
	Concurrency   int     `json:"concurrency"`
	LatencyMS     int64   `json:"api_latency_ms"`
	WindowImages  int     `json:"window_images"`
	WindowSeconds float64 `json:"window_seconds"`
	ImagesPerSec  float64 `json:"images_per_sec"`
	CPUMsPerImage float64 `json:"cpu_ms_per_image"`
	CPUCores      float64 `json:"cpu_cores"`
	FakeAPICPUMs  float64 `json:"fake_api_cpu_ms_per_image,omitempty"`
	S3CPUMs       float64 `json:"s3_server_cpu_ms_per_image,omitempty"`
	PostgresCPUMs float64 `json:"postgres_cpu_ms_per_image,omitempty"`
	RedisCPUMs    float64 `json:"redis_cpu_ms_per_image,omitempty"`
	// RedisCommands is the commands Redis processed per image, less the
	// harness's own polling; a script's commands count one by one.
	RedisCommands float64 `json:"redis_commands_per_image,omitempty"`
	// MachineCPUMs is every process's CPU per image (the busy ticks of
	// /proc/stat): what one image costs this machine as a whole.
	MachineCPUMs float64 `json:"machine_cpu_ms_per_image,omitempty"`
	// MachineCeiling is the rate at which the machine's cores would all be
	// busy at MachineCPUMs per image: no concurrency gets past it here.
	// WorkerCeiling is the same for the worker alone, as on a machine of
	// these cores with the servers elsewhere (as in production).
	MachineCeiling float64 `json:"machine_ceiling_images_per_sec,omitempty"`
	WorkerCeiling  float64 `json:"worker_ceiling_images_per_sec,omitempty"`
	IdleRSSMB      float64 `json:"idle_rss_mb"`
	PeakRSSMB      float64 `json:"peak_rss_mb"`
	// MachineBusy is the share of all the machine's cores that were busy
	// (every process, not only the worker): near 1, the machine, not the
	// pipeline, set the rate.
	MachineBusy float64        `json:"machine_cpu_busy"`
	LittleRate  float64        `json:"little_rate,omitempty"`
	Efficiency  float64        `json:"efficiency,omitempty"`
	Statuses    map[string]int `json:"statuses,omitempty"`
	// Per image, from the ledger: the handler's time for the image
	// (verifications.duration_ms, which ends before the result's commit)
	// less the API call's (api_calls.latency_ms); medians.
	HandlerMS    float64 `json:"handler_ms_median,omitempty"`
	APICallMS    float64 `json:"api_call_ms_median,omitempty"`
	NotAPICallMS float64 `json:"outside_api_call_ms_median,omitempty"`
	// TaskMS is C ÷ throughput: by Little's law the mean time a task holds
	// a worker slot, API call included.
	TaskMS float64 `json:"task_ms,omitempty"`

	// Dispatch says how a verifying run's tasks reached asynq (feeder or
	// pre-enqueued); TLS, that S3 and the API were reached over HTTPS.
	Dispatch string `json:"dispatch,omitempty"`
	TLS      bool   `json:"tls,omitempty"`
	// VsPreEnqueued is, on a feeder run, its images/s ÷ those of the same
	// spec pre-enqueued (issue 14's target: at least 0.95). CPUVsPlain is,
	// on a TLS run, its worker CPU per image ÷ that of the same spec over
	// plain HTTP.
	VsPreEnqueued float64 `json:"images_per_sec_vs_pre_enqueued,omitempty"`
	CPUVsPlain    float64 `json:"cpu_ms_per_image_vs_plain,omitempty"`
}

func (f pipelineFigures) rate() float64 { return f.ImagesPerSec }

type sample struct {
	at   time.Time
	done int
	cpu  time.Duration // the worker's
	api  time.Duration // the fake API's
	s3   time.Duration // versitygw's
	pg   time.Duration // PostgreSQL's, every process
	rdb  time.Duration // Redis's
	cmds int64         // commands Redis processed
	poll int           // polls of the queue so far
	// The machine's busy and total CPU ticks.
	busy, total int64
}

func (e *env) measurePipeline(ctx context.Context, s pipelineSpec) (pipelineFigures, error) {
	f := pipelineFigures{Case: s.name, Images: len(s.keys), ImageKB: s.imageBytes >> 10, Concurrency: s.concurrency,
		LatencyMS: s.latency.Milliseconds(), TLS: s.tls}
	if s.kind.verifies() {
		f.Dispatch = dispatchFeeder
		if s.preEnqueued {
			f.Dispatch = dispatchPreEnqueued
		}
	} else if err := e.measurePollCommands(ctx); err != nil {
		return f, err
	}
	if err := e.flushRedis(ctx); err != nil {
		return f, err
	}
	queue := "bench-pipe-" + randomHex(4)
	var apiURL string
	var api *testenv.Process
	var err error
	s3 := e.s3Proc
	if s.tls {
		if s3, err = e.startS3TLS(ctx); err != nil {
			return f, err
		}
	}
	if s.kind.verifies() {
		if api, apiURL, err = e.startFakeAPI(ctx, s.latency, s.tls); err != nil {
			return f, err
		}
		defer func() { _ = api.Terminate() }()
	}
	in := asynq.NewInspectorFromRedisClient(e.redis)
	if s.preEnqueued {
		if err := in.PauseQueue(queue); err != nil {
			return f, fmt.Errorf("pause queue %s: %w", queue, err)
		}
	}
	if s.kind == profiledWorker {
		port, err := testenv.FreePort()
		if err != nil {
			return f, err
		}
		s.pprofAddr = port.Addr()
	}
	w, err := e.startWorker(s, queue, apiURL)
	if err != nil {
		return f, err
	}
	defer func() { _ = w.Terminate() }()
	if err := waitShort(ctx, 1500*time.Millisecond); err != nil {
		return f, err
	}
	idle, _, err := procMemory(w)
	if err != nil {
		return f, err
	}
	f.IdleRSSMB = mb(idle)
	runID, err := e.enqueueFor(ctx, s, queue)
	if err != nil {
		return f, err
	}
	if s.preEnqueued {
		if err := e.waitQueued(ctx, queue, len(s.keys), w); err != nil {
			return f, err
		}
		if err := in.UnpauseQueue(queue); err != nil {
			return f, fmt.Errorf("unpause queue %s: %w", queue, err)
		}
	}
	// The profile starts once 10% is done, past the burst of connection
	// set-up at the start.
	warm := make(chan struct{})
	profiled := make(chan error, 1)
	if s.kind == profiledWorker {
		go func() {
			select {
			case <-warm:
				profiled <- fetchProfile(ctx, s.pprofAddr, s.profileSecs, s.profilePath)
			case <-ctx.Done():
				profiled <- ctx.Err()
			}
		}()
	} else {
		profiled <- nil
	}
	procs := followed{worker: w, api: api, s3: s3, servers: newServerCPU(),
		commands: func() (int64, error) { return e.redisCommands(ctx) }}
	// A verifying run is counted in the ledger (the queue holds only the
	// feeder's window); a baseline's tasks are all in the queue.
	count, pollCommands := func() (int, error) { return e.queueDone(queue, len(s.keys)) }, e.pollCommands
	if s.kind.verifies() {
		count, pollCommands = func() (int, error) { return e.runDone(ctx, runID) }, 1 // INFO stats alone
	}
	samples, err := e.follow(ctx, procs, count, len(s.keys), warm)
	if perr := <-profiled; err == nil {
		err = perr
	}
	if err != nil {
		return f, err
	}
	_, peak, err := procMemory(w)
	if err != nil {
		return f, err
	}
	f.PeakRSSMB = mb(peak)
	_ = w.Terminate()
	a, b := window(samples, len(s.keys))
	defer func() { logf("    run: %.0f images/s, peak RSS %.1f MB", f.ImagesPerSec, f.PeakRSSMB) }()
	f.WindowImages = b.done - a.done
	f.WindowSeconds = b.at.Sub(a.at).Seconds()
	if f.WindowImages > 0 && f.WindowSeconds > 0 {
		f.ImagesPerSec = float64(f.WindowImages) / f.WindowSeconds
		f.CPUMsPerImage = float64((b.cpu - a.cpu).Microseconds()) / 1000 / float64(f.WindowImages)
		f.CPUCores = (b.cpu - a.cpu).Seconds() / f.WindowSeconds
		if b.total > a.total {
			f.MachineBusy = float64(b.busy-a.busy) / float64(b.total-a.total)
		}
		perImage := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(f.WindowImages) }
		if api != nil {
			f.FakeAPICPUMs, f.S3CPUMs = perImage(b.api-a.api), perImage(b.s3-a.s3)
		}
		f.PostgresCPUMs, f.RedisCPUMs = perImage(b.pg-a.pg), perImage(b.rdb-a.rdb)
		f.RedisCommands = float64(b.cmds-a.cmds-int64(b.poll-a.poll)*pollCommands) / float64(f.WindowImages)
		f.MachineCPUMs = perImage(time.Duration(b.busy-a.busy) * time.Second / clockTicks)
		cores := float64(runtime.NumCPU())
		if f.MachineCPUMs > 0 {
			f.MachineCeiling = 1000 * cores / f.MachineCPUMs
		}
		if f.CPUMsPerImage > 0 {
			f.WorkerCeiling = 1000 * cores / f.CPUMsPerImage
		}
	}
	if s.latency > 0 {
		f.LittleRate = float64(s.concurrency) / s.latency.Seconds()
		f.Efficiency = f.ImagesPerSec / f.LittleRate
	}
	if s.kind.verifies() {
		if f.Statuses, err = e.statuses(ctx, runID); err != nil {
			return f, err
		}
		if f.Statuses[string(reverify.StatusScored)] != len(s.keys) {
			return f, fmt.Errorf("%s: results %v, want %d scored", s.name, f.Statuses, len(s.keys))
		}
		if err := e.timings(ctx, queue, &f); err != nil {
			return f, err
		}
		// Completed at once, the run is off the next worker's feeder's list.
		if _, err := e.store.CompleteFinishedRuns(ctx); err != nil {
			return f, err
		}
		if f.ImagesPerSec > 0 {
			f.TaskMS = 1000 * float64(s.concurrency) / f.ImagesPerSec
		}
	}
	return f, nil
}

// window picks the steady part of a run: from the first sample at or past
// 10% of the images to the first at or past 90%.
func window(samples []sample, n int) (sample, sample) {
	var a, b sample
	found := false
	for _, s := range samples {
		if !found && s.done*10 >= n {
			a, found = s, true
		}
		if found && s.done*10 >= n*9 {
			return a, s
		}
	}
	if len(samples) == 0 {
		return a, b
	}
	return a, samples[len(samples)-1]
}

// followed are the processes whose CPU a pipeline run samples; api is nil
// for the no-op baseline.
type followed struct {
	worker, api, s3 *testenv.Process
	servers         *serverCPU
	commands        func() (int64, error) // Redis's processed commands
}

func (f followed) sample(done int) (sample, error) {
	s := sample{at: time.Now(), done: done}
	var err error
	if s.busy, s.total, err = machineCPU(); err != nil {
		return s, err
	}
	if s.pg, s.rdb, err = f.servers.sample(); err != nil {
		return s, err
	}
	if s.cmds, err = f.commands(); err != nil {
		return s, err
	}
	if s.cpu, err = procCPU(f.worker); err != nil || f.api == nil {
		return s, err
	}
	if s.api, err = procCPU(f.api); err != nil {
		return s, err
	}
	s.s3, err = procCPU(f.s3)
	return s, err
}

// follow polls count (the tasks done) every 100 ms until all n are done,
// sampling CPU times; warm is closed when 10% is done.
func (e *env) follow(ctx context.Context, procs followed, count func() (int, error), n int, warm chan struct{}) ([]sample, error) {
	var samples []sample
	lastProgress := time.Now()
	for {
		done, err := count()
		if err != nil {
			return samples, err
		}
		s, err := procs.sample(done)
		if err != nil {
			return samples, err
		}
		s.poll = len(samples)
		if warm != nil && done*10 >= n {
			close(warm)
			warm = nil
		}
		if len(samples) == 0 || done > samples[len(samples)-1].done {
			lastProgress = s.at
		}
		samples = append(samples, s)
		if done >= n {
			return samples, nil
		}
		if time.Since(lastProgress) > 30*time.Second {
			return samples, fmt.Errorf("no progress for 30s at %d of %d (see %s)", done, n, procs.worker.LogPath())
		}
		if err := waitShort(ctx, 100*time.Millisecond); err != nil {
			return samples, err
		}
	}
}

// queueDone counts the tasks of a queue that holds all n of a run's tasks
// (a baseline's) that are no longer in it.
func (e *env) queueDone(queue string, n int) (int, error) {
	qi, err := asynq.NewInspectorFromRedisClient(e.redis).GetQueueInfo(queue)
	if err != nil {
		return 0, fmt.Errorf("queue %s: %w", queue, err)
	}
	return n - (qi.Pending + qi.Active + qi.Scheduled + qi.Retry), nil
}

// runDone counts a run's objects with a final result, from the ledger's
// per-run counters (what `reverify runs show` reads).
func (e *env) runDone(ctx context.Context, runID string) (int, error) {
	c, err := e.store.RunWithCounts(ctx, runID)
	if err != nil {
		return 0, fmt.Errorf("run %s: %w", runID, err)
	}
	return int(c.Done), nil
}

// waitQueued waits until the paused queue holds n pending tasks: the
// worker's feeder has dispatched them all. It gives up when the queue has
// not grown for 30 s.
func (e *env) waitQueued(ctx context.Context, queue string, n int, w *testenv.Process) error {
	in := asynq.NewInspectorFromRedisClient(e.redis)
	last, grown := -1, time.Now()
	for {
		have, err := e.queued(in, queue)
		if have > last {
			last, grown = have, time.Now()
		}
		switch {
		case err != nil:
			return err
		case have >= n:
			return nil
		case time.Since(grown) > 30*time.Second:
			return fmt.Errorf("the feeder queued %d of %d tasks and no more for 30 s (see %s)", have, n, w.LogPath())
		}
		if err := waitShort(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// measurePollCommands counts the Redis commands one poll of follow sends
// (the queue's info, then INFO stats), so they can be left out of the
// commands per image. The queue is set up as it is through a run's window:
// asynq's GetQueueInfo samples up to 20 active and 20 pending tasks, so the
// probe holds 20 active (a server whose handler waits) and 20 pending. The
// fewest of three counts is taken, in case the probe server's own
// housekeeping fell into one.
func (e *env) measurePollCommands(ctx context.Context) error {
	if e.pollCommands > 0 {
		return nil
	}
	const sample = 20 // asynq's taskSampleSize
	queue := "bench-probe-" + randomHex(4)
	c := asynq.NewClientFromRedisClient(e.redis)
	for range 2 * sample {
		if _, err := c.EnqueueContext(ctx, asynq.NewTask("probe", nil), asynq.Queue(queue)); err != nil {
			return fmt.Errorf("probe queue: %w", err)
		}
	}
	in := asynq.NewInspectorFromRedisClient(e.redis)
	defer func() { _ = in.DeleteQueue(queue, true) }()
	started, release := make(chan struct{}, sample), make(chan struct{})
	srv := asynq.NewServer(e.redisOpt(), asynq.Config{Concurrency: sample, Queues: map[string]int{queue: 1}, LogLevel: asynq.ErrorLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		started <- struct{}{}
		<-release
		return nil
	})); err != nil {
		return fmt.Errorf("probe server: %w", err)
	}
	defer srv.Shutdown()
	defer close(release)
	for range sample {
		select {
		case <-started:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e.pollCommands = math.MaxInt64
	for range 3 {
		before, err := e.redisCommands(ctx)
		if err != nil {
			return err
		}
		if _, err := in.GetQueueInfo(queue); err != nil {
			return fmt.Errorf("probe queue: %w", err)
		}
		after, err := e.redisCommands(ctx)
		if err != nil {
			return err
		}
		e.pollCommands = min(e.pollCommands, after-before)
	}
	logf("one poll of a queue costs Redis %d commands", e.pollCommands)
	return nil
}

// startFakeAPI starts the fake API at the given latency, over HTTPS with
// the harness's certificate when tls is set, and returns its base URL.
func (e *env) startFakeAPI(ctx context.Context, latency time.Duration, tls bool) (*testenv.Process, string, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, "", err
	}
	args := []string{"fake-api", "--addr", port.Addr(), "--latency", latency.String()}
	url, client := "http://"+port.Addr(), &http.Client{}
	if tls {
		files, err := e.tlsFiles()
		if err != nil {
			return nil, "", err
		}
		args = append(args, "--tls-cert", files.Cert, "--tls-key", files.Key)
		url = "https://" + port.Addr()
		if client, err = files.Client(5 * time.Second); err != nil {
			return nil, "", err
		}
	}
	// The key by environment, as the workers get it: never on a command line.
	p, err := testenv.Start(testenv.Command{Name: "fake-api", Bin: e.bin, Log: filepath.Join(e.dir, "fake-api.log"),
		Args: args, Env: []string{"REVERIFY_API_KEY=" + apiKey}})
	if err != nil {
		return nil, "", err
	}
	ready, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = p.WaitReady(ready, func(ctx context.Context) error { return getOK(ctx, client, url+"/_fake/stats") })
	if err != nil {
		_ = p.Terminate()
		return nil, "", fmt.Errorf("fake API on %s did not answer: %w", port.Addr(), err)
	}
	return p, url, nil
}

// startWorker starts the spec's worker; extra are more arguments of
// `reverify worker`.
func (e *env) startWorker(s pipelineSpec, queue, apiURL string, extra ...string) (*testenv.Process, error) {
	c := strconv.Itoa(s.concurrency)
	redis := []string{"--redis-addr", e.redisAddr, "--redis-db", strconv.Itoa(e.redisDB)}
	cmd := testenv.Command{Log: filepath.Join(e.dir, "worker.log")}
	switch s.kind {
	case noopWorkerKind:
		cmd.Name, cmd.Bin = "noop worker", e.self
		cmd.Args = append([]string{helperNoopWorker, "--queue", queue, "--concurrency", c}, redis...)
	case sleepWorkerKind:
		cmd.Name, cmd.Bin = "sleep worker", e.self
		cmd.Args = append([]string{helperSleepWorker, "--queue", queue, "--concurrency", c,
			"--lanes", strconv.Itoa(s.lanes), "--sleep", s.latency.String()}, redis...)
	default:
		cmd.Name, cmd.Bin = "worker", e.bin
		cmd.Args = append([]string{"worker", "--concurrency", c, "--queues", queue}, extra...)
		if s.preEnqueued {
			cmd.Args = append(cmd.Args, "--dispatch-window", strconv.Itoa(len(s.keys)))
		}
		cmd.Env = append(e.procEnv(), "REVERIFY_API_URL="+apiURL)
		if s.tls {
			files, err := e.tlsFiles()
			if err != nil {
				return nil, err
			}
			// The worker's clients are unchanged: Go on Linux trusts
			// SSL_CERT_FILE in place of the system's authorities, and the
			// AWS SDK AWS_CA_BUNDLE, when set, in place of both.
			cmd.Env = append(cmd.Env, "REVERIFY_S3_ENDPOINT="+e.s3TLS.Config.Endpoint, "SSL_CERT_FILE="+files.CA,
				"AWS_CA_BUNDLE="+files.CA)
		}
		cmd.Env = append(cmd.Env, e.workerEnv...)
		if s.kind == profiledWorker {
			cmd.Name, cmd.Bin = "profiled worker", e.binProf
			cmd.Env = append(cmd.Env, "REVERIFY_BENCH_PPROF_ADDR="+s.pprofAddr)
		}
	}
	return testenv.Start(cmd)
}

// enqueueFor queues the spec's tasks: through `reverify enqueue` (a run
// with ledger rows, whose ID it returns, dispatched by the worker's feeder)
// for a real worker, the bare loop for the baselines.
func (e *env) enqueueFor(ctx context.Context, s pipelineSpec, queue string) (string, error) {
	cmd := testenv.Command{Log: filepath.Join(e.dir, "pipeline-enqueue.log")}
	if s.kind.verifies() {
		manifest, err := e.writeManifest("pipeline-"+queue+".txt", sliceKeys(s.keys))
		if err != nil {
			return "", err
		}
		cmd.Name, cmd.Bin, cmd.Env = "enqueue", e.bin, e.procEnv()
		cmd.Args = []string{"enqueue", "--manifest", manifest, "--manifest-format", "lines", "--bucket", "bench", "--queue", queue,
			"--label", benchLabel + "=" + queue}
	} else {
		cmd.Name, cmd.Bin = "enqueue loop", e.self
		cmd.Args = []string{helperEnqueueLoop, "--queue", queue, "--n", strconv.Itoa(len(s.keys)),
			"--redis-addr", e.redisAddr, "--redis-db", strconv.Itoa(e.redisDB)}
	}
	p, err := testenv.Start(cmd)
	if err != nil {
		return "", err
	}
	if err := p.Wait(ctx); err != nil || !s.kind.verifies() {
		return "", err
	}
	return e.runOf(ctx, queue)
}

// benchLabel labels each run the harness enqueues with its queue, so the
// run is found again.
const benchLabel = "bench-queue"

// runOf finds the run enqueued for queue.
func (e *env) runOf(ctx context.Context, queue string) (string, error) {
	runs, err := e.store.Runs(ctx, postgres.RunFilter{Labels: map[string]string{benchLabel: queue}, Limit: 2})
	if err != nil {
		return "", err
	}
	if len(runs) != 1 {
		return "", fmt.Errorf("%d runs labelled %s=%s, want 1", len(runs), benchLabel, queue)
	}
	return runs[0].ID, nil
}

// statuses counts the results of a run (its counters, as runs show).
func (e *env) statuses(ctx context.Context, runID string) (map[string]int, error) {
	c, err := e.store.RunWithCounts(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("count results: %w", err)
	}
	out := map[string]int{}
	for st, n := range c.ByStatus {
		out[string(st)] = int(n)
	}
	return out, nil
}

// timings reads the per-image medians of the run that used queue.
func (e *env) timings(ctx context.Context, queue string, f *pipelineFigures) error {
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v.duration_ms),
		       percentile_cont(0.5) WITHIN GROUP (ORDER BY c.latency_ms),
		       percentile_cont(0.5) WITHIN GROUP (ORDER BY v.duration_ms - c.latency_ms)
		FROM verifications v
		JOIN runs r ON r.id = v.run_id
		JOIN api_calls c ON c.run_id = v.run_id AND c.bucket = v.bucket AND c.object_key = v.object_key
		WHERE r.queue = $1 AND c.outcome = 'scored'`, queue).Scan(&f.HandlerMS, &f.APICallMS, &f.NotAPICallMS)
	if err != nil {
		return fmt.Errorf("per-image timings: %w", err)
	}
	return nil
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
