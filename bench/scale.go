package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"reverify"
	"reverify/campaign"
	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

// scaleFigures is case 6 (issue 14): one run of a 10M-object manifest,
// from ingest to delete, with PostgreSQL driving dispatch.
type scaleFigures struct {
	Objects   int `json:"objects"`
	Processed int `json:"processed"`

	IngestSeconds    float64 `json:"ingest_seconds"`
	IngestKeysPerSec float64 `json:"ingest_keys_per_sec"`
	IngestPeakRSSMB  float64 `json:"ingest_peak_rss_mb"`
	// BareCopy is the baseline: one pgx CopyFrom of the same rows into a
	// table of verifications' shape (LIKE … INCLUDING ALL), same run.
	BareCopySeconds    float64 `json:"bare_copy_seconds"`
	BareCopyKeysPerSec float64 `json:"bare_copy_keys_per_sec"`
	IngestRatio        float64 `json:"ingest_vs_bare_copy"`

	// Redis memory added by the run: after the ingest (no worker), and the
	// peak while a worker's feeder held its window and the run was worked.
	RedisAfterIngestBytes int64         `json:"redis_added_after_ingest_bytes"`
	RedisPeakAddedBytes   int64         `json:"redis_peak_added_bytes"`
	RedisOverTime         []scaleSample `json:"redis_over_time"`
	// RedisKeysPeakBytes is the peak of MEMORY USAGE summed over the
	// harness database's keys: the same, without the server's own noise.
	RedisKeysPeakBytes int64 `json:"redis_keys_peak_bytes"`
	Window             int   `json:"dispatch_window"`

	// Medians of 10, in milliseconds, with the run's 10M rows in place.
	Queries map[string]float64 `json:"query_ms_median"`

	ProcessSeconds    float64 `json:"process_seconds"`
	ImagesPerSec      float64 `json:"images_per_sec"`
	UrgentFirstResult float64 `json:"urgent_first_result_seconds"`

	CancelSeconds     float64 `json:"cancel_seconds"`
	CallsAfterCancel  int64   `json:"api_calls_started_after_cancel"`
	CancelDrainSecs   float64 `json:"cancel_conversion_seconds"`
	ReportSeconds     float64 `json:"report_seconds"`
	ReportRowsPerSec  float64 `json:"report_rows_per_sec"`
	ReportPeakRSSMB   float64 `json:"report_peak_rss_mb"`
	RetryRows         int     `json:"retry_rows"`
	RetrySeconds      float64 `json:"retry_seconds"`
	DeleteSeconds     float64 `json:"delete_seconds"`
	DatabaseMBBefore  float64 `json:"database_mb_with_run"`
	DatabaseMBDeleted float64 `json:"database_mb_after_delete"`
}

// scaleSample is Redis's memory at one moment of the worked run.
type scaleSample struct {
	Seconds float64 `json:"seconds"`
	Done    int64   `json:"done"`
	UsedMB  float64 `json:"redis_used_mb"`
	KeysMB  float64 `json:"redis_keys_mb"`
}

