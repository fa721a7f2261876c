package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"reverify/campaign"
	"reverify/storage/objects"
	"reverify/storage/postgres"
	"reverify/tasks"
)

// app carries the settings and streams shared by every command.
type app struct {
	cfg     config
	envErrs envErrors
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
}

// run executes the command line and returns the process exit code (see
// exit.go).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "reverify: %v\n", err)
		if exitCode(err) == exitUsage && cmd != nil {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return exitCode(err)
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "reverify",
		Short: "Re-verify stored KYC face images in bulk with the Face Liveness API",
		Long: `reverify sends every image of a bucket, prefix or manifest through the Face
Liveness API and records one result per image in PostgreSQL.

  reverify migrate                          create or upgrade the schema
  reverify enqueue --bucket B --prefix P    start a run; prints its ID
  reverify worker                           process runs (run several)
  reverify runs show ID                     progress of a run
  reverify demo                             everything above, on local defaults

Commands that print data take -o table|json|yaml; json and yaml print one
document. Exit status: 0 done, 1 the command failed, 2 the command line is
wrong (unknown command or flag, bad flag value, wrong number of arguments).`,
		Example: `  reverify migrate
  RUN=$(reverify enqueue --bucket kyc --prefix selfies/ --label team=fraud)
  reverify runs watch "$RUN" --exit-status
  reverify runs list -o json | jq -r '.[] | select(.status == "failed") | .id'`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.envErrs.err()
		},
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetIn(a.stdin)
	a.cfg.register(root.PersistentFlags(), &a.envErrs)
	root.AddCommand(
		a.migrateCommand(),
		a.enqueueCommand(),
		a.workerCommand(),
		a.runsCommand(),
		a.reportCommand(),
		a.schedulerCommand(),
		a.fakeAPICommand(),
		a.demoCommand(),
		a.dashboardCommand(),
		a.auditCommand(),
		a.eraseCommand(),
		a.pruneCommand(),
		a.versionCommand(),
	)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	classifyUsage(root)
	return root
}

func (a *app) logger() (*slog.Logger, error) { return a.cfg.logger(a.stderr) }

// openStore connects to a migrated database.
func (a *app) openStore(ctx context.Context, maxConns int32) (*postgres.Store, error) {
	dsn, err := a.cfg.database()
	if err != nil {
		return nil, err
	}
	store, err := postgres.Open(ctx, dsn, maxConns)
	if err != nil {
		if errors.Is(err, postgres.ErrNotMigrated) {
			return nil, err
		}
		return nil, fmt.Errorf("%w (REVERIFY_DATABASE_URL)", err)
	}
	return store, nil
}

// waitForStore connects to the ledger, waiting out a database that is
// restarting or not up yet, so a worker does not crash-loop; a schema that
// is not migrated is a configuration error and returns at once.
func (a *app) waitForStore(ctx context.Context, log *slog.Logger, maxConns int32) (*postgres.Store, error) {
	delay := time.Second
	for {
		store, err := a.openStore(ctx, maxConns)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil || errors.Is(err, postgres.ErrNotMigrated) {
			return store, err
		}
		if _, cerr := a.cfg.database(); cerr != nil {
			return nil, cerr
		}
		log.WarnContext(ctx, "PostgreSQL unreachable; retrying", "err", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// redisClient makes a go-redis client for opt (one of the asynq options
// config.redis returns, all of which make a UniversalClient).
func redisClient(opt asynq.RedisConnOpt) (goredis.UniversalClient, error) {
	rdb, ok := opt.MakeRedisClient().(goredis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("REVERIFY_REDIS_URL (--redis-url): unsupported connection type")
	}
	return rdb, nil
}

// openQueue returns an asynq client for producers after checking Redis
// answers. Its commands are auto-pipelined, so concurrent enqueues share
// round trips; release it with closeFn, not client.Close.
func (a *app) openQueue() (client *asynq.Client, opt asynq.RedisConnOpt, closeFn func(), err error) {
	opt, err = a.cfg.redis()
	if err != nil {
		return nil, nil, nil, err
	}
	client, closeClient, err := tasks.NewPipelinedClient(opt)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connect to redis (REVERIFY_REDIS_URL): %w", err)
	}
	if err := client.Ping(); err != nil {
		_ = closeClient()
		return nil, nil, nil, fmt.Errorf("connect to redis (REVERIFY_REDIS_URL): %w", err)
	}
	return client, opt, func() { _ = closeClient() }, nil
}

// s3Client returns an S3 client for the configured endpoint and credentials.
func (a *app) s3Client(ctx context.Context) (*s3.Client, error) {
	cfg, err := a.cfg.s3()
	if err != nil {
		return nil, err
	}
	client, err := objects.NewClient(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("configure s3: %w", err)
	}
	return client, nil
}

func (a *app) openObjects(ctx context.Context) (*objects.Store, error) {
	cfg, err := a.cfg.s3()
	if err != nil {
		return nil, err
	}
	store, err := objects.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("configure s3: %w", err)
	}
	return store, nil
}

// needs says which dependencies a command's campaign service must have:
// mayObjects is S3 when it is configured (erase reads reports there), tasks
// the queue's inspector.
type needs struct{ ledger, queue, objects, mayObjects, tasks bool }

// campaigns builds the campaign service over what a command needs; close
// releases it all.
func (a *app) campaigns(ctx context.Context, n needs) (*campaign.Service, func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	var d campaign.Deps
	if n.objects {
		objs, err := a.openObjects(ctx)
		if err != nil {
			return nil, nil, err
		}
		d.Objects = objs
	} else if n.mayObjects {
		if objs, err := a.openObjects(ctx); err == nil {
			d.Objects = objs
		}
	}
	if n.tasks {
		opt, err := a.cfg.redis()
		if err != nil {
			return nil, nil, err
		}
		insp := asynq.NewInspector(opt)
		closers = append(closers, func() { _ = insp.Close() })
		d.Tasks = insp
	}
	if n.ledger {
		store, err := a.openStore(ctx, 4)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, store.Close)
		d.Ledger = store
		d.Reports = reportWriter{a: a, store: store}
	}
	if n.queue {
		queue, _, closeQueue, err := a.openQueue()
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, closeQueue)
		d.Queue = queue
	}
	if log, err := a.logger(); err == nil {
		d.Logger = log
	}
	return campaign.New(d), closeAll, nil
}
