package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"reverify"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"reverify/campaign"
	"reverify/liveness"
	"reverify/liveness/fakeapi"
	"reverify/report"
	"reverify/storage/objects"
	"reverify/storage/postgres"
	"reverify/worker"
	"reverify/worker/fleet"
)

type demoOptions struct {
	images      int
	concurrency int
	latency     time.Duration
	faults      bool
	timeout     time.Duration
}

func (a *app) demoCommand() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on embedded defaults: in-process S3 and fake API, local PostgreSQL and Redis",
		Long: `demo seeds an in-process S3 with generated face images (some deliberately bad),
starts the fake liveness API and a worker in this process, enqueues a run over
the bucket, processes it with live progress, and prints the run summary. The
results stay in PostgreSQL (REVERIFY_DATABASE_URL) for you to query. It uses
the local Redis, or an in-process one when none answers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.demo(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.images, "images", 300, "how many objects to seed")
	f.IntVar(&o.concurrency, "concurrency", 50, "worker concurrency")
	f.DurationVar(&o.latency, "latency", 40*time.Millisecond, "fake API latency")
	f.BoolVar(&o.faults, "faults", true, "let the fake API answer some calls with 429 and 503")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up after this long")
	return cmd
}

const demoBucket = "reverify-demo"

func (a *app) demo(ctx context.Context, o demoOptions) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	say := func(format string, args ...any) { fmt.Fprintf(a.stderr, "demo: "+format+"\n", args...) }

	dsn, err := a.cfg.database()
	if err != nil {
		return err
	}
	if _, err := postgres.Migrate(ctx, dsn); err != nil {
		return err
	}
	store, err := postgres.Open(ctx, dsn, 16)
	if err != nil {
		return err
	}
	defer store.Close()
	say("PostgreSQL ready (%s)", redactDSN(dsn))

	redisOpt, closeRedis, err := a.demoRedis(say)
	if err != nil {
		return err
	}
	defer closeRedis()

	mem, err := objects.NewMemoryServer()
	if err != nil {
		return fmt.Errorf("start in-process S3: %w", err)
	}
	defer mem.Close()
	s3client, err := objects.NewClient(ctx, mem.Config())
	if err != nil {
		return err
	}
	counts, err := seedDemo(ctx, s3client, o.images)
	if err != nil {
		return err
	}
	say("in-process S3 seeded: %d images in s3://%s/selfies/ (%s)", o.images, demoBucket, counts)

	const apiKey = "demo-key"
	fake := fakeapi.New(fakeapi.Options{APIKey: apiKey, Latency: o.latency, Seed: 7})
	if o.faults {
		fake.SetOptions(fakeapi.Options{APIKey: apiKey, Latency: o.latency, Seed: 7,
			RateLimitRate: 0.03, RetryAfter: time.Second, ErrorRate: 0.03})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	apiSrv := &http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second}
	go apiSrv.Serve(ln)
	defer apiSrv.Close()
	say("fake liveness API on http://%s (429 and 503 on ~3%% of calls each: %v)", ln.Addr(), o.faults)

	queue := asynq.NewClient(redisOpt)
	defer queue.Close()
	objs, err := objects.Open(ctx, mem.Config())
	if err != nil {
		return err
	}
	campaigns := campaign.New(campaign.Deps{Ledger: store, Queue: queue, Objects: objs})
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	sp := campaign.Spec{
		Name:   "demo " + time.Now().Format(time.DateTime),
		Queue:  "reverify-demo-" + hex.EncodeToString(suffix), // the demo's own queue, whatever else shares this Redis
		Source: reverify.Source{Kind: reverify.SourcePrefix, Bucket: demoBucket, Prefix: "selfies/"},
	}
	run, err := campaigns.Create(ctx, sp)
	if err != nil {
		return err
	}
	src, err := campaigns.Source(ctx, run.Source, campaign.Input{})
	if err != nil {
		return err
	}
	filled, err := campaigns.Fill(ctx, run, src, campaign.FillOptions{})
	if err != nil {
		return err
	}
	run = filled.Run
	say("run %s: %d objects recorded; the feeder dispatches them %d at a time", run.ID, filled.Recorded, 4*o.concurrency)

	api, err := liveness.New("http://"+ln.Addr().String(), apiKey, liveness.NewHTTPClient(o.concurrency, 10*time.Second))
	if err != nil {
		return err
	}
	rdb, err := redisClient(redisOpt)
	if err != nil {
		return err
	}
	defer rdb.Close()
	feeder, closeFeeder, err := newFeeder(ctx, store, redisOpt, rdb, campaign.FeederConfig{Window: 4 * o.concurrency, Every: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	defer closeFeeder()
	// The demo's fleet state is its own, whatever else shares this Redis.
	w, err := worker.New(worker.Deps{Objects: objs, API: api, Ledger: store, Redis: redisOpt, Runs: campaigns, Feeder: feeder}, worker.Config{
		Concurrency:     o.concurrency,
		Queues:          map[string]int{run.Queue: 1},
		CloseRunsEvery:  300 * time.Millisecond,
		RetryCheckEvery: time.Second,
		Backoff:         worker.Backoff{Base: 500 * time.Millisecond, Cap: 3 * time.Second, Min: 200 * time.Millisecond},
		Logger:          log,
		CallTimeout:     10 * time.Second,
		Fleet:           fleet.Config{Prefix: "{" + run.Queue + "}:", MaxInFlight: o.concurrency},
		StashPrefix:     run.Queue + ":outcome:",
		StashTTL:        time.Hour,
	})
	if err != nil {
		return err
	}
	wctx, stopWorker := context.WithCancel(ctx)
	g, _ := errgroup.WithContext(wctx)
	g.Go(func() error { return w.Run(wctx) })

	bar := newProgress(a.stderr, "verified", run.Total)
	var p postgres.Progress
	for {
		p, err = store.Progress(ctx, run.ID)
		if err != nil {
			break
		}
		bar.set(p.Done, p.Run.Total, fmt.Sprintf("scored %d, rejected %d, invalid %d",
			p.ByStatus[reverify.StatusScored], p.ByStatus[reverify.StatusRejected], p.ByStatus[reverify.StatusInvalidImage]))
		if !p.Run.Status.Sending() {
			break
		}
		select {
		case <-ctx.Done():
			err = fmt.Errorf("demo did not finish within --timeout %s: %w", o.timeout, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
		if err != nil {
			break
		}
	}
	bar.finish()
	stopWorker()
	if werr := g.Wait(); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	report.WriteProgress(a.stdout, p, time.Now())
	fs := fake.Stats()
	fmt.Fprintf(a.stdout, "\nThe fake API answered %d calls (%d scored); the results stay in PostgreSQL:\n\n", fs.Calls, fs.Scored)
	fmt.Fprintf(a.stdout, "  psql %q -c \"SELECT status, count(*), round(avg(liveness_score),1) AS avg_score FROM verifications WHERE run_id = '%s' GROUP BY status\"\n", redactDSN(dsn), run.ID)
	fmt.Fprintf(a.stdout, "  reverify runs show %s\n", run.ID)
	return nil
}

// demoRedis uses the configured Redis when it answers, else an in-process one.
func (a *app) demoRedis(say func(string, ...any)) (asynq.RedisConnOpt, func(), error) {
	opt, err := a.cfg.redis()
	if err != nil {
		return nil, nil, err
	}
	probe := asynq.NewClient(opt)
	perr := probe.Ping()
	probe.Close()
	if perr == nil {
		say("Redis ready (%s)", a.cfg.RedisURL)
		return opt, func() {}, nil
	}
	mr, err := miniredis.Run()
	if err != nil {
		return nil, nil, fmt.Errorf("no Redis at %s (%v) and no in-process one: %w", a.cfg.RedisURL, perr, err)
	}
	say("no Redis at %s; using an in-process one", a.cfg.RedisURL)
	return asynq.RedisClientOpt{Addr: mr.Addr()}, mr.Close, nil
}

// seedDemo puts generated images in the demo bucket: most are good faces,
// some are empty, not images, or too small for the API to analyse.
func seedDemo(ctx context.Context, c *s3.Client, n int) (string, error) {
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(demoBucket)}); err != nil {
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
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(demoBucket), Key: aws.String(key), Body: bytes.NewReader(body)})
		if err != nil {
			return "", fmt.Errorf("seed %s: %w", key, err)
		}
	}
	return fmt.Sprintf("%d empty, %d not images, %d too small to analyse", empty, text, tiny), nil
}

// redactDSN drops a password from a connection URL before printing it.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "(database)"
	}
	return u.Redacted()
}
