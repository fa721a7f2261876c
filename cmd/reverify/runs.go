package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"reverify"
	"reverify/campaign"
	"reverify/notify"
	"reverify/report"
	"reverify/storage/postgres"
	"reverify/worker/fleet"
)

func (a *app) runsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List, watch and control runs: cancel, pause, resume, confirm, retry, report",
		Example: `  reverify runs list --label team=fraud --status running
  reverify runs show "$RUN" -o json | jq .by_status
  reverify runs watch "$RUN" --exit-status && echo done`,
	}
	cmd.AddCommand(a.runsListCommand(), a.runsShowCommand(), a.runsWatchCommand(), a.runsReportCommand(),
		a.runsRetryCommand(), a.runsConfirmCommand(), a.runsReconcileCommand(), a.runsPriorityCommand(), a.runsSetLimitsCommand(), a.runsDeleteCommand())
	for _, c := range []struct {
		use, short, example string
		do                  func(context.Context, *campaign.Service, string, reverify.Actor) (string, any, error)
	}{
		{"cancel", "Cancel a run: nothing more of it reaches the API; its pending objects become cancelled",
			`  reverify runs cancel "$RUN" --reason "wrong prefix"`,
			func(ctx context.Context, s *campaign.Service, id string, who reverify.Actor) (string, any, error) {
				r, n, err := s.Cancel(ctx, id, who)
				return fmt.Sprintf("run %s cancelled: %d pending objects will not be sent", r.ID, n),
					cancelledDoc{Run: report.NewRunDoc(r, notify.Redact), PendingCancelled: n}, err
			}},
		{"pause", "Pause a run: its tasks wait in the queue until it is resumed",
			`  reverify runs pause "$RUN" --reason "vendor maintenance window"`,
			func(ctx context.Context, s *campaign.Service, id string, who reverify.Actor) (string, any, error) {
				r, err := s.Pause(ctx, id, who)
				return fmt.Sprintf("run %s paused", r.ID), report.NewRunDoc(r, notify.Redact), err
			}},
		{"resume", "Resume a paused run",
			`  reverify runs resume "$RUN"`,
			func(ctx context.Context, s *campaign.Service, id string, who reverify.Actor) (string, any, error) {
				r, err := s.Resume(ctx, id, who)
				return fmt.Sprintf("run %s is %s again", r.ID, r.Status), report.NewRunDoc(r, notify.Redact), err
			}},
	} {
		var reason string
		sub := &cobra.Command{
			Use:               c.use + " RUN_ID",
			Short:             c.short,
			Example:           c.example,
			Args:              cobra.ExactArgs(1),
			ValidArgsFunction: a.runIDArg,
		}
		out := addOutputFlag(sub)
		sub.RunE = func(cmd *cobra.Command, args []string) error {
			return a.withCampaigns(cmd.Context(), needs{ledger: true}, func(s *campaign.Service) error {
				msg, doc, err := c.do(cmd.Context(), s, args[0], actor(reason))
				if err != nil {
					return err
				}
				return a.print(out, doc, msg)
			})
		}
		sub.Flags().StringVar(&reason, "reason", "", "why (kept in the run's status history)")
		cmd.AddCommand(sub)
	}
	return cmd
}

// cancelledDoc is what runs cancel prints with -o json|yaml.
type cancelledDoc struct {
	Run              report.RunDoc `json:"run"`
	PendingCancelled int64         `json:"pending_cancelled"` // objects that will not be sent
}

