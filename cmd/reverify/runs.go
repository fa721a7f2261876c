package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"reverify"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"

	"reverify/storage/postgres"
	"reverify/tasks"
)

func (a *app) runsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "runs", Short: "List, watch and control runs: cancel, pause, resume, confirm, retry, report"}
	var f postgres.RunFilter
	var labels []string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the newest runs, optionally by label and status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if f.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			return a.runsList(cmd.Context(), f)
		},
	}
	list.Flags().IntVar(&f.Limit, "limit", 20, "how many runs")
	list.Flags().StringArrayVar(&labels, "label", nil, "only runs with this label, key=value (repeatable: all must match)")
	list.Flags().StringVar((*string)(&f.Status), "status", "", "only runs in this status")
	show := &cobra.Command{
		Use:   "show RUN_ID",
		Short: "Show a run: counts by status, pending, throughput, times and status history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd.Context(), func(store *postgres.Store) error {
				p, err := store.Progress(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				hist, err := store.History(cmd.Context(), p.Run.ID)
				if err != nil {
					return err
				}
				writeProgress(a.stdout, p, time.Now())
				a.writeFleetStatus(cmd.Context(), a.stdout)
				writeHistory(a.stdout, hist)
				return nil
			})
		},
	}
	cmd.AddCommand(list, show, a.runsWatchCommand(), a.runsReportCommand(), a.runsRetryCommand(), a.runsConfirmCommand(), a.runsReconcileCommand())
	for _, c := range []struct {
		use, short string
		do         func(context.Context, *postgres.Store, string, reverify.Actor) (string, error)
	}{
		{"cancel", "Cancel a run: nothing more of it reaches the API; its pending objects become cancelled",
			func(ctx context.Context, s *postgres.Store, id string, who reverify.Actor) (string, error) {
				r, n, err := s.CancelRun(ctx, id, who)
				if err != nil {
					return "", err
				}
				a.writeReport(ctx, s, r)
				return fmt.Sprintf("run %s cancelled: %d pending objects will not be sent", r.ID, n), nil
			}},
		{"pause", "Pause a run: its tasks wait in the queue until it is resumed",
			func(ctx context.Context, s *postgres.Store, id string, who reverify.Actor) (string, error) {
				r, err := s.PauseRun(ctx, id, who)
				return fmt.Sprintf("run %s paused", r.ID), err
			}},
		{"resume", "Resume a paused run",
			func(ctx context.Context, s *postgres.Store, id string, who reverify.Actor) (string, error) {
				r, err := s.ResumeRun(ctx, id, who)
				return fmt.Sprintf("run %s is %s again", r.ID, r.Status), err
			}},
	} {
		var reason string
		sub := &cobra.Command{
			Use:   c.use + " RUN_ID",
			Short: c.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.withStore(cmd.Context(), func(store *postgres.Store) error {
					msg, err := c.do(cmd.Context(), store, args[0], actor(reason))
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

func parseLabels(specs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range specs {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid --label %q: want key=value", s)
		}
		out[k] = v
	}
	return out, nil
}

func (a *app) runsRetryCommand() *cobra.Command {
	var statuses []string
	var reason string
	cmd := &cobra.Command{
		Use:   "retry RUN_ID",
		Short: "Re-drive a run's objects with the given statuses (default failed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(store *postgres.Store) error {
				queue, opt, closeQueue, err := a.openQueue()
				if err != nil {
					return err
				}
				defer closeQueue()
				var sts []reverify.Status
				for _, st := range statuses {
					v, err := reverify.ParseStatus(st)
					if err != nil {
						return fmt.Errorf("--status: %w", err)
					}
					sts = append(sts, v)
				}
				run, n, err := store.RetryObjects(ctx, args[0], sts, actor(reason))
				if err != nil {
					return err
				}
				insp := asynq.NewInspector(opt)
				defer insp.Close()
				stats, err := tasks.NewProducer(store, queue, tasks.WithReplaceArchived(insp)).Requeue(ctx, run)
				if err != nil {
					return fmt.Errorf("run %s: %d objects reset but not all queued (run `reverify runs retry %s` again): %w", run.ID, n, run.ID, err)
				}
				fmt.Fprintf(a.stdout, "run %s: %d objects (%s) re-driven, %d tasks enqueued\n", run.ID, n,
					strings.Join(statuses, ","), stats.Enqueued)
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
			ctx := cmd.Context()
			return a.withStore(ctx, func(store *postgres.Store) error {
				queue, _, closeQueue, err := a.openQueue()
				if err != nil {
					return err
				}
				defer closeQueue()
				run, err := store.ConfirmRun(ctx, args[0], actor(reason))
				if err != nil {
					return err
				}
				stats, err := a.queueRecorded(ctx, store, queue, run)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "run %s confirmed: %d tasks enqueued\n", run.ID, stats.Enqueued)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "confirmed", "why (kept in the run's status history)")
	return cmd
}

// queueRecorded enqueues a run's recorded pending objects and starts it.
func (a *app) queueRecorded(ctx context.Context, store *postgres.Store, queue tasks.Enqueuer, run reverify.Run) (tasks.Stats, error) {
	bar := newProgress(a.stderr, "enqueued", run.Total)
	stats, err := tasks.NewProducer(store, queue, tasks.WithProgress(func(s tasks.Stats) {
		bar.set(s.Enqueued+s.Duplicate, run.Total, "")
	})).Requeue(ctx, run)
	bar.finish()
	if err != nil {
		return stats, fmt.Errorf("run %s: queue its objects (finish with `reverify enqueue --run %s` and the same source): %w", run.ID, run.ID, err)
	}
	return stats, store.StartRun(ctx, run.ID)
}

func (a *app) runsList(ctx context.Context, f postgres.RunFilter) error {
	return a.withStore(ctx, func(store *postgres.Store) error {
		runs, err := store.Runs(ctx, f)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tPRIORITY\tDONE\tTOTAL\tCREATED\tNAME\tLABELS")
		for _, r := range runs {
			p, err := store.Progress(ctx, r.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", r.ID, r.Status, r.Priority, p.Done, r.Total,
				r.CreatedAt.Local().Format("2006-01-02 15:04"), r.Name, formatLabels(r.Labels))
		}
		return tw.Flush()
	})
}

func formatLabels(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

// throughput is completions per second since the run started.
func throughput(p postgres.Progress, now time.Time) float64 {
	if p.Run.StartedAt == nil || p.Done == 0 {
		return 0
	}
	end := now
	if p.Run.FinishedAt != nil {
		end = *p.Run.FinishedAt
	}
	secs := end.Sub(p.Run.CreatedAt).Seconds()
	if secs <= 0 {
		return 0
	}
	return float64(p.Done) / secs
}

func eta(p postgres.Progress) string {
	if p.Pending > 0 && p.RecentPerSecond > 0 {
		return (time.Duration(float64(p.Pending)/p.RecentPerSecond) * time.Second).String()
	}
	return "-"
}

func writeProgress(w io.Writer, p postgres.Progress, now time.Time) {
	r := p.Run
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "run\t%s\n", r.ID)
	fmt.Fprintf(tw, "name\t%s\n", r.Name)
	fmt.Fprintf(tw, "status\t%s\n", r.Status)
	fmt.Fprintf(tw, "priority\t%s\n", r.Priority)
	if len(r.Labels) > 0 {
		fmt.Fprintf(tw, "labels\t%s\n", formatLabels(r.Labels))
	}
	fmt.Fprintf(tw, "source\t%s\n", r.Source)
	fmt.Fprintf(tw, "queue\t%s\n", r.Queue)
	fmt.Fprintf(tw, "created\t%s\n", r.CreatedAt.Local().Format(time.DateTime))
	fmt.Fprintf(tw, "started\t%s\n", fmtTime(r.StartedAt))
	fmt.Fprintf(tw, "finished\t%s\n", fmtTime(r.FinishedAt))
	pct := 0.0
	if r.Total > 0 {
		pct = 100 * float64(p.Done) / float64(r.Total)
	}
	fmt.Fprintf(tw, "progress\t%d/%d done (%.1f%%), %d pending\n", p.Done, r.Total, pct, p.Pending)
	rate := throughput(p, now)
	if r.FinishedAt == nil {
		fmt.Fprintf(tw, "throughput\t%.1f images/s overall, %.1f/s over the last minute, ETA %s\n", rate, p.RecentPerSecond, eta(p))
	} else {
		fmt.Fprintf(tw, "throughput\t%.1f images/s\n", rate)
	}
	fmt.Fprintf(tw, "paid calls\t%d\n", p.PaidCalls)
	th := r.Threshold
	if th.Count > 0 {
		fmt.Fprintf(tw, "fails when\t%d objects failed, or more than %g%% once %d are done\n", th.Count, th.Percent, th.MinDone)
	} else {
		fmt.Fprintf(tw, "fails when\tmore than %g%% failed once %d are done\n", th.Percent, th.MinDone)
	}
	if p.ByStatus[reverify.StatusScored] > 0 {
		fmt.Fprintf(tw, "scores\tmin %.2f, avg %.2f, max %.2f\n", p.ScoreMin, p.ScoreAvg, p.ScoreMax)
	}
	tw.Flush()
	fmt.Fprintln(w, "by status:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, s := range statusOrder(p.ByStatus) {
		fmt.Fprintf(tw, "  %s\t%d\t\n", s, p.ByStatus[s])
	}
	tw.Flush()
}

func writeHistory(w io.Writer, hist []postgres.StatusChange) {
	fmt.Fprintln(w, "history:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, h := range hist {
		from := h.From
		if from == "" {
			from = "(created)"
		}
		fmt.Fprintf(tw, "  %s\t%s -> %s\t%s\t%s\n", h.ChangedAt.Local().Format(time.DateTime), from, h.To, h.Actor, h.Reason)
	}
	tw.Flush()
}

// statusOrder lists the statuses present in pipeline order.
func statusOrder(by map[reverify.Status]int64) []reverify.Status {
	var out []reverify.Status
	for _, s := range reverify.Statuses() {
		if _, ok := by[s]; ok {
			out = append(out, s)
		}
	}
	return out
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

// terminalRun reports whether a run's status can no longer change on its own.
func terminalRun(status reverify.RunStatus) bool { return status.Ended() }

func (a *app) runsWatchCommand() *cobra.Command {
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "watch RUN_ID",
		Short: "Follow a run until it ends: a progress bar on a terminal, a line per interval otherwise",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(store *postgres.Store) error {
				return a.watch(ctx, store, args[0], every)
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
		var counts []string
		for _, s := range statusOrder(p.ByStatus) {
			if s != reverify.StatusPending {
				counts = append(counts, fmt.Sprintf("%s=%d", s, p.ByStatus[s]))
			}
		}
		bar.label = string(p.Run.Status)
		bar.set(p.Done, max(p.Run.Total, 1), fmt.Sprintf("%.1f/s ETA %s %s", p.RecentPerSecond, eta(p), strings.Join(counts, " ")))
		if terminalRun(p.Run.Status) {
			bar.finish()
			fmt.Fprintf(a.stdout, "run %s %s: %d/%d done, %s\n", p.Run.ID, p.Run.Status, p.Done, p.Run.Total, strings.Join(counts, " "))
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
