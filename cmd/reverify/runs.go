package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"reverify"
	"reverify/campaign"
	"reverify/report"
	"reverify/storage/postgres"
	"reverify/worker/fleet"
)

func (a *app) runsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "runs", Short: "List, watch and control runs: cancel, pause, resume, confirm, retry, report"}
	cmd.AddCommand(a.runsListCommand(), a.runsShowCommand(), a.runsWatchCommand(), a.runsReportCommand(),
		a.runsRetryCommand(), a.runsConfirmCommand(), a.runsReconcileCommand(), a.runsPriorityCommand(), a.runsDeleteCommand())
	for _, c := range []struct {
		use, short string
		do         func(context.Context, *campaign.Service, string, reverify.Actor) (string, error)
	}{
		{"cancel", "Cancel a run: nothing more of it reaches the API; its pending objects become cancelled",
			func(ctx context.Context, s *campaign.Service, id string, who reverify.Actor) (string, error) {
				r, n, err := s.Cancel(ctx, id, who)
				return fmt.Sprintf("run %s cancelled: %d pending objects will not be sent", r.ID, n), err
			}},
		{"pause", "Pause a run: its tasks wait in the queue until it is resumed",
			func(ctx context.Context, s *campaign.Service, id string, who reverify.Actor) (string, error) {
				r, err := s.Pause(ctx, id, who)
				return fmt.Sprintf("run %s paused", r.ID), err
			}},
		{"resume", "Resume a paused run",
			func(ctx context.Context, s *campaign.Service, id string, who reverify.Actor) (string, error) {
				r, err := s.Resume(ctx, id, who)
				return fmt.Sprintf("run %s is %s again", r.ID, r.Status), err
			}},
	} {
		var reason string
		sub := &cobra.Command{
			Use:   c.use + " RUN_ID",
			Short: c.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.withCampaigns(cmd.Context(), needs{ledger: true}, func(s *campaign.Service) error {
					msg, err := c.do(cmd.Context(), s, args[0], actor(reason))
					if err != nil {
						return err
					}
					fmt.Fprintln(a.stdout, msg)
					return nil
				})
			},
		}
		sub.Flags().StringVar(&reason, "reason", "", "why (kept in the run's status history)")
		cmd.AddCommand(sub)
	}
	return cmd
}

// withCampaigns runs fn with a campaign service that has what n asks for.
func (a *app) withCampaigns(ctx context.Context, n needs, fn func(*campaign.Service) error) error {
	s, closeAll, err := a.campaigns(ctx, n)
	if err != nil {
		return err
	}
	defer closeAll()
	return fn(s)
}

func (a *app) withStore(ctx context.Context, fn func(*postgres.Store) error) error {
	store, err := a.openStore(ctx, 2)
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(store)
}

// actor names the person running the command for the status history:
// $REVERIFY_ACTOR, else user@host.
func actor(reason string) reverify.Actor {
	if who := os.Getenv("REVERIFY_ACTOR"); who != "" {
		return reverify.Actor{Who: who, Why: reason}
	}
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return reverify.Actor{Who: name + "@" + host, Why: reason}
}

func (a *app) runsListCommand() *cobra.Command {
	var f postgres.RunFilter
	var labels []string
	var status string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the newest runs, optionally by label and status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if f.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			f.Status = reverify.RunStatus(status)
			return a.withStore(cmd.Context(), func(store *postgres.Store) error {
				runs, err := store.Runs(cmd.Context(), f)
				if err != nil {
					return err
				}
				lines := make([]report.RunLine, len(runs))
				for i, r := range runs {
					p, err := store.Progress(cmd.Context(), r.ID)
					if err != nil {
						return err
					}
					lines[i] = report.RunLine{Run: r, Done: p.Done}
				}
				return report.WriteRuns(a.stdout, lines)
			})
		},
	}
	cmd.Flags().IntVar(&f.Limit, "limit", 20, "how many runs")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "only runs with this label, key=value (repeatable: all must match)")
	cmd.Flags().StringVar(&status, "status", "", "only runs in this status")
	return cmd
}

func (a *app) runsShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show RUN_ID",
		Short: "Show a run: counts by status, pending, throughput, times and status history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(store *postgres.Store) error {
				p, err := store.Progress(ctx, args[0])
				if err != nil {
					return err
				}
				hist, err := store.History(ctx, p.Run.ID)
				if err != nil {
					return err
				}
				report.WriteProgress(a.stdout, p, time.Now())
				a.writeFleetStatus(ctx, a.stdout)
				report.WriteHistory(a.stdout, hist)
				return nil
			})
		},
	}
}