// print prints doc as out asks, or msg as a line of text.
func (a *app) print(out *outputFlag, doc any, msg string) error {
	if out.structured() {
		return writeDoc(a.stdout, out.value, doc)
	}
	_, err := fmt.Fprintln(a.stdout, msg)
	return err
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

// actor names the person running the command for the status history and
// the audit log: $REVERIFY_ACTOR, else user@host.
func actor(reason string) reverify.Actor {
	host, _ := os.Hostname()
	if who := os.Getenv("REVERIFY_ACTOR"); who != "" {
		return reverify.Actor{Who: who, Why: reason, Source: reverify.AuditFromCLI, From: host}
	}
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return reverify.Actor{Who: name + "@" + host, Why: reason, Source: reverify.AuditFromCLI, From: host}
}

func (a *app) runsListCommand() *cobra.Command {
	var f postgres.RunFilter
	var labels []string
	var status string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the newest runs, optionally by label and status",
		Long: `list prints the newest runs first, at most --limit of them; when more
match, it says so on standard error.`,
		Example: `  reverify runs list
  reverify runs list --label team=fraud --status failed --limit 100
  reverify runs list -o json | jq -r '.[] | select(.pending > 0) | .id'`,
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var err error
		if f.Labels, err = parseLabels(labels); err != nil {
			return err
		}
		if f.Limit < 1 {
			return usagef("invalid --limit %d: want at least 1", f.Limit)
		}
		if status != "" && !isRunStatus(status) {
			return usagef("invalid --status %q: want one of %s", status, strings.Join(runStatuses(), ", "))
		}
		f.Status = reverify.RunStatus(status)
		return a.withStore(cmd.Context(), func(store *postgres.Store) error {
			limit := f.Limit
			f.Limit++ // one more tells whether the list was cut
			runs, err := store.RunsWithCounts(cmd.Context(), f)
			if err != nil {
				return err
			}
			if len(runs) > limit {
				runs = runs[:limit]
				fmt.Fprintf(a.stderr, "reverify: showing the newest %d runs; more match (raise --limit)\n", limit)
			}
			if out.structured() {
				docs := make([]report.RunCountsDoc, len(runs))
				for i, r := range runs {
					docs[i] = report.NewRunCountsDoc(r, notify.Redact)
				}
				return writeDoc(a.stdout, out.value, docs)
			}
			lines := make([]report.RunLine, len(runs))
			for i, r := range runs {
				lines[i] = report.RunLine{Run: r.Run, Done: r.Done}
			}
			return report.WriteRuns(a.stdout, lines)
		})
	}
	cmd.Flags().IntVar(&f.Limit, "limit", 20, "how many runs, newest first")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "only runs with this label, key=value (repeatable: all must match)")
	cmd.Flags().StringVar(&status, "status", "", "only runs in this status: "+strings.Join(runStatuses(), ", "))
	_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(runStatuses(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runStatuses() []string {
	var out []string
	for _, s := range reverify.RunStatuses() {
		out = append(out, string(s))
	}
	return out
}

func isRunStatus(s string) bool {
	for _, st := range runStatuses() {
		if st == s {
			return true
		}
	}
	return false
}

func (a *app) runsShowCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show RUN_ID",
		Short: "Show a run: counts by status, pending, throughput, times, status history and notifications",
		Example: `  reverify runs show "$RUN"
  reverify runs show "$RUN" -o yaml
  reverify runs show "$RUN" -o json | jq '.by_status.failed // 0'`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.runIDArg,
	}
	out := addOutputFlag(cmd)
	var priceText string
	registerPrice(cmd.Flags(), &priceText)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		price, err := parsePrice(priceText)
		if err != nil {
			return err
		}
		return a.withStore(ctx, func(store *postgres.Store) error {
			p, err := store.Progress(ctx, args[0])
			if err != nil {
				return err
			}
			hist, err := store.History(ctx, p.Run.ID)
			if err != nil {
				return err
			}
			ds, err := store.RunDeliveries(ctx, p.Run.ID)
			if err != nil {
				return err
			}
			st, fleetOK := a.fleetStatus(ctx)
			fc, forecast, spend, err := a.runForecast(ctx, store, p, st, fleetOK, price)
			if err != nil {
				return err
			}
			if out.structured() {
				d := report.NewProgressDoc(p, hist, time.Now(), notify.Redact)
				if fleetOK {
					d.Fleet = report.NewFleetDoc(st)
				}
				for _, x := range ds {
					d.Notifications = append(d.Notifications, deliveryDoc(x))
				}
				return writeDoc(a.stdout, out.value, showDoc{ProgressDoc: d, Forecast: forecast, Spend: spend})
			}
			report.WriteProgress(a.stdout, p, time.Now())
			if fleetOK {
				report.WriteFleetStatus(a.stdout, st)
			}
			report.WriteRunCost(a.stdout, fc, forecast, spend)
			report.WriteHistory(a.stdout, hist)
			writeDeliveries(a.stdout, ds)
			return nil
		})
	}
	return cmd
}

