package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"reverify/liveness"
	"reverify/tasks"
	"reverify/worker"
)

type workerOptions struct {
	concurrency     int
	queues          []string
	shutdownTimeout time.Duration
	maxObjectBytes  int64
	authCooldown    time.Duration
}

func (a *app) workerCommand() *cobra.Command {
	var o workerOptions
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Process verify tasks: fetch each image, call the liveness API, record the result",
		Long: `worker runs an asynq server. Run as many as the API quota allows; SIGTERM
finishes in-flight images (up to --shutdown-timeout) and exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.worker(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	a.envErrs.intSetting(f, &o.concurrency, "concurrency", "REVERIFY_WORKER_CONCURRENCY", 100,
		"images processed at once by this process (I/O bound: many more than CPUs)")
	f.StringSliceVar(&o.queues, "queues", []string{tasks.DefaultQueue}, "queues to serve, as name or name:weight")
	a.envErrs.durationSetting(f, &o.shutdownTimeout, "shutdown-timeout", "REVERIFY_SHUTDOWN_TIMEOUT", 30*time.Second,
		"how long SIGTERM waits for in-flight images")
	f.Int64Var(&o.maxObjectBytes, "max-object-bytes", 15<<20, "objects larger than this are recorded as invalid_image, unread")
	f.DurationVar(&o.authCooldown, "auth-cooldown", time.Minute, "pause after the API refuses the key (401/403)")
	return cmd
}

func parseQueues(specs []string) (map[string]int, error) {
	queues := make(map[string]int, len(specs))
	for _, s := range specs {
		name, weight, found := strings.Cut(s, ":")
		w := 1
		if found {
			n, err := strconv.Atoi(weight)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("invalid --queues entry %q: want name or name:weight with weight >= 1", s)
			}
			w = n
		}
		if name == "" {
			return nil, fmt.Errorf("invalid --queues entry %q: empty queue name", s)
		}
		queues[name] = w
	}
	return queues, nil
}

func (a *app) worker(ctx context.Context, o workerOptions) error {
	if o.concurrency < 1 {
		return fmt.Errorf("invalid REVERIFY_WORKER_CONCURRENCY (--concurrency) %d: want at least 1", o.concurrency)
	}
	queues, err := parseQueues(o.queues)
	if err != nil {
		return err
	}
	log, err := a.logger()
	if err != nil {
		return err
	}
	apiURL, err := a.cfg.apiURL()
	if err != nil {
		return err
	}
	key, err := a.cfg.apiKey()
	if err != nil {
		return err
	}
	redis, err := a.cfg.redis()
	if err != nil {
		return err
	}
	objs, err := a.openObjects(ctx)
	if err != nil {
		return err
	}
	store, err := a.openStore(ctx, int32(max(8, o.concurrency/4)))
	if err != nil {
		return err
	}
	defer store.Close()
	api, err := liveness.New(apiURL, key, liveness.NewHTTPClient(o.concurrency, a.cfg.APITimeout))
	if err != nil {
		return fmt.Errorf("REVERIFY_API_URL (--api-url): %w", err)
	}
	h := worker.NewHandler(objs, api, store, worker.HandlerConfig{
		MaxObjectBytes: o.maxObjectBytes,
		AuthCooldown:   o.authCooldown,
		Logger:         log,
	})
	srv := worker.NewServer(redis, h, store, worker.Config{
		Concurrency:     o.concurrency,
		Queues:          queues,
		ShutdownTimeout: o.shutdownTimeout,
		Logger:          log,
	})
	return srv.Run(ctx)
}