// writeFleetStatus tells why a run may not be moving. It stays silent when
// Redis cannot be read.
func (a *app) writeFleetStatus(ctx context.Context, w io.Writer) {
	opt, err := a.cfg.redis()
	if err != nil {
		return
	}
	rdb, err := redisClient(opt)
	if err != nil {
		return
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if st, err := fleet.New(rdb, fleet.Config{}).Status(ctx); err == nil {
		report.WriteFleetStatus(w, st)
	}
}

func (a *app) runsRetryCommand() *cobra.Command {
	var statuses []string
	var reason string
	cmd := &cobra.Command{
		Use:   "retry RUN_ID",
		Short: "Re-drive a run's objects with the given statuses (default failed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var sts []reverify.Status
			for _, s := range statuses {
				st, err := reverify.ParseStatus(s)
				if err != nil {
					return fmt.Errorf("--status: %w", err)
				}
				sts = append(sts, st)
			}
			return a.withCampaigns(cmd.Context(), needs{ledger: true}, func(s *campaign.Service) error {
				run, n, err := s.Retry(cmd.Context(), args[0], sts, actor(reason))
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "run %s: %d objects (%s) re-driven; the worker fleet dispatches them\n", run.ID, n,
					strings.Join(statuses, ","))
				return nil
			})
		},
	}
	cmd.Flags().StringSliceVar(&statuses, "status", []string{string(reverify.StatusFailed)}, "statuses to retry: failed, not_found, invalid_image, rejected, cancelled")
	cmd.Flags().StringVar(&reason, "reason", "retry", "why (kept in the run's status history)")
	return cmd
}

func (a *app) runsConfirmCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "confirm RUN_ID",
		Short: "Start a run that awaits confirmation (its paid calls were counted by enqueue)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCampaigns(cmd.Context(), needs{ledger: true}, func(s *campaign.Service) error {
				run, err := s.Confirm(cmd.Context(), args[0], actor(reason))
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "run %s confirmed: %d objects; the worker fleet dispatches them\n", run.ID, run.Total)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "confirmed", "why (kept in the run's status history)")
	return cmd
}

func (a *app) runsReconcileCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "reconcile RUN_ID",
		Short: "Put back the tasks of a run's dispatched objects that have no result yet (after Redis lost its data)",
		Long: `reconcile puts back the task of every object of a run that the feeder has
dispatched and that has no terminal result. Tasks Redis still holds are not
duplicated (task IDs collide), so it is safe at any time. The feeder does the
same for every run it feeds when Redis loses its data, and every
--refill-every.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCampaigns(cmd.Context(), needs{ledger: true, queue: true}, func(s *campaign.Service) error {
				st, err := s.Reconcile(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "run %s: %d dispatched objects without a result, %d tasks re-enqueued, %d already queued\n",
					args[0], st.Dispatched, st.Enqueued, st.Duplicate)
				return nil
			})
		},
	}
}

func (a *app) runsPriorityCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "priority RUN_ID high|normal|low",
		Short: "Change a run's priority; its next tasks go to that priority's queue",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCampaigns(cmd.Context(), needs{ledger: true}, func(s *campaign.Service) error {
				run, err := s.SetPriority(cmd.Context(), args[0], reverify.Priority(args[1]), actor(reason))
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "run %s: priority %s, queue %s\n", run.ID, run.Priority, run.Queue)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (kept in the run's status history)")
	return cmd
}

func (a *app) runsDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete RUN_ID",
		Short: "Delete an ended run and everything recorded under it: objects, API calls, reviews, history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCampaigns(cmd.Context(), needs{ledger: true}, func(s *campaign.Service) error {
				n, err := s.Delete(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "run %s deleted with its %d objects\n", args[0], n)
				return nil
			})
		},
	}
}

func (a *app) runsWatchCommand() *cobra.Command {
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "watch RUN_ID",
		Short: "Follow a run until it ends: a progress bar on a terminal, a line per interval otherwise",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd.Context(), func(store *postgres.Store) error {
				return a.watch(cmd.Context(), store, args[0], every)
			})
		},
	}
	cmd.Flags().DurationVar(&every, "interval", 2*time.Second, "how often to refresh")
	return cmd
}

func (a *app) watch(ctx context.Context, store *postgres.Store, id string, every time.Duration) error {
	bar := newProgress(a.stdout, "", -1)
	bar.every = every
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		p, err := store.Progress(ctx, id)
		if err != nil {
			return err
		}
		counts := report.Counts(p.ByStatus)
		bar.label = string(p.Run.Status)
		bar.set(p.Done, max(p.Run.Total, 1), fmt.Sprintf("%.1f/s ETA %s %s", p.RecentPerSecond, report.ETA(p), counts))
		if p.Run.Status.Ended() {
			bar.finish()
			fmt.Fprintf(a.stdout, "run %s %s: %d/%d done, %s\n", p.Run.ID, p.Run.Status, p.Done, p.Run.Total, counts)
			return nil
		}
		select {
		case <-ctx.Done():
			bar.finish()
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}