// scaleCase runs case 6: seed the images the run will process, ingest the
// manifest, time the hot queries, work part of the run through the fake
// API (with an urgent run started behind it), cancel, report, retry and
// delete.
func (e *env) scaleCase(ctx context.Context, o options) (scaleFigures, error) {
	f := scaleFigures{Objects: o.scaleObjects, Processed: min(o.scaleProcess, o.scaleObjects), Queries: map[string]float64{}}
	if err := e.flushRedis(ctx); err != nil {
		return f, err
	}
	logf("  seeding %d images to process", f.Processed)
	real, err := e.seedImages("bench", "scale/", f.Processed, 4<<10)
	if err != nil {
		return f, err
	}
	manifest, err := e.writeManifest("scale.txt", func(yield func(string) bool) {
		for k := range sliceKeys(real) {
			if !yield(k) {
				return
			}
		}
		syntheticKeys("scale/missing/", f.Objects-f.Processed)(yield)
	})
	if err != nil {
		return f, err
	}
	store, err := postgres.Open(ctx, e.dbURL, 4)
	if err != nil {
		return f, err
	}
	defer store.Close()

	logf("  bare CopyFrom of %d rows (baseline)", f.Objects)
	bare, err := e.bareCopy(ctx, manifest)
	if err != nil {
		return f, err
	}
	f.BareCopySeconds, f.BareCopyKeysPerSec = bare.Seconds(), float64(f.Objects)/bare.Seconds()

	logf("  ingest of %d keys by reverify enqueue", f.Objects)
	redisBefore, err := e.redisUsedMemory(ctx)
	if err != nil {
		return f, err
	}
	queue := "bench-scale-" + randomHex(4)
	start := time.Now()
	var run struct {
		Run reverify.Run `json:"run"`
	}
	peak, err := e.cli(ctx, &run, "enqueue", "--manifest", manifest, "--manifest-format", "lines", "--bucket", "bench",
		"--queue", queue, "--name", "scale", "-o", "json")
	if err != nil {
		return f, err
	}
	f.IngestSeconds = time.Since(start).Seconds()
	f.IngestKeysPerSec, f.IngestPeakRSSMB = float64(f.Objects)/f.IngestSeconds, mb(peak)
	f.IngestRatio = f.IngestKeysPerSec / f.BareCopyKeysPerSec
	if run.Run.Total != int64(f.Objects) {
		return f, fmt.Errorf("scale: run %s has %d objects, want %d", run.Run.ID, run.Run.Total, f.Objects)
	}
	id := run.Run.ID
	after, err := e.redisUsedMemory(ctx)
	if err != nil {
		return f, err
	}
	f.RedisAfterIngestBytes = after - redisBefore
	logf("    %.0f keys/s (bare CopyFrom %.0f/s: %.2f); Redis +%d bytes", f.IngestKeysPerSec, f.BareCopyKeysPerSec, f.IngestRatio, f.RedisAfterIngestBytes)

	if err := e.scaleQueries(ctx, store, id, &f); err != nil {
		return f, err
	}
	if err := e.scaleWork(ctx, o, store, id, queue, real, redisBefore, &f); err != nil {
		return f, err
	}
	return f, e.scaleEnd(ctx, store, id, &f)
}

