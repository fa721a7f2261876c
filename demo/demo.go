// Package demo runs the whole pipeline on embedded defaults, for a
// newcomer's first look: an in-process S3 seeded with generated face images
// (some deliberately bad), the fake liveness API, a worker with its feeder,
// and a run over the bucket, recorded in PostgreSQL like any other. In its
// serve mode it keeps all of that running and serves the dashboard, so the
// results can be looked at, images included.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"reverify"
	"reverify/campaign"
	"reverify/dashboard"
	"reverify/liveness"
	"reverify/liveness/fakeapi"
	"reverify/ops"
	"reverify/storage/objects"
	"reverify/storage/postgres"
	"reverify/worker"
	"reverify/worker/fleet"
)

// Bucket is the in-process bucket the demo seeds.
const Bucket = "reverify-demo"

// Config says how the demo runs.
type Config struct {
	DatabaseURL string             // migrated (and created) if needed
	Redis       asynq.RedisConnOpt // used when it answers; an in-process Redis otherwise
	Images      int                // objects to seed; default 300
	Concurrency int                // worker concurrency; default 50
	Latency     time.Duration      // fake API latency
	Faults      bool               // the fake API answers some calls with 429 and 503
	// Say is told what the demo does, a line at a time; Progress how the run
	// goes, every quarter second. Either may be nil.
	Say      func(format string, args ...any)
	Progress func(postgres.Progress)
	Logger   *slog.Logger // the worker's; default: errors only, discarded
	// Timeout bounds how long the run may take (0: until ctx ends).
	Timeout time.Duration
	// Serve, when set, keeps the demo running once its run has ended and
	// serves the dashboard until ctx ends.
	Serve *Serve
}

// Serve is how the demo serves the dashboard.
type Serve struct {
	// Addr is the dashboard's listen address; it must be a loopback one
	// (the demo's dashboard has no credentials). ":0" ports pick one.
	Addr string
	// Ready is told the dashboard's URL once it listens; Ended how the run
	// ended. Either may be nil.
	Ready func(url string)
	Ended func(Result)
}

// Result is how the demo's run ended.
type Result struct {
	Progress postgres.Progress
	Calls    int64 // answered by the fake API
	Scored   int64
}

// Run seeds, serves and processes one run until it ends or ctx does; with
// cfg.Serve, it then serves the dashboard until ctx ends, which is how it
// is meant to stop (it returns nil then).
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Images <= 0 {
		cfg.Images = 300
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 50
	}
	if cfg.Say == nil {
		cfg.Say = func(string, ...any) {}
	}
	if cfg.Progress == nil {
		cfg.Progress = func(postgres.Progress) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	say := cfg.Say
	if cfg.Serve != nil {
		if err := dashboard.CheckExposure(cfg.Serve.Addr, dashboard.Auth{}); err != nil {
			return Result{}, err
		}
	}

	if _, err := postgres.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return Result{}, err
	}
	store, err := postgres.Open(ctx, cfg.DatabaseURL, 16)
	if err != nil {
		return Result{}, err
	}
	defer store.Close()
	say("PostgreSQL ready")

	redisOpt, closeRedis, err := reachableRedis(cfg.Redis, say)
	if err != nil {
		return Result{}, err
	}
	defer closeRedis()

	mem, err := objects.NewMemoryServer()
	if err != nil {
		return Result{}, fmt.Errorf("start in-process S3: %w", err)
	}
	defer mem.Close()
	s3client, err := objects.NewClient(ctx, mem.Config())
	if err != nil {
		return Result{}, err
	}
	counts, err := seed(ctx, s3client, cfg.Images)
	if err != nil {
		return Result{}, err
	}
	say("in-process S3 seeded: %d images in s3://%s/selfies/ (%s)", cfg.Images, Bucket, counts)

	const apiKey = "demo-key"
	opts := fakeapi.Options{APIKey: apiKey, Latency: cfg.Latency, Seed: 7}
	if cfg.Faults {
		opts.RateLimitRate, opts.RetryAfter, opts.ErrorRate = 0.03, time.Second, 0.03
	}
	fake := fakeapi.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, err
	}
	apiSrv := &http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second}
	go apiSrv.Serve(ln)
	defer apiSrv.Close()
	say("fake liveness API on http://%s (429 and 503 on ~3%% of calls each: %v)", ln.Addr(), cfg.Faults)

	objs, err := objects.Open(ctx, mem.Config())
	if err != nil {
		return Result{}, err
	}
	run, err := startRun(ctx, store, objs)
	if err != nil {
		return Result{}, err
	}
	say("run %s: %d objects recorded; the feeder dispatches them %d at a time", run.ID, run.Total, 4*cfg.Concurrency)

	stopWorker, err := startWorker(ctx, cfg, store, objs, redisOpt, "http://"+ln.Addr().String(), apiKey, run)
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = stopWorker() }()
	if cfg.Serve != nil {
		stopDashboard, err := serveDashboard(ctx, cfg.Serve, store, s3client, redisOpt, cfg.Logger)
		if err != nil {
			return Result{}, err
		}
		defer stopDashboard()
	}

	p, err := waitForRun(ctx, cfg, store, run)
	fs := fake.Stats()
	res := Result{Progress: p, Calls: int64(fs.Calls), Scored: int64(fs.Scored)}
	if cfg.Serve == nil {
		if werr := stopWorker(); err == nil {
			err = werr
		}
		stopWorker = func() error { return nil }
		return res, err
	}
	// Serving, the worker stays up (the run can be retried meanwhile)
	// until interrupted, which is how a serving demo ends.
	if ctx.Err() != nil {
		return res, nil
	}
	if err != nil {
		return res, err
	}
	if cfg.Serve.Ended != nil {
		cfg.Serve.Ended(res)
	}
	<-ctx.Done()
	return res, nil
}

