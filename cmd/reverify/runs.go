package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"reverify/storage/postgres"
)

func (a *app) runsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "runs", Short: "List runs and show their progress"}
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the newest runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runsList(cmd.Context(), limit)
		},
	}
	list.Flags().IntVar(&limit, "limit", 20, "how many runs")
	show := &cobra.Command{
		Use:   "show RUN_ID",
		Short: "Show a run: counts by status, pending, throughput and times",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := a.openStore(cmd.Context(), 2)
			if err != nil {
				return err
			}
			defer store.Close()
			p, err := store.Progress(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			writeProgress(a.stdout, p, time.Now())
			return nil
		},
	}
	cmd.AddCommand(list, show)
	return cmd
}

func (a *app) runsList(ctx context.Context, limit int) error {
	store, err := a.openStore(ctx, 2)
	if err != nil {
		return err
	}
	defer store.Close()
	runs, err := store.Runs(ctx, limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tDONE\tTOTAL\tCREATED\tNAME")
	for _, r := range runs {
		p, err := store.Progress(ctx, r.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", r.ID, r.Status, p.Done, r.Total,
			r.CreatedAt.Local().Format("2006-01-02 15:04"), r.Name)
	}
	return tw.Flush()
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

func writeProgress(w io.Writer, p postgres.Progress, now time.Time) {
	r := p.Run
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "run\t%s\n", r.ID)
	fmt.Fprintf(tw, "name\t%s\n", r.Name)
	fmt.Fprintf(tw, "status\t%s\n", r.Status)
	fmt.Fprintf(tw, "source\t%s\n", string(r.Source))
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
	eta := "-"
	if p.Pending > 0 && p.RecentPerSecond > 0 {
		eta = (time.Duration(float64(p.Pending)/p.RecentPerSecond) * time.Second).String()
	}
	if r.FinishedAt == nil {
		fmt.Fprintf(tw, "throughput\t%.1f images/s overall, %.1f/s over the last minute, ETA %s\n", rate, p.RecentPerSecond, eta)
	} else {
		fmt.Fprintf(tw, "throughput\t%.1f images/s\n", rate)
	}
	fmt.Fprintf(tw, "paid calls\t%d\n", p.PaidCalls)
	if p.ByStatus[postgres.StatusScored] > 0 {
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

// statusOrder lists statuses in pipeline order, unknown ones last.
func statusOrder(by map[string]int64) []string {
	order := []string{postgres.StatusPending, postgres.StatusScored, postgres.StatusRejected,
		postgres.StatusInvalidImage, postgres.StatusNotFound, postgres.StatusFailed}
	rank := map[string]int{}
	for i, s := range order {
		rank[s] = i + 1
	}
	var out []string
	for s := range by {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		ri, rj := rank[out[i]], rank[out[j]]
		if ri == 0 {
			ri = 99
		}
		if rj == 0 {
			rj = 99
		}
		if ri != rj {
			return ri < rj
		}
		return strings.Compare(out[i], out[j]) < 0
	})
	return out
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}