// bareCopy copies the manifest's rows with one CopyFrom into a fresh table
// shaped as verifications (columns, defaults, constraints, indexes), then
// drops it.
func (e *env) bareCopy(ctx context.Context, manifest string) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		return 0, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE bench_bare_copy (LIKE verifications INCLUDING ALL)`); err != nil {
		return 0, fmt.Errorf("bare copy table: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `DROP TABLE bench_bare_copy`) }()
	file, err := os.Open(manifest)
	if err != nil {
		return 0, fmt.Errorf("manifest: %w", err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	run := randomUUID()
	start := time.Now()
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"bench_bare_copy"}, []string{"run_id", "bucket", "object_key", "object_version"},
		&lineSource{sc: sc, row: []any{run, "bench", "", ""}})
	if err != nil {
		return 0, fmt.Errorf("bare copy: %w", err)
	}
	return time.Since(start), sc.Err()
}

// lineSource feeds CopyFrom one manifest line per row.
type lineSource struct {
	sc  *bufio.Scanner
	row []any
}

func (s *lineSource) Next() bool {
	if !s.sc.Scan() {
		return false
	}
	s.row[2] = s.sc.Text()
	return true
}
func (s *lineSource) Values() ([]any, error) { return s.row, nil }
func (s *lineSource) Err() error             { return s.sc.Err() }

// scaleQueries times the hot paths, ten times each: the two commands and
// the dashboard page as a user meets them (process start included), the
// threshold check, feeder top-up and review queue as the fleet calls them.
func (e *env) scaleQueries(ctx context.Context, store *postgres.Store, id string, f *scaleFigures) error {
	dash, url, err := e.startDashboard(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = dash.Terminate() }()
	seq, err := store.DispatchedSeq(ctx, id)
	if err != nil {
		return err
	}
	window := 400
	queries := []struct {
		name string
		do   func() error
	}{
		{"runs show", func() error { _, err := e.cli(ctx, nil, "runs", "show", id, "-o", "json"); return err }},
		{"runs list", func() error { _, err := e.cli(ctx, nil, "runs", "list", "-o", "json"); return err }},
		{"dashboard run page", func() error { return getOK(ctx, http.DefaultClient, url+"/runs/"+id) }},
		{"dashboard runs page", func() error { return getOK(ctx, http.DefaultClient, url+"/") }},
		{"threshold check", func() error { _, err := store.FailRunsOverThreshold(ctx); return err }},
		{"feeder top-up", func() error {
			if _, err := store.InWindow(ctx, id, seq); err != nil {
				return err
			}
			_, err := store.NextPending(ctx, id, seq, window)
			return err
		}},
		{"review queue", func() error { _, err := store.ReviewQueue(ctx, id, 50, 100); return err }},
	}
	for _, q := range queries {
		var times []float64
		for range 10 {
			start := time.Now()
			if err := q.do(); err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			times = append(times, float64(time.Since(start).Microseconds())/1000)
		}
		slices.Sort(times)
		f.Queries[q.name] = (times[4] + times[5]) / 2
		logf("    %s: %.1f ms (median of 10)", q.name, f.Queries[q.name])
	}
	return nil
}

// scaleWork runs the fake API and one worker until f.Processed objects are
// done, sampling Redis; an urgent run of 100 objects starts once a tenth
// is done. It then cancels the big run and counts calls started after.
func (e *env) scaleWork(ctx context.Context, o options, store *postgres.Store, id, queue string, real []string,
	redisBefore int64, f *scaleFigures) error {
	api, apiURL, err := e.startFakeAPI(ctx, 0, false)
	if err != nil {
		return err
	}
	defer func() { _ = api.Terminate() }()
	f.Window = o.scaleWindow
	if f.Window == 0 {
		f.Window = campaign.DefaultWindow(o.concurrency, 0)
	}
	w, err := testenv.Start(testenv.Command{Name: "worker", Bin: e.bin, Log: filepath.Join(e.dir, "scale-worker.log"),
		Args: []string{"worker", "--concurrency", strconv.Itoa(o.concurrency), "--queues", priorityQueues(queue),
			"--dispatch-window", strconv.Itoa(o.scaleWindow)},
		Env: append(append(e.procEnv(), "REVERIFY_API_URL="+apiURL), e.workerEnv...)})
	if err != nil {
		return err
	}
	defer func() { _ = w.Terminate() }()
	logf("  working %d objects of the run (window %d), then cancelling", f.Processed, o.scaleWindow)
	urgent := make(chan error, 1)
	urgentStarted := false
	start := time.Now()
	lastPrint := time.Time{}
	for {
		c, err := store.RunWithCounts(ctx, id)
		if err != nil {
			return err
		}
		used, err := e.redisUsedMemory(ctx)
		if err != nil {
			return err
		}
		keys, err := e.redisDBBytes(ctx)
		if err != nil {
			return err
		}
		s := scaleSample{Seconds: time.Since(start).Seconds(), Done: c.Done, UsedMB: mb(used - redisBefore), KeysMB: mb(keys)}
		f.RedisOverTime = append(f.RedisOverTime, s)
		f.RedisPeakAddedBytes = max(f.RedisPeakAddedBytes, used-redisBefore)
		f.RedisKeysPeakBytes = max(f.RedisKeysPeakBytes, keys)
		if time.Since(lastPrint) >= 5*time.Second {
			logf("    t=%5.1fs done %8d  Redis used_memory %+.2f MB, keys %.2f MB", s.Seconds, s.Done, s.UsedMB, s.KeysMB)
			lastPrint = time.Now()
		}
		if !urgentStarted && c.Done*10 >= int64(f.Processed) {
			urgentStarted = true
			go func() { urgent <- e.urgentRun(ctx, store, queue, real[:100], f) }()
		}
		if c.Done >= int64(f.Processed) {
			break
		}
		if time.Since(start) > 30*time.Minute {
			return fmt.Errorf("scale: %d of %d done after 30 minutes (see %s)", c.Done, f.Processed, w.LogPath())
		}
		if err := waitShort(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	f.ProcessSeconds = time.Since(start).Seconds()
	f.ImagesPerSec = float64(f.Processed) / f.ProcessSeconds
	if urgentStarted {
		if err := <-urgent; err != nil {
			return err
		}
	}

	start = time.Now()
	if _, err := e.cli(ctx, nil, "runs", "cancel", id, "--reason", "bench"); err != nil {
		return err
	}
	cancelled := time.Now()
	f.CancelSeconds = cancelled.Sub(start).Seconds()
	// The window's tasks are skipped; wait until the queue has none left,
	// then count the calls that started after the cancel returned.
	if err := e.waitQueueEmpty(ctx, queue); err != nil {
		return err
	}
	if f.CallsAfterCancel, err = e.callsSince(ctx, id, cancelled); err != nil {
		return err
	}
	// The feeder converts the rest of the run's pending objects.
	for {
		c, err := store.RunWithCounts(ctx, id)
		if err != nil {
			return err
		}
		if c.Pending == 0 {
			break
		}
		if err := waitShort(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	f.CancelDrainSecs = time.Since(cancelled).Seconds()
	logf("    cancel returned in %.2f s; %d API calls started after it; pending rows converted in %.1f s",
		f.CancelSeconds, f.CallsAfterCancel, f.CancelDrainSecs)
	return nil
}

// urgentRun enqueues a small high-priority run behind the big one and
// times its first result from the start of the enqueue.
func (e *env) urgentRun(ctx context.Context, store *postgres.Store, queue string, keys []string, f *scaleFigures) error {
	manifest, err := e.writeManifest("urgent.txt", sliceKeys(keys))
	if err != nil {
		return err
	}
	start := time.Now()
	var run struct {
		Run reverify.Run `json:"run"`
	}
	if _, err := e.cli(ctx, &run, "enqueue", "--manifest", manifest, "--manifest-format", "lines", "--bucket", "bench",
		"--queue", queue, "--priority", "high", "--name", "urgent", "-o", "json"); err != nil {
		return err
	}
	for {
		c, err := store.RunWithCounts(ctx, run.Run.ID)
		if err != nil {
			return err
		}
		if c.Done > 0 {
			f.UrgentFirstResult = time.Since(start).Seconds()
			logf("    urgent run: first result %.2f s after its enqueue started", f.UrgentFirstResult)
			return nil
		}
		if time.Since(start) > 2*time.Minute {
			return fmt.Errorf("scale: the urgent run %s has no result after 2 minutes", run.Run.ID)
		}
		if err := waitShort(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// scaleEnd writes the completion report, retries a million failed rows and
// deletes the run.
func (e *env) scaleEnd(ctx context.Context, store *postgres.Store, id string, f *scaleFigures) error {
	logf("  completion report of %d rows", f.Objects)
	start := time.Now()
	peak, err := e.cli(ctx, nil, "runs", "report", id, "--to", filepath.Join(e.dir, "report"))
	if err != nil {
		return err
	}
	f.ReportSeconds = time.Since(start).Seconds()
	f.ReportRowsPerSec, f.ReportPeakRSSMB = float64(f.Objects)/f.ReportSeconds, mb(peak)
	if err := os.RemoveAll(filepath.Join(e.dir, "report")); err != nil {
		return err
	}
	logf("    %.1f s = %.0f rows/s, peak RSS %.1f MB", f.ReportSeconds, f.ReportRowsPerSec, f.ReportPeakRSSMB)

	if f.RetryRows, err = e.failRows(ctx, id, 1_000_000); err != nil {
		return err
	}
	start = time.Now()
	if _, err := e.cli(ctx, nil, "runs", "retry", id, "--status", string(reverify.StatusFailed)); err != nil {
		return err
	}
	f.RetrySeconds = time.Since(start).Seconds()
	c, err := store.RunWithCounts(ctx, id)
	if err != nil {
		return err
	}
	if c.Pending != int64(f.RetryRows) {
		return fmt.Errorf("scale: after retry %d pending, want %d", c.Pending, f.RetryRows)
	}
	logf("    runs retry of %d failed rows: %.1f s", f.RetryRows, f.RetrySeconds)
	if _, err := e.cli(ctx, nil, "runs", "cancel", id); err != nil {
		return err
	}
	if f.DatabaseMBBefore, err = e.databaseMB(ctx); err != nil {
		return err
	}
	start = time.Now()
	if _, err := e.cli(ctx, nil, "runs", "delete", id); err != nil {
		return err
	}
	f.DeleteSeconds = time.Since(start).Seconds()
	if f.DatabaseMBDeleted, err = e.databaseMB(ctx); err != nil {
		return err
	}
	logf("    runs delete: %.2f s (database %.0f MB → %.0f MB)", f.DeleteSeconds, f.DatabaseMBBefore, f.DatabaseMBDeleted)
	return nil
}

// cli runs one reverify command to its end and returns its peak RSS; with
// out, its standard output is decoded as JSON into it.
func (e *env) cli(ctx context.Context, out any, args ...string) (int64, error) {
	var stdout bytes.Buffer
	p, err := testenv.Start(testenv.Command{Name: args[0], Bin: e.bin, Args: args, Env: e.procEnv(),
		Log: filepath.Join(e.dir, "cli.log"), Stdout: &stdout})
	if err != nil {
		return 0, err
	}
	peak, err := waitPeak(ctx, p)
	if err != nil {
		return peak, fmt.Errorf("reverify %s: %w (see %s)", args[0], err, p.LogPath())
	}
	if out != nil {
		if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
			return peak, fmt.Errorf("reverify %v: %w", args[:2], err)
		}
	}
	return peak, nil
}

func (e *env) startDashboard(ctx context.Context) (*testenv.Process, string, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, "", err
	}
	p, err := testenv.Start(testenv.Command{Name: "dashboard", Bin: e.bin, Log: filepath.Join(e.dir, "dashboard.log"),
		Args: []string{"dashboard", "--addr", port.Addr()}, Env: e.procEnv()})
	if err != nil {
		return nil, "", err
	}
	url := "http://" + port.Addr()
	ready, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.WaitReady(ready, func(ctx context.Context) error { return getOK(ctx, http.DefaultClient, url+"/healthz") }); err != nil {
		_ = p.Terminate()
		return nil, "", fmt.Errorf("dashboard did not answer: %w", err)
	}
	return p, url, nil
}

// getOK GETs url with c and wants 200.
func getOK(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func (e *env) waitQueueEmpty(ctx context.Context, queue string) error {
	in := asynq.NewInspector(e.redisOpt())
	defer in.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		empty := true
		queues, err := in.Queues()
		if err != nil {
			return fmt.Errorf("queues: %w", err)
		}
		for _, q := range queues {
			qi, err := in.GetQueueInfo(q)
			if err != nil {
				return fmt.Errorf("queue %s: %w", q, err)
			}
			if qi.Pending+qi.Active+qi.Scheduled+qi.Retry > 0 {
				empty = false
			}
		}
		if empty {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("scale: queue %s not empty after 2 minutes", queue)
		}
		if err := waitShort(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// The harness's own SQL: set-up and counts the product has no command for.

// callsSince counts the run's API calls that started after t.
func (e *env) callsSince(ctx context.Context, id string, t time.Time) (int64, error) {
	var n int64
	err := e.query(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT count(*) FROM api_calls WHERE run_id = $1::uuid AND called_at > $2`, id, t).Scan(&n)
	})
	return n, err
}