// serveDashboard serves the dashboard over the demo's ledger, S3 and Redis
// until the returned function is called.
func serveDashboard(ctx context.Context, sv *Serve, store *postgres.Store, s3client *s3.Client, redisOpt asynq.RedisConnOpt,
	log *slog.Logger) (func(), error) {
	monitor := dashboard.NewMonitor(redisOpt, dashboard.MonitorOptions{})
	// The demo's objects are generated, not anyone's data: keys are shown.
	srv, err := dashboard.New(store, dashboard.NewS3Images(s3client), monitor, nil, dashboard.Config{Logger: log})
	if err != nil {
		monitor.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", sv.Addr)
	if err != nil {
		monitor.Close()
		return nil, fmt.Errorf("dashboard address: %w", err)
	}
	hs := ops.Serve(ln, srv, log)
	if sv.Ready != nil {
		sv.Ready("http://" + ln.Addr().String() + "/")
	}
	return func() {
		_ = hs.Close(ctx)
		monitor.Close()
	}, nil
}

// startRun records a run over the seeded bucket and starts it.
func startRun(ctx context.Context, store *postgres.Store, objs *objects.Store) (reverify.Run, error) {
	campaigns := campaign.New(campaign.Deps{Ledger: store, Objects: objs})
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	run, err := campaigns.Create(ctx, campaign.Spec{
		Name:   "demo " + reverify.FormatTime(time.Now()),
		Queue:  "reverify-demo-" + hex.EncodeToString(suffix), // the demo's own queue, whatever else shares this Redis
		Source: reverify.Source{Kind: reverify.SourcePrefix, Bucket: Bucket, Prefix: "selfies/"},
	})
	if err != nil {
		return reverify.Run{}, err
	}
	src, err := campaigns.Source(ctx, run.Source, campaign.Input{})
	if err != nil {
		return reverify.Run{}, err
	}
	filled, err := campaigns.Fill(ctx, run, src, campaign.FillOptions{})
	return filled.Run, err
}

// startWorker runs a worker (and its feeder) over the demo's run until
// the returned function stops it.
func startWorker(ctx context.Context, cfg Config, store *postgres.Store, objs *objects.Store, redisOpt asynq.RedisConnOpt,
	apiURL, apiKey string, run reverify.Run) (func() error, error) {
	api, err := liveness.New(apiURL, apiKey, liveness.NewHTTPClient(cfg.Concurrency, 10*time.Second))
	if err != nil {
		return nil, err
	}
	rdb, ok := redisOpt.MakeRedisClient().(goredis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("unsupported Redis connection")
	}
	feeder, closeFeeder, err := campaign.NewFleetFeeder(ctx, store, redisOpt, rdb, "demo",
		campaign.FeederConfig{Window: 4 * cfg.Concurrency, Every: 100 * time.Millisecond})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	// The demo's fleet state is its own, whatever else shares this Redis.
	w, err := worker.New(worker.Deps{Objects: objs, API: api, Ledger: store, Redis: redisOpt, Feeder: feeder,
		Runs: campaign.New(campaign.Deps{Ledger: store})}, worker.Config{
		Concurrency:     cfg.Concurrency,
		Queues:          map[string]int{run.Queue: 1},
		CloseRunsEvery:  300 * time.Millisecond,
		RetryCheckEvery: time.Second,
		Backoff:         worker.Backoff{Base: 500 * time.Millisecond, Cap: 3 * time.Second, Min: 200 * time.Millisecond},
		Logger:          cfg.Logger,
		CallTimeout:     10 * time.Second,
		Fleet:           fleet.Config{Prefix: "{" + run.Queue + "}:", MaxInFlight: cfg.Concurrency},
		StashPrefix:     run.Queue + ":outcome:",
		StashTTL:        time.Hour,
	})
	if err != nil {
		closeFeeder()
		rdb.Close()
		return nil, err
	}
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	g, _ := errgroup.WithContext(wctx)
	g.Go(func() error { return w.Run(wctx) })
	return func() error {
		stop()
		err := g.Wait()
		closeFeeder()
		rdb.Close()
		return err
	}, nil
}

// waitForRun tells the run's progress until it ends.
func waitForRun(ctx context.Context, cfg Config, store *postgres.Store, run reverify.Run) (postgres.Progress, error) {
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	for {
		p, err := store.Progress(ctx, run.ID)
		if err != nil {
			if ctx.Err() != nil {
				return p, fmt.Errorf("demo did not finish in time: %w", ctx.Err())
			}
			return p, err
		}
		cfg.Progress(p)
		if !p.Run.Status.Sending() {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return p, fmt.Errorf("demo did not finish in time: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// reachableRedis is opt when it answers, else an in-process Redis.
func reachableRedis(opt asynq.RedisConnOpt, say func(string, ...any)) (asynq.RedisConnOpt, func(), error) {
	perr := fmt.Errorf("no Redis configured")
	if opt != nil {
		probe := asynq.NewClient(opt)
		perr = probe.Ping()
		probe.Close()
		if perr == nil {
			say("Redis ready")
			return opt, func() {}, nil
		}
	}
	mr, err := miniredis.Run()
	if err != nil {
		return nil, nil, fmt.Errorf("no Redis (%v) and no in-process one: %w", perr, err)
	}
	say("no Redis answers; using an in-process one")
	return asynq.RedisClientOpt{Addr: mr.Addr()}, mr.Close, nil
}

// seed puts generated images in the demo bucket.
func seed(ctx context.Context, c *s3.Client, n int) (string, error) { return Seed(ctx, c, Bucket, n) }

// Seed puts n generated images under selfies/ in bucket, creating it if
// needed (the docker compose stack seeds its S3 with it): most are good
// faces, some are empty, not images, or too small for the API to analyse.
// It returns a line saying how many of each bad kind.
func Seed(ctx context.Context, c *s3.Client, bucket string, n int) (string, error) {
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return "", fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	var empty, text, tiny int
	for i := range n {
		key := fmt.Sprintf("selfies/customer-%04d.jpg", i)
		var body []byte
		switch {
		case i%60 == 7:
			empty++
		case i%60 == 19:
			key = fmt.Sprintf("selfies/customer-%04d.txt", i)
			body = []byte("scan pending: this upload is a note, not a photo\n")
			text++
		case i%60 == 31:
			body = fakeapi.GenerateJPEG(int64(i), 32, 32)
			tiny++
		case i%2 == 0:
			key = fmt.Sprintf("selfies/customer-%04d.png", i)
			body = fakeapi.GeneratePNG(int64(i), 96+i%160, 128+i%96)
		default:
			body = fakeapi.GenerateJPEG(int64(i), 96+i%160, 128+i%96)
		}
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
		if err != nil {
			return "", fmt.Errorf("seed %s: %w", key, err)
		}
	}
	return fmt.Sprintf("%d empty, %d not images, %d too small to analyse", empty, text, tiny), nil
}
