package main

import (
	"context"
	"fmt"
	"log/slog"
	"reverify"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"reverify/report"
	"reverify/storage/postgres"
	"reverify/tasks"
)

func (a *app) reportCommand() *cobra.Command {
	var runID, format, view string
	var limit int
	cmd := &cobra.Command{
		Use:   "report [--run ID] [--view NAME|all] [--format table|csv|json]",
		Short: "Print the reporting views: run summary, score histogram, errors by code, score drift, API usage",
		Long: `report prints the SQL views analysts query with psql (see README "Reporting"):
` + strings.Join(postgres.Views, ", ") + `.
Without --view it prints run_summary, score_histogram and errors_by_code for
--run (or every run), and api_usage_daily.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			views := []string{"run_summary", "score_histogram", "errors_by_code", "api_usage_daily"}
			switch view {
			case "":
			case "all":
				views = postgres.Views
			default:
				views = []string{view}
			}
			return a.withStore(ctx, func(store *postgres.Store) error {
				for i, v := range views {
					t, err := store.View(ctx, v, runID, limit)
					if err != nil {
						return err
					}
					if format == report.FormatTable && len(views) > 1 {
						if i > 0 {
							fmt.Fprintln(a.stdout)
						}
						fmt.Fprintf(a.stdout, "== %s\n", v)
					}
					if format == report.FormatJSON && len(views) > 1 {
						fmt.Fprintf(a.stdout, "{\"view\": %q, \"rows\":\n", v)
					}
					if err := report.WriteTable(a.stdout, format, t); err != nil {
						return err
					}
					if format == report.FormatJSON && len(views) > 1 {
						fmt.Fprintln(a.stdout, "}")
					}
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&runID, "run", "", "only this run")
	f.StringVar(&format, "format", report.FormatTable, "table, csv or json")
	f.StringVar(&view, "view", "", "one view ("+strings.Join(postgres.Views, ", ")+") or all")
	f.IntVar(&limit, "limit", 1000, "at most this many rows per view (0 = all)")
	return cmd
}

func (a *app) runsReportCommand() *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "report RUN_ID [--to DIR|s3://bucket/prefix]",
		Short: "Write a run's completion report: results.csv (one line per object) and summary.json",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(store *postgres.Store) error {
				run, err := store.Run(ctx, args[0])
				if err != nil {
					return err
				}
				dest := to
				if dest == "" {
					dest = run.ReportTo
				}
				if dest == "" {
					dest = "reports"
				}
				where, err := a.writeRunReport(ctx, store, run.ID, dest)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, where)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "directory or s3://bucket/prefix (default: the run's --report-to, else ./reports)")
	return cmd
}

// writeRunReport writes a run's completion report to dest and says where
// it went; an S3 client is made only for s3:// destinations.
func (a *app) writeRunReport(ctx context.Context, store *postgres.Store, runID, dest string) (string, error) {
	var w *report.Writer
	if strings.HasPrefix(dest, "s3://") {
		client, err := a.s3Client(ctx)
		if err != nil {
			return "", err
		}
		w = report.NewWriter(store, client)
	} else {
		w = report.NewWriter(store, nil)
	}
	return w.Write(ctx, runID, dest)
}

// writeReport writes the completion report of a run that just ended by a
// command (cancel), when the run asked for one.
func (a *app) writeReport(ctx context.Context, store *postgres.Store, run reverify.Run) {
	if run.ReportTo == "" {
		return
	}
	where, err := a.writeRunReport(ctx, store, run.ID, run.ReportTo)
	if err == nil {
		fmt.Fprintf(a.stderr, "completion report: %s\n", where)
		return
	}
	fmt.Fprintf(a.stderr, "completion report of run %s not written (write it with `reverify runs report %s`): %v\n", run.ID, run.ID, err)
}

// runEnded writes the completion report of a run a worker ended, when the
// run asked for one (--report-to).
func (a *app) runEnded(store *postgres.Store, log *slog.Logger) func(ctx context.Context, runID, status string) {
	return func(ctx context.Context, runID, status string) {
		run, err := store.Run(ctx, runID)
		if err != nil || run.ReportTo == "" {
			return
		}
		where, err := a.writeRunReport(ctx, store, run.ID, run.ReportTo)
		if err == nil {
			log.InfoContext(ctx, "completion report written", "run_id", run.ID, "status", status, "report", where)
			return
		}
		log.ErrorContext(ctx, "completion report not written; write it with `reverify runs report`", "run_id", run.ID, "err", err)
	}
}

// planner returns the run:plan handler, listing with its own S3 client.
func (a *app) planner(ctx context.Context, store *postgres.Store, queue tasks.Enqueuer, log *slog.Logger) (*tasks.Planner, error) {
	objs, err := a.openObjects(ctx)
	if err != nil {
		return nil, err
	}
	return tasks.NewPlanner(store, objs, queue, log), nil
}

// defaultQueues are the weighted priority queues of tasks.DefaultQueue.
func defaultQueues() []string {
	var out []string
	for q, w := range reverify.PriorityQueues(tasks.DefaultQueue) {
		out = append(out, fmt.Sprintf("%s:%d", q, w))
	}
	sort.Strings(out)
	return out
}