// failRows marks n cancelled rows of the run failed, as a storage outage
// would have left them, for runs retry to re-drive; then it vacuums the
// run's partition, as autovacuum would have in the hours of such an outage.
func (e *env) failRows(ctx context.Context, id string, n int) (int, error) {
	var failed int
	err := e.query(ctx, func(conn *pgx.Conn) error {
		tag, err := conn.Exec(ctx, `UPDATE verifications SET status = 'failed', error_code = 500, message = 'bench: storage outage'
			WHERE run_id = $1::uuid AND seq IN (SELECT seq FROM verifications WHERE run_id = $1::uuid AND status = 'cancelled' ORDER BY seq LIMIT $2)`,
			id, n)
		if err != nil {
			return err
		}
		failed = int(tag.RowsAffected())
		_, err = conn.Exec(ctx, `VACUUM (ANALYZE) `+pgx.Identifier{"verifications_" + strings.ReplaceAll(id, "-", "")}.Sanitize())
		return err
	})
	return failed, err
}

func (e *env) databaseMB(ctx context.Context) (float64, error) {
	var b int64
	err := e.query(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&b)
	})
	return mb(b), err
}

func (e *env) query(ctx context.Context, fn func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	return fn(conn)
}

func randomUUID() string {
	h := randomHex(16)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:]
}

