package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reverify"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"reverify/campaign"
	"reverify/report"
	"reverify/storage/postgres"
	"reverify/tasks"
)

func (a *app) reportCommand() *cobra.Command {
	var runID, view, dir, since, until string
	var limit int
	cmd := &cobra.Command{
		Use:   "report [--run ID] [--view NAME|all] [-o table|csv|json|yaml] [--out DIR]",
		Short: "Print the reporting views: run summary, score histogram, errors by code, score drift, API usage",
		Long: `report prints the SQL views analysts query with psql (see docs/reporting.md):
` + strings.Join(postgres.Views, ", ") + `.
Without --view it prints run_summary, score_histogram and errors_by_code for
--run (or every run), and api_usage_daily.

One view prints as a table, CSV, or a JSON/YAML list of rows; several views
print as tables one after another, or as one JSON/YAML document whose keys
are the views. CSV holds one table: several views need --out DIR, which
writes one file per view (DIR/<view>.csv; any format). A view cut at --limit
is said on standard error.

--view reviews lists every review decision (who, when, about which ETag and
score, and a second reviewer's confirmation); --since and --until cut it to
a time window (RFC 3339, or a date meaning its 00:00 UTC).`,
		Example: `  reverify report --run "$RUN"
  reverify report --view api_usage_daily -o csv > usage.csv
  reverify report --view duplicate_images -o csv > duplicates.csv
  reverify report --view all -o csv --out reports/
  reverify report --view reviews --since 2026-11-01 --until 2026-12-01 -o csv > reviews.csv
  reverify report --run "$RUN" -o json | jq '.run_summary[0].scored'`,
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(cmd, outTable, outCSV, outJSON, outYAML)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		views := []string{"run_summary", "score_histogram", "errors_by_code", "api_usage_daily"}
		switch view {
		case "":
		case "all":
			views = postgres.Views
		default:
			if !slices.Contains(postgres.Views, view) {
				return usagef("invalid --view %q: want all or one of %s", view, strings.Join(postgres.Views, ", "))
			}
			views = []string{view}
		}
		if out.value == outCSV && len(views) > 1 && dir == "" {
			return usagef("CSV holds one view: choose one with --view, or write one file per view with --out DIR")
		}
		if limit < 0 {
			return usagef("invalid --limit %d: want 0 (all) or more", limit)
		}
		from, err := reportTime("--since", since)
		if err != nil {
			return err
		}
		to, err := reportTime("--until", until)
		if err != nil {
			return err
		}
		if !from.IsZero() || !to.IsZero() {
			for _, v := range views {
				if !postgres.ViewHasWindow(v) {
					return usagef("--since and --until cut --view reviews only; %s has no time to cut", v)
				}
			}
			if !from.IsZero() && !to.IsZero() && !from.Before(to) {
				return usagef("--since %s is not before --until %s", since, until)
			}
		}
		return a.withStore(ctx, func(store *postgres.Store) error {
			tables := make([]postgres.Table, len(views))
			for i, v := range views {
				t, err := store.ViewWindow(ctx, v, runID, from, to, limit+min(limit, 1)) // one more tells whether the view was cut
				if err != nil {
					return err
				}
				if limit > 0 && len(t.Rows) > limit {
					t.Rows = t.Rows[:limit]
					fmt.Fprintf(a.stderr, "reverify: %s cut at --limit %d rows; more match (--limit 0 prints all)\n", v, limit)
				}
				tables[i] = t
			}
			if dir != "" {
				return a.writeViews(dir, out.value, tables)
			}
			return writeViews(a.stdout, out.value, tables)
		})
	}
	f := cmd.Flags()
	f.StringVar(&runID, "run", "", "only this run")
	f.Var(out, "format", "same as -o (older name)")
	_ = f.MarkHidden("format")
	f.StringVar(&view, "view", "", "one view ("+strings.Join(postgres.Views, ", ")+") or all")
	f.IntVar(&limit, "limit", 1000, "at most this many rows per view (0 = all)")
	f.StringVar(&since, "since", "", "with --view reviews: decisions at or after this time (RFC 3339 or YYYY-MM-DD, UTC)")
	f.StringVar(&until, "until", "", "with --view reviews: decisions before this time (RFC 3339 or YYYY-MM-DD, UTC)")
	f.StringVar(&dir, "out", "", "write each view to a file of its own in this directory, e.g. DIR/run_summary.csv")
	_ = cmd.RegisterFlagCompletionFunc("run", a.completeRunID)
	_ = cmd.RegisterFlagCompletionFunc("view", cobra.FixedCompletions(append([]string{"all"}, postgres.Views...), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("out", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveFilterDirs
	})
	return cmd
}

// reportTime parses a --since or --until: RFC 3339, or a date (00:00 UTC).
func reportTime(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("invalid %s %q: want RFC 3339 (2026-11-25T08:00:00Z) or a date (2026-11-25)", flag, v)
}

// writeViews prints tables in format: one view alone as it is; several as
// tables one after another, or one document keyed by view.
func writeViews(w io.Writer, format string, tables []postgres.Table) error {
	switch {
	case len(tables) == 1 && (format == outJSON || format == outYAML):
		return writeDoc(w, format, report.TableDoc(tables[0]))
	case format == outJSON || format == outYAML:
		doc := make(map[string][]map[string]any, len(tables))
		for _, t := range tables {
			doc[t.Name] = report.TableDoc(t)
		}
		return writeDoc(w, format, doc)
	case len(tables) == 1:
		return report.WriteTable(w, format, tables[0])
	}
	for i, t := range tables {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "== %s\n", t.Name)
		if err := report.WriteTable(w, format, t); err != nil {
			return err
		}
	}
	return nil
}

// writeViews writes each table to dir/<view>.<format> and prints the
// files' paths.
func (a *app) writeViews(dir, format string, tables []postgres.Table) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	ext := format
	if format == outTable {
		ext = "txt"
	}
	for _, t := range tables {
		path := filepath.Join(dir, t.Name+"."+ext)
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		err = writeViews(f, format, []postgres.Table{t})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		fmt.Fprintln(a.stdout, path)
	}
	return nil
}

func (a *app) runsReportCommand() *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "report RUN_ID [--to DIR|s3://bucket/prefix]",
		Short: "Write a run's completion report: results.csv (one line per object) and summary.json",
		Example: `  reverify runs report "$RUN" --to ./reports
  reverify runs report "$RUN" --to s3://kyc-reports/reverify/`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.runIDArg,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.withCampaigns(cmd.Context(), needs{ledger: true}, func(s *campaign.Service) error {
			where, err := s.WriteReport(cmd.Context(), args[0], to, actor("runs report"))
			if err != nil {
				return err
			}
			return a.print(out, struct {
				RunID   string `json:"run_id"`
				Results string `json:"results"` // where results.csv went; summary.json is beside it
			}{args[0], where}, where)
		})
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
