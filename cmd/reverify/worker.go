package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reverify"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"reverify/campaign"
	"reverify/liveness"
	"reverify/notify"
	"reverify/ops"
	"reverify/scheduler"
	"reverify/storage/postgres"
	"reverify/tasks"
	"reverify/worker"
	"reverify/worker/fleet"
)

type workerOptions struct {
	concurrency      int
	lanes            int
	dbConns          int
	queues           []string
	shutdownTimeout  time.Duration
	maxObjectBytes   int64
	keepDuplicates   bool
	fleet            fleet.Config
	rateMode         string
	rateSchedule     string
	feeder           campaign.FeederConfig
	metricsAddr      string
	backoff          worker.Backoff
	notify           []string
	notifySecret     string
	notifySecretFile string
}

func (a *app) workerCommand() *cobra.Command {
	var o workerOptions
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Process verify tasks: fetch each image, call the liveness API, record the result",
		Long: `worker runs an asynq server. Run as many as the API quota allows; SIGTERM
finishes in-flight images (up to --shutdown-timeout) and exits 0. Every
worker also runs the feeder and the webhook sender; one of the fleet's does
each job at a time.`,
		Example: `  REVERIFY_API_KEY_FILE=/run/secrets/api-key reverify worker --concurrency 200 --metrics-addr :9090
  reverify worker --api-rate 50 --api-max-in-flight 100 --api-daily-budget 500000
  reverify worker --api-rate-mode adaptive --api-rate 200
  REVERIFY_NOTIFY_SECRET_FILE=/run/secrets/webhook-key reverify worker --notify https://ops.example.com/hooks/reverify`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.worker(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	a.envErrs.intSetting(f, &o.concurrency, "concurrency", "REVERIFY_WORKER_CONCURRENCY", 100,
		"images processed at once by this process (I/O bound: many more than CPUs)")
	a.envErrs.intSetting(f, &o.lanes, "lanes", "REVERIFY_WORKER_LANES", 0,
		"asynq servers sharing --concurrency, each fetching tasks in its own loop (0 = one per 50)")
	a.envErrs.intSetting(f, &o.dbConns, "db-max-conns", "REVERIFY_DB_MAX_CONNS", 0,
		"PostgreSQL connections of this process (0 = concurrency/16, between 4 and 32; the ledger's writes are short)")
	f.StringSliceVar(&o.queues, "queues", defaultQueues(), "queues to serve, as name or name:weight (runs of priority high/low use <queue>-high/-low)")
	a.envErrs.durationSetting(f, &o.shutdownTimeout, "shutdown-timeout", "REVERIFY_SHUTDOWN_TIMEOUT", 30*time.Second,
		"how long SIGTERM waits for in-flight images")
	f.Int64Var(&o.maxObjectBytes, "max-object-bytes", 15<<20, "objects larger than this are recorded as invalid_image, unread")
	a.envErrs.boolSetting(f, &o.keepDuplicates, "keep-duplicates", "REVERIFY_KEEP_DUPLICATES", false,
		"analyse every object, even one whose bytes another object of its run was analysed for (pays for each copy; docs/dedupe.md)")
	a.envErrs.intSetting(f, &o.fleet.RatePerSecond, "api-rate", "REVERIFY_API_RATE", 0,
		"API calls per second for the whole fleet: the fixed rate, or the adaptive rate's ceiling (0 = none; see --api-rate-mode)")
	stringSetting(f, &o.rateMode, "api-rate-mode", "REVERIFY_API_RATE_MODE", "auto",
		"adaptive: the fleet finds the API's limit from its 429s and latency and follows it, up to --api-rate; fixed: exactly --api-rate; auto: adaptive when --api-rate is 0, else fixed (docs/rate.md)")
	stringSetting(f, &o.rateSchedule, "api-rate-schedule", "REVERIFY_API_RATE_SCHEDULE", "",
		`rate that follows the clock, e.g. "TZ=Europe/Berlin Mon-Fri 08:00-20:00=10, 20:00-08:00=100": the fixed rate, or the adaptive rate's ceiling, in each window (0 = no calls then); --api-rate elsewhere (docs/rate.md)`)
	a.envErrs.intSetting(f, &o.fleet.MaxInFlight, "api-max-in-flight", "REVERIFY_API_MAX_IN_FLIGHT", 0,
		"API calls in flight at once for the whole fleet (0 = no limit)")
	a.envErrs.int64Setting(f, &o.fleet.DailyBudget, "api-daily-budget", "REVERIFY_API_DAILY_BUDGET", 0,
		"API calls per UTC day for the whole fleet; when spent, tasks wait for the next day (0 = no limit)")
	a.envErrs.durationSetting(f, &o.fleet.AuthCooldown, "auth-cooldown", "REVERIFY_AUTH_COOLDOWN", time.Minute,
		"how long the fleet stops calling after the API refuses the key (401/403)")
	a.envErrs.durationSetting(f, &o.fleet.OutageCooldown, "outage-cooldown", "REVERIFY_OUTAGE_COOLDOWN", 30*time.Second,
		"how long the fleet stops calling when most calls fail (5xx, timeouts)")
	def := worker.DefaultBackoff()
	a.envErrs.durationSetting(f, &o.backoff.Base, "retry-base", "REVERIFY_RETRY_BASE", def.Base,
		"backoff of the first retry after a failure; doubles each time, with full jitter")
	a.envErrs.durationSetting(f, &o.backoff.Cap, "retry-cap", "REVERIFY_RETRY_CAP", def.Cap, "longest backoff between retries")
	o.backoff.Min = def.Min
	a.envErrs.intSetting(f, &o.feeder.Window, "dispatch-window", "REVERIFY_DISPATCH_WINDOW", 0,
		"tasks of each run kept in Redis at once, topped up from PostgreSQL as they finish (0 = 4 x the larger of --concurrency and --api-max-in-flight)")
	a.envErrs.durationSetting(f, &o.feeder.Horizon, "dispatch-horizon", "REVERIFY_DISPATCH_HORIZON", 2*time.Second,
		"with the fleet's API rate known, the windows of all runs together hold this long of its calls, shared by priority weight; keep it above the API's latency (docs/dispatch.md)")
	a.envErrs.durationSetting(f, &o.feeder.Every, "dispatch-every", "REVERIFY_DISPATCH_EVERY", 200*time.Millisecond,
		"how often the feeder tops up each run's window")
	a.envErrs.durationSetting(f, &o.feeder.Refill, "refill-every", "REVERIFY_REFILL_EVERY", time.Minute,
		"how often the feeder puts back every window's tasks, for tasks Redis lost (at once when Redis lost all its data)")
	stringSetting(f, &o.metricsAddr, "metrics-addr", "REVERIFY_METRICS_ADDR", "",
		"serve /metrics, /healthz and /readyz on this address, e.g. :9090 (empty = off)")
	stringsSetting(f, &o.notify, "notify", "REVERIFY_NOTIFY",
		"webhook told of every run's and the fleet's events: URL (signed JSON) or slack:URL (repeatable; the variable separates them with commas)",
		notify.Redact)
	secretSetting(f, &o.notifySecret, "notify-secret", "REVERIFY_NOTIFY_SECRET",
		"key that signs JSON webhook bodies, HMAC-SHA256 (prefer the environment or a file)")
	stringSetting(f, &o.notifySecretFile, "notify-secret-file", "REVERIFY_NOTIFY_SECRET_FILE", "", "file holding the webhook signing key")
	return cmd
}

// secret returns the webhook signing key from the flag/environment or the
// key file ("" when neither is set). The key never appears in an error.
func (o workerOptions) secret() (string, error) {
	switch {
	case o.notifySecret != "" && o.notifySecretFile != "":
		return "", errors.New("set one of REVERIFY_NOTIFY_SECRET (--notify-secret) and REVERIFY_NOTIFY_SECRET_FILE (--notify-secret-file), not both")
	case o.notifySecretFile != "":
		b, err := os.ReadFile(o.notifySecretFile)
		if err != nil {
			return "", fmt.Errorf("REVERIFY_NOTIFY_SECRET_FILE (--notify-secret-file): %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return strings.TrimSpace(o.notifySecret), nil
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
	if o.fleet.RatePerSecond < 0 || o.fleet.MaxInFlight < 0 || o.fleet.DailyBudget < 0 {
		return fmt.Errorf("invalid fleet limits: REVERIFY_API_RATE, REVERIFY_API_MAX_IN_FLIGHT and REVERIFY_API_DAILY_BUDGET must not be negative")
	}
	if o.rateSchedule != "" {
		sch, err := reverify.ParseRateSchedule(o.rateSchedule)
		if err != nil {
			return fmt.Errorf("invalid REVERIFY_API_RATE_SCHEDULE (--api-rate-schedule): %w", err)
		}
		o.fleet.Schedule = sch
	}
	switch o.rateMode {
	case "auto":
		o.fleet.Adaptive = o.fleet.RatePerSecond == 0
	case "adaptive":
		o.fleet.Adaptive = true
	case "fixed":
	default:
		return fmt.Errorf("invalid REVERIFY_API_RATE_MODE (--api-rate-mode) %q: want auto, adaptive or fixed", o.rateMode)
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		// Hundreds of images in flight are short-lived garbage: collecting
		// sooner keeps the heap small for each image in flight (make bench).
		debug.SetGCPercent(50)
	}
	if o.concurrency < 1 {
		return fmt.Errorf("invalid REVERIFY_WORKER_CONCURRENCY (--concurrency) %d: want at least 1", o.concurrency)
	}
	if o.dbConns < 0 {
		return fmt.Errorf("invalid REVERIFY_DB_MAX_CONNS (--db-max-conns) %d: want 0 (automatic) or more", o.dbConns)
	}
	if o.dbConns == 0 {
		o.dbConns = worker.LedgerConns(o.concurrency)
	}
	if o.lanes < 0 {
		return fmt.Errorf("invalid REVERIFY_WORKER_LANES (--lanes) %d: want 0 (automatic) or more", o.lanes)
	}
	queues, err := parseQueues(o.queues)
	if err != nil {
		return err
	}
	secret, err := o.secret()
	if err != nil {
		return err
	}
	for _, h := range o.notify {
		if _, err := notify.ParseHook(h); err != nil {
			return fmt.Errorf("REVERIFY_NOTIFY (--notify): %w", err)
		}
	}
	queues[scheduler.ControlQueue] = max(queues[scheduler.ControlQueue], reverify.PriorityHigh.Weight()) // scheduled firings
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
	store, err := a.waitForStore(ctx, log, int32(o.dbConns))
	if errors.Is(err, context.Canceled) {
		return nil // stopped before PostgreSQL came up
	}
	if err != nil {
		return err
	}
	defer store.Close()
	store.GroupWrites(worker.LedgerFlushers(o.dbConns))
	rdb, err := redisClient(redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	campaigns := campaign.New(campaign.Deps{
		Ledger: store, Queue: asynq.NewClientFromRedisClient(rdb), Objects: objs,
		Reports: reportWriter{a: a, store: store}, Logger: log,
	})
	if o.feeder.Window == 0 {
		o.feeder.Window = campaign.DefaultWindow(o.concurrency, o.fleet.MaxInFlight)
	}
	o.feeder.Logger = log
	// The windows follow the fleet's rate (announced by every worker in
	// Redis), so runs share it by weight (docs/dispatch.md).
	o.feeder.Fleet = fleet.New(rdb, o.fleet)
	host, _ := os.Hostname()
	feeder, closeFeeder, err := campaign.NewFleetFeeder(ctx, store, redis, rdb, fmt.Sprintf("%s/%d", host, os.Getpid()), o.feeder)
	if err != nil {
		return err
	}
	defer closeFeeder()
	sender, err := a.notifier(ctx, store, rdb, secret, o.notify, log)
	if err != nil {
		return err
	}
	// The fleet tells of circuits and spent budgets; the events wait in
	// the ledger for the sender.
	events := notify.NewRecorder(store, log)
	defer events.Close()
	o.fleet.Events = events
	o.fleet.Logger = log
	api, err := liveness.New(apiURL, key, liveness.NewHTTPClient(o.concurrency, a.cfg.APITimeout))
	if err != nil {
		return fmt.Errorf("REVERIFY_API_URL (--api-url): %w", err)
	}
	// The worker admits calls through a governor of its own; this one, over
	// the same keys, exports the circuits and budget and publishes the budget.
	fleetStatus := fleet.New(rdb, o.fleet)
	var metricsLn net.Listener
	if o.metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", o.metricsAddr); err != nil {
			return fmt.Errorf("REVERIFY_METRICS_ADDR (--metrics-addr): %w", err)
		}
	}
	probes, err := ops.StartWorker(metricsLn, redis, store, log, fleetStatus, feeder)
	if err != nil {
		return err
	}
	defer probes.Close(ctx)
	if err := fleetStatus.Announce(ctx); err != nil {
		log.WarnContext(ctx, "could not publish the fleet's daily budget", "err", err)
	}
	w, err := worker.New(worker.Deps{
		Objects:    objs,
		API:        api,
		Ledger:     store,
		Redis:      redis,
		Runs:       campaigns,
		RunGate:    store,
		RunLimits:  store,
		Feeder:     feeder,
		Background: []worker.Runner{sender},
		Observer:   probes.Observer(),
		Handlers: map[string]asynq.Handler{
			tasks.TypePlan:     campaign.NewPlanHandler(campaigns),
			scheduler.TypeFire: scheduler.NewFirer(campaigns),
		},
	}, worker.Config{
		Concurrency:     o.concurrency,
		Lanes:           o.lanes,
		Queues:          queues,
		ShutdownTimeout: o.shutdownTimeout,
		Backoff:         o.backoff,
		Logger:          log,
		MaxObjectBytes:  o.maxObjectBytes,
		KeepDuplicates:  o.keepDuplicates,
		CallTimeout:     a.cfg.APITimeout,
		Fleet:           o.fleet,
	})
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// notifier builds the webhook sender a worker runs: one worker of the
// ledger's fleet sends at a time, under a lease in Redis.
func (a *app) notifier(ctx context.Context, store *postgres.Store, rdb goredis.UniversalClient, secret string, hooks []string,
	log *slog.Logger) (*notify.Sender, error) {
	id, err := store.LedgerID(ctx)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	lease := fleet.NewLease(rdb, fleet.NotifierLease(id), fmt.Sprintf("%s/%d", host, os.Getpid()), campaign.LeaseTTL)
	s, err := notify.NewSender(store, lease, notify.Config{Hooks: hooks, Secret: secret, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("REVERIFY_NOTIFY (--notify): %w (REVERIFY_NOTIFY_SECRET)", err)
	}
	if secret == "" {
		log.InfoContext(ctx, "no webhook signing key (REVERIFY_NOTIFY_SECRET): runs' JSON webhooks are not sent, Slack ones are")
	}
	return s, nil
}
