package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"reverify/health"
	"reverify/ops"
	"reverify/scheduler"
)

func (a *app) schedulerCommand() *cobra.Command {
	var path string
	var ttl time.Duration
	var check bool
	var probesAddr string
	cmd := &cobra.Command{
		Use:   "scheduler --config schedules.json",
		Short: "Fire scheduled campaigns (cron with time zone); one instance acts at a time",
		Long: `scheduler reads schedules (name, cron, timezone, bucket, prefix, filters,
modified_within, priority, labels, report_to) from a JSON file and, while it
holds a Redis lock, enqueues a schedule:fire task at each firing. Workers turn
each firing into a run named after the schedule and the time, listed by a
run:plan task. Run several for availability: the others stand by.`,
		Example: `  reverify scheduler --config schedules.json --check
  reverify scheduler --config /etc/reverify/schedules.json --metrics-addr :9091`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("--config: %w", err)
			}
			cfg, err := scheduler.Load(f)
			f.Close()
			if err != nil {
				return err
			}
			if check {
				for _, s := range cfg.Schedules {
					fmt.Fprintf(a.stdout, "%s\t%s\ts3://%s/%s\n", s.Name, s.Spec(), s.Bucket, s.Prefix)
				}
				return nil
			}
			log, err := a.logger()
			if err != nil {
				return err
			}
			opt, err := a.cfg.redis()
			if err != nil {
				return err
			}
			rdb, err := redisClient(opt)
			if err != nil {
				return err
			}
			defer rdb.Close()
			if probesAddr != "" {
				ln, err := net.Listen("tcp", probesAddr)
				if err != nil {
					return fmt.Errorf("REVERIFY_METRICS_ADDR (--metrics-addr): %w", err)
				}
				mux := http.NewServeMux()
				health.New(log, 0, health.Check{Name: "redis", Func: func(ctx context.Context) error {
					return rdb.Ping(ctx).Err()
				}}).Register(mux)
				srv := ops.Serve(ln, mux, log)
				defer srv.Close(cmd.Context())
			}
			host, _ := os.Hostname()
			r := scheduler.NewRunner(rdb, opt, cfg.Schedules, fmt.Sprintf("%s/%d", host, os.Getpid()), ttl, log)
			return r.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&path, "config", "schedules.json", "schedule config file (JSON)")
	cmd.Flags().DurationVar(&ttl, "lock-ttl", 15*time.Second, "leader lock lifetime: a crashed scheduler is replaced within it")
	cmd.Flags().BoolVar(&check, "check", false, "validate the config, print the schedules and exit")
	stringSetting(cmd.Flags(), &probesAddr, "metrics-addr", "REVERIFY_METRICS_ADDR", "", "serve /healthz and /readyz here (empty = off)")
	return cmd
}