// showDoc is a run as `runs show` prints it: its progress, the forecast
// of what it has left (ETA and cost) and its spend so far.
type showDoc struct {
	report.ProgressDoc
	Forecast *report.ForecastDoc `json:"forecast"`
	Spend    *report.SpendDoc    `json:"spend"`
}

func deliveryDoc(d postgres.DeliveryState) report.DeliveryDoc {
	doc := report.DeliveryDoc{Event: d.Event, Destination: destination(d), Attempts: d.Attempts, State: deliveryState(d),
		LastStatus: d.LastStatus, LastError: d.LastError, CreatedAt: d.CreatedAt.UTC(), DeliveredAt: d.DeliveredAt}
	if doc.DeliveredAt != nil {
		t := doc.DeliveredAt.UTC()
		doc.DeliveredAt = &t
	}
	return doc
}

// destination shows where a delivery goes without the webhook's secret.
func destination(d postgres.DeliveryState) string {
	return notify.Redact(string(d.Format) + ":" + d.URL)
}

func deliveryState(d postgres.DeliveryState) string {
	switch {
	case d.DeliveredAt != nil:
		return "delivered"
	case d.GivenUp:
		return "given_up"
	case d.Attempts == 0:
		return "pending"
	}
	return "retrying"
}

// writeDeliveries prints a run's webhook deliveries, when it has any.
func writeDeliveries(w io.Writer, ds []postgres.DeliveryState) {
	if len(ds) == 0 {
		return
	}
	fmt.Fprintln(w, "notifications:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, d := range ds {
		detail := fmt.Sprintf("%d attempts", d.Attempts)
		if d.LastError != "" {
			detail += ", last: " + d.LastError
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", reverify.FormatTime(d.CreatedAt), d.Event, destination(d),
			deliveryState(d), detail)
	}
	tw.Flush()
}

// fleetStatus reads why runs may not be moving; ok is false when Redis
// cannot be read.
func (a *app) fleetStatus(ctx context.Context) (st fleet.Status, ok bool) {
	opt, err := a.cfg.redis()
	if err != nil {
		return st, false
	}
	rdb, err := redisClient(opt)
	if err != nil {
		return st, false
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err = fleet.New(rdb, fleet.Config{}).Status(ctx)
	return st, err == nil
}

func (a *app) runsRetryCommand() *cobra.Command {
	var statuses []string
	var reason string
	cmd := &cobra.Command{
		Use:   "retry RUN_ID",
		Short: "Re-drive a run's objects with the given statuses (default failed)",
		Example: `  reverify runs retry "$RUN"
  reverify runs retry "$RUN" --status failed,not_found --reason "bucket restored"`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.runIDArg,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var sts []reverify.Status
		for _, s := range statuses {
			st, err := reverify.ParseStatus(s)
			if err != nil {
				return usagef("--status: %w", err)
			}
			sts = append(sts, st)
		}
		return a.withCampaigns(cmd.Context(), needs{ledger: true}, func(s *campaign.Service) error {
			run, n, err := s.Retry(cmd.Context(), args[0], sts, actor(reason))
			if err != nil {
				return err
			}
			return a.print(out, retriedDoc{Run: report.NewRunDoc(run, notify.Redact), Reset: n, Statuses: sts},
				fmt.Sprintf("run %s: %d objects (%s) re-driven; the worker fleet dispatches them", run.ID, n, strings.Join(statuses, ",")))
		})
	}
	cmd.Flags().StringSliceVar(&statuses, "status", []string{string(reverify.StatusFailed)}, "statuses to retry: failed, not_found, invalid_image, rejected, cancelled")
	cmd.Flags().StringVar(&reason, "reason", "retry", "why (kept in the run's status history)")
	return cmd
}

// retriedDoc is what runs retry prints with -o json|yaml.
type retriedDoc struct {
	Run      report.RunDoc     `json:"run"`
	Reset    int64             `json:"reset"` // objects pending again
	Statuses []reverify.Status `json:"statuses"`
}

func (a *app) runsConfirmCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:               "confirm RUN_ID",
		Short:             "Start a run that awaits confirmation (enqueue counted its billable answers)",
		Example:           `  reverify runs confirm "$RUN" --reason "approved in CHG-1234"`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.runIDArg,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.withCampaigns(cmd.Context(), needs{ledger: true}, func(s *campaign.Service) error {
			run, err := s.Confirm(cmd.Context(), args[0], actor(reason))
			if err != nil {
				return err
			}
			return a.print(out, report.NewRunDoc(run, notify.Redact),
				fmt.Sprintf("run %s confirmed: %d objects; the worker fleet dispatches them", run.ID, run.Total))
		})
	}
	cmd.Flags().StringVar(&reason, "reason", "confirmed", "why (kept in the run's status history)")
	return cmd
}

