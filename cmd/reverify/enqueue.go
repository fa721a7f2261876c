package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"reverify"
	"reverify/campaign"
	"reverify/notify"
	"reverify/report"
	"reverify/tasks"
)

// enqueueFlags are enqueue's flags; spec turns them into a campaign.Spec.
type enqueueFlags struct {
	bucket, prefix, manifest, format, inventory, name, queue, runID string
	dryRun, inWorker                                                bool
	maxObjectBytes                                                  int64
	suffixes, labels, notify                                        []string
	priority, reportTo                                              string
	confirm                                                         bool
	confirmAbove                                                    int64
	failPercent                                                     float64
	failMinDone, failCount                                          int64
	modifiedAfter, modifiedBefore                                   string
	minSize, maxSize                                                int64
	notVerifiedSince                                                time.Duration
	reuseResults                                                    bool
	output                                                          *outputFlag
	cost                                                            costFlags
	maxRate                                                         string
	maxInFlight                                                     int
}

func (a *app) enqueueCommand() *cobra.Command {
	var o enqueueFlags
	cmd := &cobra.Command{
		Use:   "enqueue --bucket B [--prefix P] | --manifest FILE|- | --inventory MANIFEST",
		Short: "Start a run over a bucket prefix, a manifest or an S3 Inventory; prints the run ID",
		Long: `enqueue records every object of the source as a pending row of a new run in
PostgreSQL and starts the run; the worker fleet's feeder then dispatches its
objects to the task queue, a bounded window at a time. The run ID is printed
on standard output. An interrupted enqueue is finished with --run ID, which
adds only what is missing.

Manifests are CSV lines "bucket,key[,version]" or one key per line (with
--bucket); "-" reads standard input.

With -o json or yaml it prints the run (or, with --dry-run, the count) as
one document instead of the run ID.`,
		Example: `  reverify enqueue --bucket kyc --prefix selfies/2026/ --suffix .jpg,.png --dry-run
  RUN=$(reverify enqueue --bucket kyc --prefix selfies/ --label team=fraud --priority high)
  reverify enqueue --manifest objects.csv --confirm --notify slack:https://hooks.slack.com/services/T/B/X
  aws s3 ls s3://kyc/selfies/ | awk '{print $4}' | reverify enqueue --bucket kyc --manifest -
  reverify enqueue --bucket kyc --prefix selfies/ --dry-run -o json | jq .would_send`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.enqueue(cmd.Context(), o) },
	}
	o.register(cmd.Flags(), &a.envErrs)
	registerPrice(cmd.Flags(), &o.cost.price)
	o.cost.registerFleet(cmd.Flags(), &a.envErrs)
	o.output = addOutputFlag(cmd)
	_ = cmd.RegisterFlagCompletionFunc("run", a.completeRunID)
	_ = cmd.RegisterFlagCompletionFunc("priority", cobra.FixedCompletions(priorities(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func priorities() []string {
	var out []string
	for _, p := range reverify.Priorities() {
		out = append(out, string(p))
	}
	return out
}

func (o *enqueueFlags) register(f *pflag.FlagSet, e *envErrors) {
	f.StringVar(&o.bucket, "bucket", "", "bucket to list, or the bucket of a one-key-per-line manifest")
	f.StringVar(&o.prefix, "prefix", "", "key prefix to list")
	f.StringVar(&o.manifest, "manifest", "", "manifest file of objects, or - for standard input")
	f.StringVar(&o.format, "manifest-format", "auto", "manifest format: auto, csv (bucket,key[,version]) or lines (one key per line)")
	f.StringVar(&o.inventory, "inventory", "", "S3 Inventory manifest.json (a file or s3://bucket/key); data files are read from its destination bucket")
	f.StringVar(&o.name, "name", "", "name of the run (default: the source)")
	f.StringSliceVar(&o.suffixes, "suffix", nil, "only keys ending in one of these, e.g. .jpg,.jpeg,.png (case-insensitive)")
	f.BoolVar(&o.dryRun, "dry-run", false, "count what would be sent to the API, its cost and duration, and stop")
	f.StringVar(&o.queue, "queue", tasks.DefaultQueue, "asynq queue for the run's tasks")
	f.StringVar(&o.runID, "run", "", "add to an existing run instead of creating one (finishes an interrupted enqueue)")
	f.Int64Var(&o.maxObjectBytes, "max-object-bytes", reverify.DefaultMaxObjectBytes, "objects larger than this are not sent (dry-run count)")
	f.StringArrayVar(&o.labels, "label", nil, "label the run, key=value (repeatable); search with runs list --label")
	f.StringVar(&o.priority, "priority", string(reverify.PriorityNormal), "high, normal or low: high runs overtake bulk ones (weighted queues)")
	f.BoolVar(&o.confirm, "confirm", false, "record the objects, print the billable answers to expect, and wait for: reverify runs confirm ID")
	f.StringArrayVar(&o.notify, "notify", nil,
		"webhook told of the run's events: URL (JSON signed with the workers' REVERIFY_NOTIFY_SECRET) or slack:URL (repeatable; stored with the run: treat as a secret)")
	e.int64Setting(f, &o.confirmAbove, "confirm-above", "REVERIFY_CONFIRM_ABOVE", 0,
		"runs with more objects than this wait for runs confirm (0 = never)")
	f.Float64Var(&o.failPercent, "fail-percent", 50, "the run fails when more than this % of finished objects failed (failed, not_found) ...")
	f.Int64Var(&o.failMinDone, "fail-min-done", 1000, "... once at least this many objects are finished")
	f.Int64Var(&o.failCount, "fail-count", 0, "the run fails once this many objects failed, whatever the % (0 = off)")
	stringSetting(f, &o.reportTo, "report-to", "REVERIFY_REPORT_TO", "", "write the completion report here when the run ends: a directory or s3://bucket/prefix")
	f.BoolVar(&o.inWorker, "in-worker", false, "list --bucket/--prefix inside the worker fleet (a resumable run:plan task) and return at once")
	f.StringVar(&o.modifiedAfter, "modified-after", "", "only objects last modified after this (RFC 3339, YYYY-MM-DD, or a duration ago such as 24h)")
	f.StringVar(&o.modifiedBefore, "modified-before", "", "only objects last modified before this (same forms)")
	f.Int64Var(&o.minSize, "min-size", 0, "only objects of at least this many bytes")
	f.Int64Var(&o.maxSize, "max-size", 0, "only objects of at most this many bytes (0 = no limit)")
	f.DurationVar(&o.notVerifiedSince, "not-verified-since", 0, "skip objects with a scored result newer than this, e.g. 720h (saves API calls)")
	f.BoolVar(&o.reuseResults, "reuse-results", false,
		"with --not-verified-since: an object whose bytes another run scored within that time takes that result, without a call (docs/dedupe.md)")
	f.StringVar(&o.maxRate, "max-rate", "", `this run's own cap on API calls per second, below the fleet's: a number, or a rate schedule such as "TZ=Europe/Berlin 08:00-20:00=5" (docs/rate.md; change it with runs set-limits)`)
	f.IntVar(&o.maxInFlight, "max-in-flight", 0, "this run's own cap on API calls in flight at once (0 = none)")
}

// spec checks the flags and turns them into a run's spec.
func (o enqueueFlags) spec(now time.Time) (campaign.Spec, error) {
	switch {
	case o.manifest == "" && o.inventory == "" && o.bucket == "":
		return campaign.Spec{}, usagef("enqueue needs --bucket (to list), --manifest or --inventory")
	case o.manifest != "" && o.prefix != "":
		return campaign.Spec{}, usagef("--prefix lists a bucket; it cannot be combined with --manifest")
	case o.inventory != "" && (o.manifest != "" || o.prefix != ""):
		return campaign.Spec{}, usagef("--inventory cannot be combined with --manifest or --prefix")
	case o.queue == "":
		return campaign.Spec{}, usagef("--queue must not be empty")
	case o.inWorker && (o.manifest != "" || o.inventory != "" || o.dryRun || o.runID != ""):
		return campaign.Spec{}, usagef("--in-worker lists a --bucket/--prefix in the worker fleet; it cannot be combined with --manifest, --inventory, --dry-run or --run")
	}
	sp := campaign.Spec{
		Name: o.name, Queue: o.queue, Priority: reverify.Priority(o.priority), ReportTo: o.reportTo,
		MaxObjectBytes: o.maxObjectBytes, ManifestFormat: tasks.ManifestFormat(o.format), InFleet: o.inWorker,
		Gate: campaign.Gate{Confirm: o.confirm, Above: o.confirmAbove}, Notify: o.notify,
		Threshold: &reverify.Threshold{Percent: o.failPercent, MinDone: o.failMinDone, Count: o.failCount},
		Filters: tasks.Filters{Suffixes: o.suffixes, MinSize: o.minSize, MaxSize: o.maxSize,
			NotVerifiedSince: reverify.Duration(o.notVerifiedSince)},
		ReuseResults: o.reuseResults,
		Actor:        actor("enqueue"),
	}
	switch {
	case o.inventory != "":
		sp.Source = reverify.Source{Kind: reverify.SourceInventory, Manifest: o.inventory}
	case o.manifest != "":
		sp.Source = reverify.Source{Kind: reverify.SourceManifest, Manifest: o.manifest, Bucket: o.bucket}
	default:
		sp.Source = reverify.Source{Kind: reverify.SourcePrefix, Bucket: o.bucket, Prefix: o.prefix}
	}
	var err error
	if sp.Labels, err = parseLabels(o.labels); err != nil {
		return sp, err
	}
	if sp.Limits, err = parseLimits(o.maxRate, o.maxInFlight); err != nil {
		return sp, err
	}
	if sp.Filters.ModifiedAfter, err = parseWhen("modified-after", o.modifiedAfter, now); err != nil {
		return sp, err
	}
	if sp.Filters.ModifiedBefore, err = parseWhen("modified-before", o.modifiedBefore, now); err != nil {
		return sp, err
	}
	return sp, sp.Validate()
}

// dryRunDoc is a dry run's count with its cost and duration.
type dryRunDoc struct {
	report.EstimateDoc
	Forecast *report.ForecastDoc `json:"forecast"`
}

func (a *app) enqueue(ctx context.Context, o enqueueFlags) error {
	sp, err := o.spec(time.Now())
	if err != nil {
		return err
	}
	if _, err := parsePrice(o.cost.price); err != nil {
		return err // before reading the source, which may be long
	}
	if _, err := o.cost.flagFleet(); err != nil {
		return err
	}
	// A dry run reads only the source, and the ledger only to skip recent results.
	needLedger := !o.dryRun || sp.Filters.NotVerifiedSince > 0
	svc, closeAll, err := a.campaigns(ctx, needs{ledger: needLedger, queue: sp.InFleet, objects: !sp.InFleet})
	if err != nil {
		return err
	}
	defer closeAll()
	if sp.InFleet {
		run, err := svc.Create(ctx, sp)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "run %s: the worker fleet lists %s (follow with `reverify runs watch %s`)\n", run.ID, sp.Source, run.ID)
		return a.printEnqueued(o.output, enqueuedDoc{Run: report.NewRunDoc(run, notify.Redact)})
	}
	var bad int64
	in, closeIn, err := a.sourceInput(sp, func(b tasks.BadLine) {
		if bad++; bad <= 20 {
			fmt.Fprintf(a.stderr, "%s line %d skipped: %s\n", sp.Source.Kind, b.Line, b.Reason)
		}
	})
	if err != nil {
		return err
	}
	defer closeIn()
	src, err := svc.Source(ctx, sp.Source, in)
	if err != nil {
		return err
	}
	if o.dryRun {
		e, err := svc.Estimate(ctx, sp, src)
		if err != nil {
			return err
		}
		fc, doc, err := a.dryRunForecast(ctx, e, o.cost)
		if err != nil {
			return err
		}
		if o.output.structured() {
			return writeDoc(a.stdout, o.output.value, dryRunDoc{EstimateDoc: report.NewEstimateDoc(e), Forecast: doc})
		}
		report.WriteEstimate(a.stdout, e, time.Duration(sp.Filters.NotVerifiedSince))
		report.WriteForecast(a.stdout, doc, fc)
		return nil
	}
	var run reverify.Run
	if o.runID != "" {
		run, err = svc.Run(ctx, o.runID)
	} else {
		run, err = svc.Create(ctx, sp)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "run %s: enqueuing %s into queue %q\n", run.ID, run.Name, run.Queue)
	bar := newProgress(a.stderr, "recorded", -1)
	f, err := svc.Fill(ctx, run, src, campaign.FillOptions{Actor: sp.Actor, Progress: func(s tasks.Stats) {
		bar.set(s.Recorded, -1, fmt.Sprintf("of %d seen", s.Seen))
	}})
	bar.finish()
	if err != nil {
		return err
	}
	if f.Held {
		fmt.Fprintf(a.stderr, "run %s: %d objects recorded (%d filtered out, %d scored recently): about %d billable answers.\n"+
			"It waits for confirmation: reverify runs confirm %s   (or: reverify runs cancel %s)\n",
			run.ID, f.Run.Total, f.Filtered, f.Recent, f.Run.Total, run.ID, run.ID)
	} else {
		fmt.Fprintf(a.stderr, "run %s: %d objects seen, %d filtered out, %d recorded (%d in the run)", run.ID, f.Seen, f.Filtered, f.Recorded, f.Run.Total)
		if bad > 0 {
			fmt.Fprintf(a.stderr, ", %d lines skipped", bad)
		}
		fmt.Fprintf(a.stderr, "; the worker fleet dispatches them (follow with `reverify runs watch %s`)\n", run.ID)
	}
	return a.printEnqueued(o.output, enqueuedDoc{Run: report.NewRunDoc(f.Run, notify.Redact), Seen: f.Seen,
		Filtered: f.Filtered, Recorded: f.Recorded, RecentlyScored: f.Recent, SkippedLines: bad, AwaitsConfirmation: f.Held})
}

// enqueuedDoc is what enqueue prints with -o json|yaml.
type enqueuedDoc struct {
	Run                report.RunDoc `json:"run"`
	Seen               int64         `json:"seen"`            // objects the source listed
	Filtered           int64         `json:"filtered"`        // left out by the filters
	Recorded           int64         `json:"recorded"`        // added to the run by this enqueue
	RecentlyScored     int64         `json:"recently_scored"` // left out by --not-verified-since
	SkippedLines       int64         `json:"skipped_lines"`   // manifest lines that did not parse
	AwaitsConfirmation bool          `json:"awaits_confirmation"`
}

// printEnqueued prints the run ID, or the whole document.
func (a *app) printEnqueued(out *outputFlag, d enqueuedDoc) error {
	if out.structured() {
		return writeDoc(a.stdout, out.value, d)
	}
	_, err := fmt.Fprintln(a.stdout, d.Run.ID)
	return err
}

// sourceInput opens what a source reads from this machine: a manifest file
// or standard input, or a local inventory manifest.json.
func (a *app) sourceInput(sp campaign.Spec, bad func(tasks.BadLine)) (campaign.Input, func(), error) {
	in := campaign.Input{Format: sp.ManifestFormat, Bad: bad}
	path, flag := sp.Source.Manifest, "--manifest"
	if sp.Source.Kind == reverify.SourceInventory {
		flag = "--inventory"
	}
	switch {
	case sp.Source.Kind == reverify.SourcePrefix || strings.HasPrefix(path, "s3://"):
		return in, func() {}, nil
	case path == "-":
		in.Manifest = a.stdin
		return in, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return in, nil, fmt.Errorf("%s: %w", flag, err)
	}
	in.Manifest = f
	return in, func() { f.Close() }, nil
}

// parseWhen reads an absolute time or a duration before now.
func parseWhen(flag, s string, now time.Time) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		t := now.Add(-d)
		return &t, nil
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return &t, nil
		}
	}
	return nil, fmt.Errorf("invalid --%s %q: want RFC 3339, YYYY-MM-DD or a duration such as 24h", flag, s)
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

// parseLimits reads --max-rate and --max-in-flight.
func parseLimits(maxRate string, maxInFlight int) (reverify.RunLimits, error) {
	lim := reverify.RunLimits{MaxInFlight: maxInFlight}
	if err := lim.ParseMaxRate(maxRate); err != nil {
		return lim, usagef("--max-rate: %v", err)
	}
	if maxInFlight < 0 {
		return lim, usagef("--max-in-flight %d: want 0 (no cap) or more", maxInFlight)
	}
	return lim, nil
}
