package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"reverify"
	"reverify/demo"
	"reverify/report"
	"reverify/storage/postgres"
)

func (a *app) demoCommand() *cobra.Command {
	cfg := demo.Config{Faults: true}
	var serve bool
	var addr string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on embedded defaults: in-process S3 and fake API, local PostgreSQL and Redis",
		Long: `demo seeds an in-process S3 with generated face images (some deliberately bad),
starts the fake liveness API and a worker in this process, enqueues a run over
the bucket, processes it with live progress, and prints the run summary. The
results stay in PostgreSQL (REVERIFY_DATABASE_URL) for you to query. It uses
the local Redis, or an in-process one when none answers.

With --serve it then keeps the S3, the fake API and the worker running and
serves the dashboard on --addr, printing its URL, until interrupted: the
images of the results can only be shown while the demo's S3 runs.`,
		Example: `  reverify demo
  reverify demo --serve              # then open the URL it prints; Ctrl-C stops it
  reverify demo --images 2000 --concurrency 100 --faults=false`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if serve {
				cfg.Serve = &demo.Serve{Addr: addr}
			}
			return a.demo(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Images, "images", 300, "how many objects to seed")
	f.IntVar(&cfg.Concurrency, "concurrency", 50, "worker concurrency")
	f.DurationVar(&cfg.Latency, "latency", 40*time.Millisecond, "fake API latency")
	f.BoolVar(&cfg.Faults, "faults", true, "let the fake API answer some calls with 429 and 503")
	f.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "give up when the run takes longer")
	f.BoolVar(&serve, "serve", false, "keep running after the run and serve the dashboard until interrupted")
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "the dashboard's listen address with --serve (loopback only)")
	return cmd
}

func (a *app) demo(ctx context.Context, cfg demo.Config) error {
	var err error
	if cfg.DatabaseURL, err = a.cfg.database(); err != nil {
		return err
	}
	if cfg.Redis, err = a.cfg.redis(); err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	cfg.Say = func(format string, args ...any) { fmt.Fprintf(a.stderr, "demo: "+format+"\n", args...) }
	bar := newProgress(a.stderr, "verified", -1)
	cfg.Progress = func(p postgres.Progress) {
		bar.set(p.Done, p.Run.Total, fmt.Sprintf("scored %d, rejected %d, invalid %d",
			p.ByStatus[reverify.StatusScored], p.ByStatus[reverify.StatusRejected], p.ByStatus[reverify.StatusInvalidImage]))
	}
	if cfg.Serve != nil {
		cfg.Serve.Ready = func(url string) {
			fmt.Fprintf(a.stderr, "demo: dashboard on %s (asynqmon on %smonitoring/); Ctrl-C stops the demo\n", url, url)
		}
		cfg.Serve.Ended = func(res demo.Result) {
			bar.finish()
			a.demoSummary(cfg, res)
			fmt.Fprintf(a.stdout, "\nThe dashboard shows the run, its images included, until you stop the demo (Ctrl-C).\n")
		}
	}
	res, err := demo.Run(ctx, cfg)
	bar.finish()
	if err != nil {
		return err
	}
	if cfg.Serve == nil {
		a.demoSummary(cfg, res)
	}
	return nil
}

// demoSummary prints how the demo's run ended and how to look further.
func (a *app) demoSummary(cfg demo.Config, res demo.Result) {
	fmt.Fprintln(a.stdout)
	report.WriteProgress(a.stdout, res.Progress, time.Now())
	fmt.Fprintf(a.stdout, "\nThe fake API answered %d API calls (%d scored); the results stay in PostgreSQL:\n\n", res.Calls, res.Scored)
	fmt.Fprintf(a.stdout, "  reverify runs show %s\n", res.Progress.Run.ID)
	fmt.Fprintf(a.stdout, "  reverify report --run %s    (the SQL views of docs/reporting.md; psql %q reads them too)\n",
		res.Progress.Run.ID, redactDSN(cfg.DatabaseURL))
	if cfg.Serve == nil {
		fmt.Fprintf(a.stdout, "  reverify demo --serve    (the same with the dashboard)\n")
	}
}

// redactDSN drops a password from a connection URL before printing it.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "(database)"
	}
	return u.Redacted()
}
