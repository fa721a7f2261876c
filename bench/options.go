package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// options are the harness's flags.
type options struct {
	chartFrom      string // draw the chart of this JSON and stop
	cases          []string
	repeat         int
	outDir         string
	adminURL       string
	redisAddr      string
	redisDB        int
	enqueueKeys    []int
	listKeys       []int
	small, large   int // images for case 2 at 100 KB and 1 MB
	concurrency    int // worker concurrency of case 2
	latency        time.Duration
	levels         []int
	levelSeconds   float64
	latencyImageKB int
	memConcurrency int
	memImageKB     int
	memImages      int
	ledgerRows     int
	profile        bool
	s3KeepAlive    bool
	workerEnv      []string
	queueBaselines bool
	scaleObjects   int // case 6
	scaleProcess   int
	scaleWindow    int
	preEnqueued    bool            // cases 2 and 3: the feeder's baseline, every task in asynq first
	tls            bool            // cases 2 and 3: again with S3 and the API over HTTPS
	apiLimit       apiLimitOptions // case api-limit (apilimit.go)
	dedupe         dedupeOptions   // case dedupe (dedupe.go)
	fairness       fairnessOptions // case fairness (fairness.go)
	schedule       scheduleOptions // case schedule (schedule.go)
}

func (o options) has(c string) bool { return slices.Contains(o.cases, c) }

func parseOptions(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	cases := fs.String("cases", "enqueue,pipeline,latency,memory,ledger,api-limit,dedupe,fairness,schedule,scale", "cases to run")
	fs.IntVar(&o.repeat, "repeat", 1, "runs per measurement; the median is reported")
	fs.StringVar(&o.outDir, "out", "bench/results", "directory for the JSON figures")
	fs.StringVar(&o.chartFrom, "chart", "", "only draw the case 3 chart of an earlier run's JSON (written beside it)")
	fs.StringVar(&o.adminURL, "admin-url", envOr("REVERIFY_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
		"PostgreSQL admin URL (a database is created and dropped)")
	fs.StringVar(&o.redisAddr, "redis-addr", envOr("REVERIFY_TEST_REDIS_ADDR", "127.0.0.1:6379"), "Redis host:port")
	fs.IntVar(&o.redisDB, "redis-db", 15, "Redis database the harness flushes and uses")
	enq := fs.String("enqueue-keys", "100000,1000000", "manifest key counts for case 1")
	list := fs.String("list-keys", "100000", "S3 listing object counts for case 1 (objects are created first)")
	fs.IntVar(&o.small, "images-100k", 3000, "100 KB images for case 2")
	fs.IntVar(&o.large, "images-1m", 600, "1 MB images for case 2")
	fs.IntVar(&o.concurrency, "concurrency", 100, "worker concurrency for case 2")
	fs.DurationVar(&o.latency, "latency", 200*time.Millisecond, "fake API latency for cases 3 and 4")
	lv := fs.String("levels", "50,200,500", "worker concurrency levels for case 3")
	fs.Float64Var(&o.levelSeconds, "level-seconds", 8, "seconds of work (at C÷L) per case 3 level")
	fs.BoolVar(&o.queueBaselines, "queue-baselines", true, "case 3: also run each level with a wait-only handler (1 asynq server, then reverify's lanes)")
	fs.BoolVar(&o.preEnqueued, "pre-enqueued", true, "cases 2 and 3: also run each worker spec with every task in asynq before it starts (the feeder's baseline)")
	fs.BoolVar(&o.tls, "tls", true, "cases 2 and 3: also run each worker spec with versitygw and the fake API over HTTPS")
	fs.IntVar(&o.latencyImageKB, "latency-image-kb", 100, "image size for case 3")
	fs.IntVar(&o.memConcurrency, "mem-concurrency", 200, "worker concurrency for case 4")
	fs.IntVar(&o.memImageKB, "mem-image-kb", 200, "image size for case 4")
	fs.IntVar(&o.memImages, "mem-images", 5000, "images for case 4")
	fs.IntVar(&o.ledgerRows, "ledger-rows", 20000, "rows for case 5")
	fs.BoolVar(&o.profile, "profile", true, "profile the worker in case 2 (an extra run)")
	fs.BoolVar(&o.s3KeepAlive, "s3-keep-alive", true, "run versitygw with --keep-alive, as AWS S3 keeps connections open")
	fs.IntVar(&o.scaleObjects, "scale-objects", 10_000_000, "objects of case 6's run")
	fs.IntVar(&o.scaleProcess, "scale-process", 100_000, "objects of case 6's run worked through the fake API before it is cancelled")
	fs.IntVar(&o.scaleWindow, "scale-window", 0, "case 6: the worker's --dispatch-window (0 = its default)")
	o.apiLimit.register(fs)
	o.dedupe.register(fs)
	o.fairness.register(fs)
	o.schedule.register(fs)
	wenv := fs.String("worker-env", "", "extra environment of the worker, e.g. GOGC=50 (comma-separated)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.cases = strings.Split(*cases, ",")
	if *wenv != "" {
		o.workerEnv = strings.Split(*wenv, ",")
	}
	var err error
	if o.enqueueKeys, err = ints(*enq); err != nil {
		return o, fmt.Errorf("-enqueue-keys: %w", err)
	}
	if o.listKeys, err = ints(*list); err != nil {
		return o, fmt.Errorf("-list-keys: %w", err)
	}
	if o.levels, err = ints(*lv); err != nil {
		return o, fmt.Errorf("-levels: %w", err)
	}
	return o, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a count", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