// print writes case 6 against the targets.
func (f *scaleFigures) print(w io.Writer) {
	fmt.Fprintf(w, "\n6. scale: a %d-object run\tfigure\ttarget\t\n", f.Objects)
	row := func(name, figure, target string) { fmt.Fprintf(w, "%s\t%s\t%s\t\n", name, figure, target) }
	row("ledger ingest", fmt.Sprintf("%.0f keys/s, %.2f× bare CopyFrom (%.0f/s); peak RSS %.0f MB", f.IngestKeysPerSec, f.IngestRatio,
		f.BareCopyKeysPerSec, f.IngestPeakRSSMB), "≥ 100k keys/s, ≥ 0.5×")
	row("Redis added", fmt.Sprintf("used_memory %+.2f MB after ingest, peak %+.2f MB while worked; keys peak %.2f MB (window %d)",
		mb(f.RedisAfterIngestBytes), mb(f.RedisPeakAddedBytes), mb(f.RedisKeysPeakBytes), f.Window), "≤ 64 MB")
	names := make([]string, 0, len(f.Queries))
	for n := range f.Queries {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		row(n, fmt.Sprintf("%.1f ms", f.Queries[n]), "≤ 100 ms (median of 10)")
	}
	row("worked", fmt.Sprintf("%d objects in %.0f s = %.0f/s", f.Processed, f.ProcessSeconds, f.ImagesPerSec), "≥ 100k objects")
	row("urgent run behind it", fmt.Sprintf("first result %.2f s after its enqueue", f.UrgentFirstResult), "≤ 2 s")
	row("cancel", fmt.Sprintf("returned in %.2f s; %d API calls after; rows converted in %.0f s", f.CancelSeconds, f.CallsAfterCancel,
		f.CancelDrainSecs), "≤ 2 s; 0 calls")
	row("completion report", fmt.Sprintf("%.0f rows/s, peak RSS %.0f MB", f.ReportRowsPerSec, f.ReportPeakRSSMB), "≥ 100k rows/s, ≤ 100 MB")
	row("runs retry", fmt.Sprintf("%d failed rows in %.1f s", f.RetryRows, f.RetrySeconds), "≤ 30 s")
	row("runs delete", fmt.Sprintf("%.2f s (database %.0f → %.0f MB)", f.DeleteSeconds, f.DatabaseMBBefore, f.DatabaseMBDeleted), "≤ 10 s")
}

// priorityQueues is the --queues of a worker serving queue at every
// priority, weighted as reverify's default queues are.
func priorityQueues(queue string) string {
	var specs []string
	for _, p := range []reverify.Priority{reverify.PriorityHigh, reverify.PriorityNormal, reverify.PriorityLow} {
		specs = append(specs, fmt.Sprintf("%s:%d", p.Queue(queue), p.Weight()))
	}
	return strings.Join(specs, ",")
}

// redisDBBytes sums MEMORY USAGE over every key of the harness's database:
// what the run put in Redis, whatever other clients of the server do.
func (e *env) redisDBBytes(ctx context.Context) (int64, error) {
	var total int64
	iter := e.redis.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		n, err := e.redis.MemoryUsage(ctx, iter.Val()).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("redis memory usage: %w", err)
		}
		total += n
	}
	if err := iter.Err(); err != nil {
		return 0, fmt.Errorf("redis scan: %w", err)
	}
	return total, nil
}