func (a *app) runsReconcileCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reconcile RUN_ID",
		Short: "Put back the tasks of a run's dispatched objects that have no result yet (after Redis lost its data)",
		Long: `reconcile puts back the task of every object of a run that the feeder has
dispatched and that has no terminal result. Tasks Redis still holds are not
duplicated (task IDs collide), so it is safe at any time. The feeder does the
same for every run it feeds when Redis loses its data, and every
--refill-every.`,
		Example:           `  reverify runs reconcile "$RUN"`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.runIDArg,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.withCampaigns(cmd.Context(), needs{ledger: true, queue: true}, func(s *campaign.Service) error {
			st, err := s.Reconcile(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.print(out, reconciledDoc{RunID: args[0], Dispatched: st.Dispatched, Enqueued: st.Enqueued, AlreadyQueued: st.Duplicate},
				fmt.Sprintf("run %s: %d dispatched objects without a result, %d tasks re-enqueued, %d already queued",
					args[0], st.Dispatched, st.Enqueued, st.Duplicate))
		})
	}
	return cmd
}

// reconciledDoc is what runs reconcile prints with -o json|yaml.
type reconciledDoc struct {
	RunID         string `json:"run_id"`
	Dispatched    int64  `json:"dispatched"` // dispatched objects without a result
	Enqueued      int64  `json:"enqueued"`   // tasks put back
	AlreadyQueued int64  `json:"already_queued"`
}

func (a *app) runsPriorityCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:     "priority RUN_ID high|normal|low",
		Short:   "Change a run's priority; its next tasks go to that priority's queue",
		Example: `  reverify runs priority "$RUN" high --reason "incident INC-42"`,
		Args:    cobra.ExactArgs(2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return priorities(), cobra.ShellCompDirectiveNoFileComp
			}
			return a.runIDArg(cmd, args, toComplete)
		},
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.withCampaigns(cmd.Context(), needs{ledger: true}, func(s *campaign.Service) error {
			run, err := s.SetPriority(cmd.Context(), args[0], reverify.Priority(args[1]), actor(reason))
			if err != nil {
				return err
			}
			return a.print(out, report.NewRunDoc(run, notify.Redact),
				fmt.Sprintf("run %s: priority %s, queue %s", run.ID, run.Priority, run.Queue))
		})
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (kept in the run's status history)")
	return cmd
}

