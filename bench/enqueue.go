package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"reverify"
	"reverify/campaign"
	"reverify/internal/testenv"
)

// enqueueFigures is one enqueue measurement.
type enqueueFigures struct {
	Case         string  `json:"case"`
	Keys         int     `json:"keys"`
	Seconds      float64 `json:"seconds"`
	KeysPerSec   float64 `json:"keys_per_sec"`
	PeakRSSMB    float64 `json:"peak_rss_mb"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	RedisPerTask float64 `json:"redis_bytes_per_task"`

	// A reverify run is only recorded in PostgreSQL (RedisPerTask about
	// nothing); WindowTasks and WindowRedisBytes are the tasks a worker's
	// feeder then puts in Redis (its dispatch window, the queue held
	// paused) and the Redis memory they take.
	WindowTasks      int   `json:"window_tasks,omitempty"`
	WindowRedisBytes int64 `json:"window_redis_bytes,omitempty"`
}

// measureEnqueue runs one process that enqueues n keys with a flushed
// Redis database and measures it: the baselines put n tasks in asynq,
// `reverify enqueue` (bin is e.bin) records a run of n pending objects and
// puts none. For such a run, with window > 0, a worker is then started with
// that dispatch window to see what its feeder's window costs Redis; the
// run is cancelled at the end.
func (e *env) measureEnqueue(ctx context.Context, name string, n, window int, bin string, args ...string) (enqueueFigures, error) {
	f := enqueueFigures{Case: name, Keys: n}
	queue, reverifyRun := queueOf(args), bin == e.bin
	if reverifyRun {
		args = append(args, "--label", benchLabel+"="+queue)
	}
	if err := e.flushRedis(ctx); err != nil {
		return f, err
	}
	before, err := e.redisUsedMemory(ctx)
	if err != nil {
		return f, err
	}
	p, err := e.runKeys(ctx, &f, "enqueue.log", bin, args...)
	if err != nil {
		return f, err
	}
	after, err := e.redisUsedMemory(ctx)
	if err != nil {
		return f, err
	}
	f.RedisPerTask = float64(after-before) / float64(n)
	in := asynq.NewInspectorFromRedisClient(e.redis)
	queued, err := e.queued(in, queue)
	if err != nil {
		return f, err
	}
	want := n
	if reverifyRun {
		want = 0 // the feeder dispatches, a window at a time
	}
	if queued != want {
		return f, fmt.Errorf("%s: %d tasks in Redis, want %d (see %s)", name, queued, want, p.LogPath())
	}
	if reverifyRun {
		runID, err := e.runOf(ctx, queue)
		if err != nil {
			return f, err
		}
		c, err := e.store.RunWithCounts(ctx, runID)
		if err != nil {
			return f, err
		}
		if c.Pending != int64(n) {
			return f, fmt.Errorf("%s: %d objects pending in the ledger, want %d (see %s)", name, c.Pending, n, p.LogPath())
		}
		if window > 0 {
			if err := e.windowMemory(ctx, &f, queue, min(window, n)); err != nil {
				return f, err
			}
		}
		if err := e.endRun(ctx, runID); err != nil {
			return f, err
		}
	}
	return f, e.flushRedis(ctx)
}

// windowMemory starts a worker with a dispatch window of window tasks, the
// run's queue paused, waits until its feeder has filled the window, and
// measures the Redis memory the window's tasks take: what deleting them
// gives back (the worker's own keys and connections stay; its feeder
// puts tasks back only at its refill, minutes later).
func (e *env) windowMemory(ctx context.Context, f *enqueueFigures, queue string, window int) error {
	in := asynq.NewInspectorFromRedisClient(e.redis)
	if err := in.PauseQueue(queue); err != nil {
		return fmt.Errorf("pause queue %s: %w", queue, err)
	}
	// The queue stays paused: the API is never called.
	w, err := e.startWorker(pipelineSpec{kind: reverifyWorker, concurrency: 100}, queue, "http://127.0.0.1:9",
		"--dispatch-window", strconv.Itoa(window), "--refill-every", "10m")
	if err != nil {
		return err
	}
	defer func() { _ = w.Terminate() }()
	if err := e.waitQueued(ctx, queue, window, w); err != nil {
		return err
	}
	with, err := e.redisUsedMemory(ctx)
	if err != nil {
		return err
	}
	if _, err := in.DeleteAllPendingTasks(queue); err != nil {
		return fmt.Errorf("empty queue %s: %w", queue, err)
	}
	without, err := e.redisUsedMemory(ctx)
	if err != nil {
		return err
	}
	f.WindowTasks, f.WindowRedisBytes = window, with-without
	return w.Terminate()
}

// endRun cancels a run and all its pending objects at once, so that no
// later worker's feeder dispatches or cancels them while it is measured.
func (e *env) endRun(ctx context.Context, runID string) error {
	if _, _, err := e.store.CancelRun(ctx, runID, reverify.Actor{Who: "bench", Why: "measured"}); err != nil {
		return err
	}
	for {
		n, err := e.store.CancelPending(ctx, 100_000)
		if err != nil || n == 0 {
			return err
		}
	}
}

// measureList runs the listing baseline: the same listing as `reverify
// enqueue --prefix`, without the ledger or the queue.
func (e *env) measureList(ctx context.Context, name string, n int, prefix string) (enqueueFigures, error) {
	f := enqueueFigures{Case: name, Keys: n}
	_, err := e.runKeys(ctx, &f, "list.log", e.self, helperList, "--bucket", "bench", "--prefix", prefix, "--n", strconv.Itoa(n))
	return f, err
}

// runKeys runs one process over f.Keys keys to its end and fills in its
// time, rate, peak RSS and CPU.
func (e *env) runKeys(ctx context.Context, f *enqueueFigures, logName, bin string, args ...string) (*testenv.Process, error) {
	start := time.Now()
	p, err := testenv.Start(testenv.Command{Name: f.Case, Bin: bin, Args: args, Env: e.procEnv(), Log: filepath.Join(e.dir, logName)})
	if err != nil {
		return nil, err
	}
	peak, err := waitPeak(ctx, p)
	if err != nil {
		return p, err
	}
	elapsed := time.Since(start)
	f.Seconds, f.KeysPerSec = elapsed.Seconds(), float64(f.Keys)/elapsed.Seconds()
	f.PeakRSSMB, f.CPUSeconds = float64(peak)/(1<<20), cpuUsed(p).Seconds()
	return p, nil
}

// queued counts the pending tasks of queue; a queue asynq does not know
// yet (nothing was ever put in it) holds none.
func (e *env) queued(in *asynq.Inspector, queue string) (int, error) {
	queues, err := in.Queues()
	if err != nil {
		return 0, fmt.Errorf("queues: %w", err)
	}
	if !slices.Contains(queues, queue) {
		return 0, nil
	}
	qi, err := in.GetQueueInfo(queue)
	if err != nil {
		return 0, fmt.Errorf("queue %s: %w", queue, err)
	}
	return qi.Pending, nil
}

// queueOf finds the --queue argument.
func queueOf(args []string) string {
	for i, a := range args {
		if a == "--queue" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// enqueueCases measures case 1 for every key count: the bare asynq loop
// (baseline), a manifest and an S3 listing.
func (e *env) enqueueCases(ctx context.Context, o options) ([]enqueueFigures, error) {
	var out []enqueueFigures
	add := func(f enqueueFigures, err error) error {
		if err != nil {
			return err
		}
		logf("  %-28s %8d keys %7.1fs %8.0f keys/s  rss %6.1f MB  redis %5.0f B/task",
			f.Case, f.Keys, f.Seconds, f.KeysPerSec, f.PeakRSSMB, f.RedisPerTask)
		if f.WindowTasks > 0 {
			logf("  %-28s a worker's window of %d tasks: redis %.0f KB, %.0f B/task", "", f.WindowTasks,
				float64(f.WindowRedisBytes)/1024, float64(f.WindowRedisBytes)/float64(f.WindowTasks))
		}
		out = append(out, f)
		return nil
	}
	for _, n := range o.enqueueKeys {
		q := "bench-enq-" + randomHex(4)
		args := []string{helperEnqueueLoop, "--queue", q, "--n", strconv.Itoa(n), "--concurrency", "64", "--redis-db", strconv.Itoa(e.redisDB), "--redis-addr", e.redisAddr}
		if err := add(median(o.repeat, func() (enqueueFigures, error) {
			return e.measureEnqueue(ctx, fmt.Sprintf("asynq loop %s", count(n)), n, 0, e.self, args...)
		})); err != nil {
			return out, err
		}
		if err := add(median(o.repeat, func() (enqueueFigures, error) {
			q := "bench-enq-" + randomHex(4)
			args := []string{helperEnqueueLoop, "--pipelined", "--queue", q, "--n", strconv.Itoa(n), "--concurrency", "64",
				"--redis-db", strconv.Itoa(e.redisDB), "--redis-addr", e.redisAddr}
			return e.measureEnqueue(ctx, fmt.Sprintf("asynq loop pipelined %s", count(n)), n, 0, e.self, args...)
		})); err != nil {
			return out, err
		}
		manifest, err := e.writeManifest(fmt.Sprintf("manifest-%d.txt", n), syntheticKeys("m/", n))
		if err != nil {
			return out, err
		}
		if err := add(median(o.repeat, func() (enqueueFigures, error) {
			q := "bench-enq-" + randomHex(4)
			return e.measureEnqueue(ctx, fmt.Sprintf("manifest %s", count(n)), n, campaign.DefaultWindow(100, 0), e.bin, "enqueue",
				"--manifest", manifest, "--manifest-format", "lines", "--bucket", "bench", "--queue", q)
		})); err != nil {
			return out, err
		}
	}
	for _, n := range o.listKeys {
		prefix := fmt.Sprintf("list%d/", n)
		t := time.Now()
		if _, err := e.seedImages("bench", prefix, n, 0); err != nil {
			return out, err
		}
		logf("  seeded %d objects for the listing in %s", n, time.Since(t).Round(time.Millisecond))
		if err := add(median(o.repeat, func() (enqueueFigures, error) {
			return e.measureList(ctx, fmt.Sprintf("bare S3 listing %s, no enqueue", count(n)), n, prefix)
		})); err != nil {
			return out, err
		}
		if err := add(median(o.repeat, func() (enqueueFigures, error) {
			q := "bench-enq-" + randomHex(4)
			return e.measureEnqueue(ctx, fmt.Sprintf("S3 listing %s", count(n)), n, 0, e.bin, "enqueue",
				"--bucket", "bench", "--prefix", prefix, "--queue", q)
		})); err != nil {
			return out, err
		}
	}
	return out, nil
}

func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}
