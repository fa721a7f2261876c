package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"reverify/storage/objects"
	"reverify/tasks"
	"reverify/worker"
)

// Helper modes: the harness runs itself as a separate process for the
// baselines, so they are measured exactly like the reverify processes.
const (
	helperEnqueueLoop = "helper-enqueue-loop"
	helperNoopWorker  = "helper-noop-worker"
	helperSleepWorker = "helper-sleep-worker"
	helperList        = "helper-list"
)

func runHelper(ctx context.Context, mode string, args []string) error {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	queue := fs.String("queue", "", "asynq queue")
	n := fs.Int("n", 0, "tasks to enqueue")
	concurrency := fs.Int("concurrency", 64, "goroutines / asynq concurrency")
	redisAddr := fs.String("redis-addr", "127.0.0.1:6379", "redis")
	redisDB := fs.Int("redis-db", 15, "redis database")
	pipelined := fs.Bool("pipelined", false, "enqueue through tasks.NewPipelinedClient")
	sleep := fs.Duration("sleep", 0, "sleep-worker: how long each task takes")
	lanes := fs.Int("lanes", 0, "sleep-worker: worker.Config.Lanes")
	bucket := fs.String("bucket", "bench", "list: bucket")
	prefix := fs.String("prefix", "", "list: prefix")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opt := asynq.RedisClientOpt{Addr: *redisAddr, DB: *redisDB}
	switch mode {
	case helperEnqueueLoop:
		return enqueueLoop(ctx, opt, *queue, *n, *concurrency, *pipelined)
	case helperNoopWorker:
		return noopWorker(ctx, opt, *queue, *concurrency)
	case helperSleepWorker:
		return sleepWorker(ctx, opt, *queue, *concurrency, *lanes, *sleep)
	case helperList:
		return listOnly(ctx, *bucket, *prefix, *n)
	}
	return fmt.Errorf("unknown helper %q", mode)
}

// enqueueLoop is the enqueue baseline: the same verify tasks as the
// producer, straight into asynq with the producer's concurrency, and no
// ledger; pipelined uses the producer's auto-pipelined client.
func enqueueLoop(ctx context.Context, opt asynq.RedisClientOpt, queue string, n, concurrency int, pipelined bool) error {
	var client *asynq.Client
	var closeClient func() error
	if pipelined {
		var err error
		if client, closeClient, err = tasks.NewPipelinedClient(opt); err != nil {
			return err
		}
	} else {
		client = asynq.NewClient(opt)
		closeClient = client.Close
	}
	defer closeClient()
	runID := "00000000-0000-4000-8000-" + randomHex(6)
	keys := make(chan string, 1024)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(keys)
		for k := range syntheticKeys("m/", n) {
			select {
			case keys <- k:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	for range concurrency {
		g.Go(func() error {
			for k := range keys {
				t, err := tasks.NewVerifyTask(tasks.VerifyPayload{RunID: runID, Bucket: "bench", Key: k}, queue)
				if err != nil {
					return err
				}
				if _, err := client.EnqueueContext(ctx, t); err != nil {
					return fmt.Errorf("enqueue: %w", err)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// noopWorker is the pipeline baseline: an asynq server on the same Redis
// whose handler does nothing.
func noopWorker(ctx context.Context, opt asynq.RedisClientOpt, queue string, concurrency int) error {
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency: concurrency,
		Queues:      map[string]int{queue: 1},
		LogLevel:    asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeVerify, func(context.Context, *asynq.Task) error { return nil })
	return serveUntilSignal(ctx, srv, mux)
}

// sleepWorker is reverify's asynq server (worker.Server, with its lanes)
// around a handler that only waits, as if each task were one API call of
// the given latency: what the queueing layer alone allows.
func sleepWorker(ctx context.Context, opt asynq.RedisClientOpt, queue string, concurrency, lanes int, d time.Duration) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv := worker.NewServer(opt, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		return waitShort(ctx, d)
	}), noRuns{}, worker.Config{Concurrency: concurrency, Lanes: lanes, Queues: map[string]int{queue: 1}})
	return srv.Run(ctx)
}

// listOnly is the listing baseline: reverify's own S3 listing (the
// environment's REVERIFY_S3_* settings), counting objects, with no ledger and
// no queue: what the S3 server's listing alone allows.
func listOnly(ctx context.Context, bucket, prefix string, want int) error {
	client, err := objects.NewClient(ctx, objects.Config{Endpoint: os.Getenv("REVERIFY_S3_ENDPOINT"),
		Region: os.Getenv("REVERIFY_S3_REGION"), PathStyle: true,
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY")})
	if err != nil {
		return err
	}
	n := 0
	if err := objects.New(client).List(ctx, bucket, prefix, func(objects.Object) error { n++; return nil }); err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("listed %d objects, want %d", n, want)
	}
	return nil
}

// noRuns closes no runs: the sleep worker has no ledger.
type noRuns struct{}

func (noRuns) CompleteFinishedRuns(context.Context) ([]string, error)  { return nil, nil }
func (noRuns) FailRunsOverThreshold(context.Context) ([]string, error) { return nil, nil }

func serveUntilSignal(ctx context.Context, srv *asynq.Server, h asynq.Handler) error {
	if err := srv.Start(h); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	srv.Shutdown()
	return nil
}

// waitShort is a short pause used while polling.
func waitShort(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