func (a *app) runsSetLimitsCommand() *cobra.Command {
	var reason, maxRate string
	var maxInFlight int
	cmd := &cobra.Command{
		Use:   "set-limits RUN_ID [--max-rate R] [--max-in-flight N]",
		Short: "Change a run's own caps on its API calls while it goes (flags not given stay as they are; 0 or \"\" = no cap)",
		Example: `  reverify runs set-limits "$RUN" --max-rate 20 --max-in-flight 10 --reason "onboarding peak"
  reverify runs set-limits "$RUN" --max-rate "TZ=Europe/Berlin Mon-Fri 08:00-20:00=5"
  reverify runs set-limits "$RUN" --max-rate 0 --max-in-flight 0`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.runIDArg,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		f := cmd.Flags()
		if !f.Changed("max-rate") && !f.Changed("max-in-flight") {
			return usagef("set-limits needs --max-rate, --max-in-flight or both")
		}
		return a.withCampaigns(cmd.Context(), needs{ledger: true}, func(s *campaign.Service) error {
			run, err := s.Run(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			lim := run.Limits
			if f.Changed("max-rate") {
				if err := lim.ParseMaxRate(maxRate); err != nil {
					return usagef("--max-rate: %v", err)
				}
			}
			if f.Changed("max-in-flight") {
				if maxInFlight < 0 {
					return usagef("--max-in-flight %d: want 0 (no cap) or more", maxInFlight)
				}
				lim.MaxInFlight = maxInFlight
			}
			run, err = s.SetLimits(cmd.Context(), args[0], lim, actor(reason))
			if err != nil {
				return err
			}
			return a.print(out, report.NewRunDoc(run, notify.Redact), fmt.Sprintf("run %s: %s", run.ID, report.LimitsText(run.Limits)))
		})
	}
	cmd.Flags().StringVar(&maxRate, "max-rate", "", `API calls per second, or a rate schedule such as "TZ=Europe/Berlin 08:00-20:00=5" ("" or 0 = no cap)`)
	cmd.Flags().IntVar(&maxInFlight, "max-in-flight", 0, "API calls in flight at once (0 = no cap)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (kept in the audit log)")
	return cmd
}

func (a *app) runsDeleteCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:               "delete RUN_ID",
		Short:             "Delete an ended run and everything recorded under it: objects, API calls, reviews, history",
		Example:           `  reverify runs delete "$RUN"`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.runIDArg,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.withCampaigns(cmd.Context(), needs{ledger: true}, func(s *campaign.Service) error {
			n, err := s.Delete(cmd.Context(), args[0], actor(reason))
			if err != nil {
				return err
			}
			return a.print(out, deletedDoc{RunID: args[0], Objects: n}, fmt.Sprintf("run %s deleted with its %d objects", args[0], n))
		})
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (kept in the audit log)")
	return cmd
}

// deletedDoc is what runs delete prints with -o json|yaml.
type deletedDoc struct {
	RunID   string `json:"run_id"`
	Objects int64  `json:"objects"` // deleted with the run
}

func (a *app) runsWatchCommand() *cobra.Command {
	var every time.Duration
	var exitStatus bool
	cmd := &cobra.Command{
		Use:   "watch RUN_ID",
		Short: "Follow a run until it ends: a progress bar on a terminal, a line per interval otherwise",
		Long: `watch follows a run until it ends (or is interrupted). With --exit-status
it exits 1 when the run ends failed or cancelled (or watching is
interrupted first), so a script can wait for a run and act on how it ended.`,
		Example: `  reverify runs watch "$RUN"
  reverify runs watch "$RUN" --interval 30s --exit-status || page-oncall "run $RUN did not complete"`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.runIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if every <= 0 {
				return usagef("invalid --interval %s: want more than 0", every)
			}
			return a.withStore(cmd.Context(), func(store *postgres.Store) error {
				status, err := a.watch(cmd.Context(), store, args[0], every)
				if err != nil || !exitStatus {
					return err
				}
				switch status {
				case reverify.RunFailed, reverify.RunCancelled:
					return fmt.Errorf("run %s %s", args[0], status)
				case "":
					return fmt.Errorf("stopped watching run %s before it ended", args[0])
				}
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&every, "interval", 2*time.Second, "how often to refresh")
	cmd.Flags().BoolVar(&exitStatus, "exit-status", false, "exit 1 when the run ends failed or cancelled (0 when it completes)")
	return cmd
}

// watch follows a run until it ends and returns its final status ("" when
// interrupted before).
func (a *app) watch(ctx context.Context, store *postgres.Store, id string, every time.Duration) (reverify.RunStatus, error) {
	bar := newProgress(a.stdout, "", -1)
	bar.every = every
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		p, err := store.Progress(ctx, id)
		if err != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				bar.finish()
				return "", nil // interrupted while reading: as between reads
			}
			return "", err
		}
		counts := report.Counts(p.ByStatus)
		bar.label = string(p.Run.Status)
		bar.set(p.Done, max(p.Run.Total, 1), fmt.Sprintf("%.1f/s ETA %s %s", p.RecentPerSecond, report.ETA(p), counts))
		if p.Run.Status.Ended() {
			bar.finish()
			fmt.Fprintf(a.stdout, "run %s %s: %d/%d done, %s\n", p.Run.ID, p.Run.Status, p.Done, p.Run.Total, counts)
			return p.Run.Status, nil
		}
		select {
		case <-ctx.Done():
			bar.finish()
			if errors.Is(ctx.Err(), context.Canceled) {
				return "", nil
			}
			return "", ctx.Err()
		case <-tick.C:
		}
	}
}
