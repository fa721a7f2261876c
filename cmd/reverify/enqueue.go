package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reverify"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"reverify/storage/postgres"
	"reverify/tasks"
)

type enqueueOptions struct {
	Bucket         string        `json:"bucket,omitempty"`
	Prefix         string        `json:"prefix,omitempty"`
	Manifest       string        `json:"manifest,omitempty"`
	ManifestFormat string        `json:"manifest_format,omitempty"`
	Inventory      string        `json:"inventory,omitempty"`
	Filters        tasks.Filters `json:"filters"`
	MaxObjectBytes int64         `json:"max_object_bytes"`
	name           string
	queue          string
	runID          string
	dryRun         bool
	concurrency    int
	campaign       campaignFlags
}

func (a *app) enqueueCommand() *cobra.Command {
	var o enqueueOptions
	cmd := &cobra.Command{
		Use:   "enqueue --bucket B [--prefix P] | --manifest FILE|-",
		Short: "Start a run over a bucket prefix or a manifest; prints the run ID",
		Long: `enqueue records every object of the source as a pending row of a new run in
PostgreSQL, then queues one verify task per object. The run ID is printed on
standard output. An interrupted enqueue is finished with --run ID, which adds
only what is missing.

Manifests are CSV lines "bucket,key[,version]" or one key per line (with
--bucket); "-" reads standard input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.enqueue(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Bucket, "bucket", "", "bucket to list, or the bucket of a one-key-per-line manifest")
	f.StringVar(&o.Prefix, "prefix", "", "key prefix to list")
	f.StringVar(&o.Manifest, "manifest", "", "manifest file of objects, or - for standard input")
	f.StringVar(&o.ManifestFormat, "manifest-format", "auto", "manifest format: auto, csv (bucket,key[,version]) or lines (one key per line)")
	f.StringVar(&o.name, "name", "", "name of the run (default: the source)")
	f.StringSliceVar(&o.Filters.Suffixes, "suffix", nil, "only keys ending in one of these, e.g. .jpg,.jpeg,.png (case-insensitive)")
	f.BoolVar(&o.dryRun, "dry-run", false, "count what would be sent to the API and stop")
	f.StringVar(&o.queue, "queue", tasks.DefaultQueue, "asynq queue for the run's tasks")
	f.StringVar(&o.runID, "run", "", "add to an existing run instead of creating one (finishes an interrupted enqueue)")
	f.Int64Var(&o.MaxObjectBytes, "max-object-bytes", 15<<20, "objects larger than this are not sent (dry-run count)")
	f.IntVar(&o.concurrency, "concurrency", 64, "enqueue round trips in flight")
	f.StringVar(&o.Inventory, "inventory", "", "S3 Inventory manifest.json (a file or s3://bucket/key); data files are read from its destination bucket")
	o.campaign.register(f, &a.envErrs)
	return cmd
}

func (o enqueueOptions) validate() error {
	switch {
	case o.Manifest == "" && o.Bucket == "":
		return errors.New("enqueue needs --bucket (to list) or --manifest")
	case o.Manifest != "" && o.Prefix != "":
		return errors.New("--prefix lists a bucket; it cannot be combined with --manifest")
	case o.queue == "":
		return errors.New("--queue must not be empty")
	case o.Inventory != "" && (o.Manifest != "" || o.Prefix != ""):
		return errors.New("--inventory cannot be combined with --manifest or --prefix")
	case o.campaign.inWorker && (o.Manifest != "" || o.Inventory != "" || o.dryRun || o.runID != ""):
		return errors.New("--in-worker lists a --bucket/--prefix in the worker fleet; it cannot be combined with --manifest, --inventory, --dry-run or --run")
	}
	return nil
}

func (o enqueueOptions) source() reverify.Source {
	if o.Inventory != "" {
		return reverify.Source{Kind: reverify.SourceInventory, Manifest: o.Inventory}
	}
	if o.Manifest != "" {
		return reverify.Source{Kind: reverify.SourceManifest, Manifest: o.Manifest, Bucket: o.Bucket}
	}
	return reverify.Source{Kind: reverify.SourcePrefix, Bucket: o.Bucket, Prefix: o.Prefix}
}

func (o enqueueOptions) runName() string {
	switch {
	case o.name != "":
		return o.name
	case o.Manifest != "":
		return "manifest " + o.Manifest
	case o.Inventory != "":
		return "inventory " + o.Inventory
	}
	return "s3://" + o.Bucket + "/" + o.Prefix
}

func (a *app) enqueue(ctx context.Context, o enqueueOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	if err := o.campaign.resolve(&o.Filters, time.Now()); err != nil {
		return err
	}
	if err := o.Filters.Validate(); err != nil {
		return err
	}
	if o.campaign.inWorker {
		return a.enqueueInWorker(ctx, o)
	}
	var src tasks.Source
	var badLines int64
	if o.Manifest != "" {
		r, closeFn, err := a.openManifest(o.Manifest)
		if err != nil {
			return err
		}
		defer closeFn()
		src = tasks.ManifestSource(r, tasks.ManifestFormat(o.ManifestFormat), o.Bucket, func(b tasks.BadLine) {
			badLines++
			if badLines <= 20 {
				fmt.Fprintf(a.stderr, "manifest line %d skipped: %s\n", b.Line, b.Reason)
			}
		})
	} else if o.Inventory != "" {
		var err error
		if src, err = a.inventorySource(ctx, o.Inventory); err != nil {
			return err
		}
	} else {
		objs, err := a.openObjects(ctx)
		if err != nil {
			return err
		}
		if err := objs.CheckBucket(ctx, o.Bucket); err != nil {
			return fmt.Errorf("bucket %q: %w", o.Bucket, err)
		}
		src = tasks.ListingSource(objs, o.Bucket, o.Prefix)
	}
	keep := o.Filters.Keep()
	var store *postgres.Store
	if !o.dryRun || o.Filters.NotVerifiedSince > 0 { // a dry run needs the ledger only to skip recent results
		var err error
		if store, err = a.openStore(ctx, 4); err != nil {
			return err
		}
		defer store.Close()
	}
	var recent int64
	if o.Filters.NotVerifiedSince > 0 {
		since := time.Now().Add(-time.Duration(o.Filters.NotVerifiedSince))
		src = tasks.SkipRecentlyScored(src, store, since, func(n int) { recent += int64(n) })
	}
	if o.dryRun {
		return a.dryRun(ctx, o, src, keep, &recent)
	}
	queue, _, closeQueue, err := a.openQueue()
	if err != nil {
		return err
	}
	defer closeQueue()

	var run reverify.Run
	if o.runID != "" {
		if run, err = store.Run(ctx, o.runID); err != nil {
			return err
		}
	} else {
		nr, err := o.campaign.newRun(o.runName(), o.queue, o.source(), o)
		if err != nil {
			return err
		}
		if run, err = store.CreateRun(ctx, nr); err != nil {
			return err
		}
	}
	fmt.Fprintf(a.stderr, "run %s: enqueuing %s into queue %q\n", run.ID, run.Name, run.Queue)
	if o.campaign.needsCount() && o.runID == "" {
		return a.enqueueConfirmable(ctx, o, store, queue, run, src, keep, recent)
	}

	bar := newProgress(a.stderr, "enqueued", -1)
	producer := tasks.NewProducer(store, queue, tasks.WithConcurrency(o.concurrency), tasks.WithProgress(func(s tasks.Stats) {
		bar.set(s.Enqueued+s.Duplicate, -1, fmt.Sprintf("(recorded %d)", s.Recorded))
	}))
	stats, err := producer.Enqueue(ctx, run, src, keep)
	bar.finish()
	if err != nil {
		return fmt.Errorf("run %s interrupted after %d objects (finish it with `reverify enqueue --run %s` and the same source): %w",
			run.ID, stats.Recorded, run.ID, err)
	}
	if o.runID != "" {
		// Objects recorded earlier whose tasks may never have reached Redis.
		more, err := producer.Requeue(ctx, run)
		if err != nil {
			return fmt.Errorf("requeue pending objects of run %s: %w", run.ID, err)
		}
		stats.Enqueued += more.Enqueued
		stats.Duplicate += more.Duplicate
	}
	fmt.Fprintf(a.stderr, "run %s: %d objects seen, %d filtered out, %d recorded, %d tasks enqueued, %d already queued",
		run.ID, stats.Seen, stats.Filtered, stats.Recorded, stats.Enqueued, stats.Duplicate)
	if badLines > 0 {
		fmt.Fprintf(a.stderr, ", %d manifest lines skipped", badLines)
	}
	fmt.Fprintln(a.stderr)
	fmt.Fprintln(a.stdout, run.ID)
	return nil
}

func (a *app) dryRun(ctx context.Context, o enqueueOptions, src tasks.Source, keep tasks.Filter, recent *int64) error {
	var matched, send, empty, large, unknown, bytes int64
	err := src(ctx, func(obj tasks.Object) error {
		if keep != nil && !keep(obj) {
			return nil
		}
		matched++
		switch {
		case obj.Size < 0:
			unknown++
			send++
		case obj.Size == 0:
			empty++
		case obj.Size > o.MaxObjectBytes:
			large++
		default:
			send++
			bytes += obj.Size
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "dry run: %d objects match; %d would be sent to the liveness API (%d paid calls)\n", matched, send, send)
	if empty+large > 0 {
		fmt.Fprintf(a.stdout, "  not sent: %d empty, %d over %d bytes\n", empty, large, o.MaxObjectBytes)
	}
	if unknown > 0 {
		fmt.Fprintf(a.stdout, "  %d manifest entries counted without checking S3 (size unknown)\n", unknown)
	}
	if bytes > 0 {
		fmt.Fprintf(a.stdout, "  %s of images to fetch\n", humanBytes(bytes))
	}
	if *recent > 0 {
		fmt.Fprintf(a.stdout, "  %d objects skipped: scored within %s\n", *recent, time.Duration(o.Filters.NotVerifiedSince))
	}
	return nil
}

func (a *app) openManifest(path string) (io.Reader, func(), error) {
	if path == "-" {
		return a.stdin, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--manifest: %w", err)
	}
	return f, func() { f.Close() }, nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// campaignFlags are the run settings beyond the source: labels, priority,
// confirmation, failure threshold, report destination and filters.
type campaignFlags struct {
	labels           []string
	priority         string
	confirm          bool
	confirmAbove     int64
	failPercent      float64
	failMinDone      int64
	failCount        int64
	reportTo         string
	inWorker         bool
	modifiedAfter    string
	modifiedBefore   string
	minSize, maxSize int64
	notVerifiedSince time.Duration
}

func (c *campaignFlags) register(f *pflag.FlagSet, e *envErrors) {
	f.StringArrayVar(&c.labels, "label", nil, "label the run, key=value (repeatable); search with `runs list --label`")
	f.StringVar(&c.priority, "priority", string(reverify.PriorityNormal), "high, normal or low: high runs overtake bulk ones (weighted queues)")
	f.BoolVar(&c.confirm, "confirm", false, "record the objects, print the paid calls, and wait for `reverify runs confirm ID`")
	e.int64Setting(f, &c.confirmAbove, "confirm-above", "REVERIFY_CONFIRM_ABOVE", 0,
		"runs with more objects than this wait for `runs confirm` (0 = never)")
	f.Float64Var(&c.failPercent, "fail-percent", 50, "the run fails when more than this % of finished objects failed (failed, not_found) ...")
	f.Int64Var(&c.failMinDone, "fail-min-done", 1000, "... once at least this many objects are finished")
	f.Int64Var(&c.failCount, "fail-count", 0, "the run fails once this many objects failed, whatever the % (0 = off)")
	stringSetting(f, &c.reportTo, "report-to", "REVERIFY_REPORT_TO", "", "write the completion report here when the run ends: a directory or s3://bucket/prefix")
	f.BoolVar(&c.inWorker, "in-worker", false, "list --bucket/--prefix inside the worker fleet (a resumable run:plan task) and return at once")
	f.StringVar(&c.modifiedAfter, "modified-after", "", "only objects last modified after this (RFC 3339, YYYY-MM-DD, or a duration ago such as 24h)")
	f.StringVar(&c.modifiedBefore, "modified-before", "", "only objects last modified before this (same forms)")
	f.Int64Var(&c.minSize, "min-size", 0, "only objects of at least this many bytes")
	f.Int64Var(&c.maxSize, "max-size", 0, "only objects of at most this many bytes (0 = no limit)")
	f.DurationVar(&c.notVerifiedSince, "not-verified-since", 0, "skip objects with a scored result newer than this, e.g. 720h (saves paid calls)")
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

func (c *campaignFlags) resolve(f *tasks.Filters, now time.Time) error {
	var err error
	if f.ModifiedAfter, err = parseWhen("modified-after", c.modifiedAfter, now); err != nil {
		return err
	}
	if f.ModifiedBefore, err = parseWhen("modified-before", c.modifiedBefore, now); err != nil {
		return err
	}
	f.MinSize, f.MaxSize, f.NotVerifiedSince = c.minSize, c.maxSize, reverify.Duration(c.notVerifiedSince)
	return nil
}

func (c *campaignFlags) needsCount() bool { return c.confirm || c.confirmAbove > 0 }

func (c *campaignFlags) newRun(name, queue string, source reverify.Source, options any) (postgres.NewRun, error) {
	labels, err := parseLabels(c.labels)
	if err != nil {
		return postgres.NewRun{}, err
	}
	priority, err := reverify.ParsePriority(c.priority)
	if err != nil {
		return postgres.NewRun{}, fmt.Errorf("--priority: %w", err)
	}
	if c.failPercent < 0 || c.failPercent > 100 || c.failMinDone < 0 || c.failCount < 0 {
		return postgres.NewRun{}, errors.New("--fail-percent must be 0-100; --fail-min-done and --fail-count must not be negative")
	}
	return postgres.NewRun{
		Name: name, Queue: priority.Queue(queue), Source: source, Options: options, Labels: labels, Priority: priority,
		Threshold: &reverify.Threshold{Percent: c.failPercent, MinDone: c.failMinDone, Count: c.failCount},
		ReportTo:  c.reportTo, Actor: actor("enqueue"),
	}, nil
}

// enqueueConfirmable records every object first; a run above the
// confirmation size (or with --confirm) then waits for `runs confirm`,
// others are queued at once.
func (a *app) enqueueConfirmable(ctx context.Context, o enqueueOptions, store *postgres.Store, queue tasks.Enqueuer,
	run reverify.Run, src tasks.Source, keep tasks.Filter, recent int64) error {
	bar := newProgress(a.stderr, "recorded", -1)
	stats, err := tasks.NewProducer(store, queue, tasks.WithProgress(func(s tasks.Stats) {
		bar.set(s.Recorded, -1, "")
	})).Record(ctx, run, src, keep)
	bar.finish()
	if err != nil {
		return fmt.Errorf("run %s interrupted after %d objects (finish it with `reverify enqueue --run %s` and the same source): %w",
			run.ID, stats.Recorded, run.ID, err)
	}
	if run, err = store.Run(ctx, run.ID); err != nil {
		return err
	}
	if o.campaign.confirm || run.Total > o.campaign.confirmAbove {
		why := fmt.Sprintf("%d paid calls at most; confirmation required", run.Total)
		if _, err := store.HoldForConfirmation(ctx, run.ID, actor(why)); err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "run %s: %d objects recorded (%d filtered out, %d scored recently): up to %d paid calls.\n"+
			"It waits for confirmation: reverify runs confirm %s   (or: reverify runs cancel %s)\n",
			run.ID, run.Total, stats.Filtered, recent, run.Total, run.ID, run.ID)
		fmt.Fprintln(a.stdout, run.ID)
		return nil
	}
	qs, err := a.queueRecorded(ctx, store, queue, run)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "run %s: %d objects seen, %d filtered out, %d recorded, %d tasks enqueued\n",
		run.ID, stats.Seen, stats.Filtered, stats.Recorded, qs.Enqueued)
	fmt.Fprintln(a.stdout, run.ID)
	return nil
}

// enqueueInWorker creates the run and leaves the listing to a run:plan task.
func (a *app) enqueueInWorker(ctx context.Context, o enqueueOptions) error {
	store, queue, closeAll, err := a.openLedgerAndQueue(ctx, 2)
	if err != nil {
		return err
	}
	defer closeAll()
	nr, err := o.campaign.newRun(o.runName(), o.queue, o.source(), o)
	if err != nil {
		return err
	}
	run, err := store.CreateRun(ctx, nr)
	if err != nil {
		return err
	}
	task, err := tasks.NewPlanTask(run.ID, run.Queue)
	if err != nil {
		return err
	}
	if _, err := queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("run %s: queue its run:plan task: %w", run.ID, err)
	}
	fmt.Fprintf(a.stderr, "run %s: the worker fleet lists s3://%s/%s (follow with `reverify runs watch %s`)\n", run.ID, o.Bucket, o.Prefix, run.ID)
	fmt.Fprintln(a.stdout, run.ID)
	return nil
}

// inventorySource reads an S3 Inventory manifest.json from a file or S3.
func (a *app) inventorySource(ctx context.Context, manifest string) (tasks.Source, error) {
	client, err := a.s3Client(ctx)
	if err != nil {
		return nil, err
	}
	open := func(ctx context.Context, bucket, key string) (io.ReadCloser, error) {
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			return nil, err
		}
		return out.Body, nil
	}
	var r io.ReadCloser
	if rest, ok := strings.CutPrefix(manifest, "s3://"); ok {
		bucket, key, _ := strings.Cut(rest, "/")
		r, err = open(ctx, bucket, key)
	} else {
		r, err = os.Open(manifest)
	}
	if err != nil {
		return nil, fmt.Errorf("--inventory %s: %w", manifest, err)
	}
	defer r.Close()
	m, err := tasks.ParseInventoryManifest(r)
	if err != nil {
		return nil, err
	}
	var bad int
	return tasks.InventorySource(m, open, func(b tasks.BadLine) {
		bad++
		if bad <= 20 {
			fmt.Fprintf(a.stderr, "inventory row %d skipped: %s\n", b.Line, b.Reason)
		}
	}), nil
}
