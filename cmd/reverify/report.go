package main

import (
	"context"
	"fmt"
	"reverify"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"reverify/campaign"
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
		Long: `report prints the SQL views analysts query with psql (see docs/reporting.md):
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
			return a.withCampaigns(cmd.Context(), needs{ledger: true}, func(s *campaign.Service) error {
				where, err := s.WriteReport(cmd.Context(), args[0], to)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, where)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "directory or s3://bucket/prefix (default: the run's --report-to, else ./"+campaign.DefaultReportDir+")")
	return cmd
}

// reportWriter writes completion reports, making an S3 client only for
// s3:// destinations, so local reports need no S3 settings.
type reportWriter struct {
	a     *app
	store *postgres.Store
}

func (w reportWriter) Write(ctx context.Context, runID, dest string) (string, error) {
	var up report.PutObjectAPI
	if strings.HasPrefix(dest, "s3://") {
		client, err := w.a.s3Client(ctx)
		if err != nil {
			return "", err
		}
		up = client
	}
	return report.NewWriter(w.store, up).Write(ctx, runID, dest)
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
