package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"reverify/storage/postgres"
	"reverify/tasks"
)

type enqueueOptions struct {
	Bucket         string   `json:"bucket,omitempty"`
	Prefix         string   `json:"prefix,omitempty"`
	Manifest       string   `json:"manifest,omitempty"`
	ManifestFormat string   `json:"manifest_format,omitempty"`
	Suffixes       []string `json:"suffixes,omitempty"`
	MaxObjectBytes int64    `json:"max_object_bytes"`
	name           string
	queue          string
	runID          string
	dryRun         bool
	concurrency    int
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
	f.StringSliceVar(&o.Suffixes, "suffix", nil, "only keys ending in one of these, e.g. .jpg,.jpeg,.png (case-insensitive)")
	f.BoolVar(&o.dryRun, "dry-run", false, "count what would be sent to the API and stop")
	f.StringVar(&o.queue, "queue", tasks.DefaultQueue, "asynq queue for the run's tasks")
	f.StringVar(&o.runID, "run", "", "add to an existing run instead of creating one (finishes an interrupted enqueue)")
	f.Int64Var(&o.MaxObjectBytes, "max-object-bytes", 15<<20, "objects larger than this are not sent (dry-run count)")
	f.IntVar(&o.concurrency, "concurrency", 64, "enqueue round trips in flight")
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
	}
	return nil
}

func (o enqueueOptions) source() map[string]string {
	if o.Manifest != "" {
		return map[string]string{"kind": "manifest", "manifest": o.Manifest, "bucket": o.Bucket}
	}
	return map[string]string{"kind": "prefix", "bucket": o.Bucket, "prefix": o.Prefix}
}

func (o enqueueOptions) runName() string {
	switch {
	case o.name != "":
		return o.name
	case o.Manifest != "":
		return "manifest " + o.Manifest
	}
	return "s3://" + o.Bucket + "/" + o.Prefix
}

func (a *app) enqueue(ctx context.Context, o enqueueOptions) error {
	if err := o.validate(); err != nil {
		return err
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
	keep := tasks.SuffixFilter(o.Suffixes)
	if o.dryRun {
		return a.dryRun(ctx, o, src, keep)
	}

	store, err := a.openStore(ctx, 4)
	if err != nil {
		return err
	}
	defer store.Close()
	queue, _, err := a.openQueue()
	if err != nil {
		return err
	}
	defer queue.Close()

	var run postgres.Run
	if o.runID != "" {
		if run, err = store.Run(ctx, o.runID); err != nil {
			return err
		}
	} else {
		run, err = store.CreateRun(ctx, postgres.NewRun{Name: o.runName(), Queue: o.queue, Source: o.source(), Options: o})
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(a.stderr, "run %s: enqueuing %s into queue %q\n", run.ID, run.Name, run.Queue)

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

func (a *app) dryRun(ctx context.Context, o enqueueOptions, src tasks.Source, keep tasks.Filter) error {
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
