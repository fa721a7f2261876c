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
	var timeout time.Duration
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
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return a.demo(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Images, "images", 300, "how many objects to seed")
	f.IntVar(&cfg.Concurrency, "concurrency", 50, "worker concurrency")
	f.DurationVar(&cfg.Latency, "latency", 40*time.Millisecond, "fake API latency")
	f.BoolVar(&cfg.Faults, "faults", true, "let the fake API answer some calls with 429 and 503")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
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
	res, err := demo.Run(ctx, cfg)
	bar.finish()
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	report.WriteProgress(a.stdout, res.Progress, time.Now())
	fmt.Fprintf(a.stdout, "\nThe fake API answered %d calls (%d scored); the results stay in PostgreSQL:\n\n", res.Calls, res.Scored)
	fmt.Fprintf(a.stdout, "  psql %q -c \"SELECT status, count(*), round(avg(liveness_score),1) AS avg_score FROM verifications WHERE run_id = '%s' GROUP BY status\"\n",
		redactDSN(cfg.DatabaseURL), res.Progress.Run.ID)
	fmt.Fprintf(a.stdout, "  reverify runs show %s\n", res.Progress.Run.ID)
	return nil
}

// redactDSN drops a password from a connection URL before printing it.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "(database)"
	}
	return u.Redacted()
}
