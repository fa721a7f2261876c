// Package demo runs the whole pipeline on embedded defaults, for a
// newcomer's first look: an in-process S3 seeded with generated face images
// (some deliberately bad), the fake liveness API, a worker with its feeder,
// and a run over the bucket, recorded in PostgreSQL like any other.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"reverify"
	"reverify/campaign"
	"reverify/liveness"
	"reverify/liveness/fakeapi"
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
}

// Result is how the demo's run ended.
type Result struct {
	Progress postgres.Progress
	Calls    int64 // answered by the fake API
	Scored   int64
}

// Run seeds, serves and processes one run until it ends or ctx does.
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

	p, err := process(ctx, cfg, store, objs, redisOpt, "http://"+ln.Addr().String(), apiKey, run)
	fs := fake.Stats()
	return Result{Progress: p, Calls: int64(fs.Calls), Scored: int64(fs.Scored)}, err
}

// startRun records a run over the seeded bucket and starts it.
func startRun(ctx context.Context, store *postgres.Store, objs *objects.Store) (reverify.Run, error) {
	campaigns := campaign.New(campaign.Deps{Ledger: store, Objects: objs})
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	run, err := campaigns.Create(ctx, campaign.Spec{
		Name:   "demo " + time.Now().Format(time.DateTime),
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

// process runs a worker (and its feeder) until the run ends.
func process(ctx context.Context, cfg Config, store *postgres.Store, objs *objects.Store, redisOpt asynq.RedisConnOpt,
	apiURL, apiKey string, run reverify.Run) (postgres.Progress, error) {
	api, err := liveness.New(apiURL, apiKey, liveness.NewHTTPClient(cfg.Concurrency, 10*time.Second))
	if err != nil {
		return postgres.Progress{}, err
	}
	rdb, ok := redisOpt.MakeRedisClient().(goredis.UniversalClient)
	if !ok {
		return postgres.Progress{}, fmt.Errorf("unsupported Redis connection")
	}
	defer rdb.Close()
	feeder, closeFeeder, err := campaign.NewFleetFeeder(ctx, store, redisOpt, rdb, "demo",
		campaign.FeederConfig{Window: 4 * cfg.Concurrency, Every: 100 * time.Millisecond})
	if err != nil {
		return postgres.Progress{}, err
	}
	defer closeFeeder()
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
		return postgres.Progress{}, err
	}
	wctx, stopWorker := context.WithCancel(ctx)
	g, _ := errgroup.WithContext(wctx)
	g.Go(func() error { return w.Run(wctx) })

	var p postgres.Progress
	for {
		if p, err = store.Progress(ctx, run.ID); err != nil {
			break
		}
		cfg.Progress(p)
		if !p.Run.Status.Sending() {
			break
		}
		select {
		case <-ctx.Done():
			err = fmt.Errorf("demo did not finish in time: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
		if err != nil {
			break
		}
	}
	stopWorker()
	if werr := g.Wait(); werr != nil && err == nil {
		err = werr
	}
	return p, err
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

// seed puts generated images in the demo bucket: most are good faces, some
// are empty, not images, or too small for the API to analyse.
func seed(ctx context.Context, c *s3.Client, n int) (string, error) {
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(Bucket)}); err != nil {
		return "", fmt.Errorf("create demo bucket: %w", err)
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
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(Bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
		if err != nil {
			return "", fmt.Errorf("seed %s: %w", key, err)
		}
	}
	return fmt.Sprintf("%d empty, %d not images, %d too small to analyse", empty, text, tiny), nil
}
