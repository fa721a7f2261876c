package campaign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"reverify"
	"reverify/tasks"
)

// Input is what a source needs beyond its spec.
type Input struct {
	// Manifest reads a manifest source, or an inventory's manifest.json,
	// when it is not in S3 (a file the caller opened, or standard input).
	Manifest io.Reader
	// Format is how a manifest is read; "" is auto.
	Format tasks.ManifestFormat
	// Bad is told of every line or row that is skipped; may be nil.
	Bad func(tasks.BadLine)
}

// ErrNoObjects means a source needs storage access the Service was built without.
var ErrNoObjects = errors.New("campaign: no object storage configured")

// Source opens a run's source: a listing of its bucket/prefix, a manifest,
// or an S3 Inventory, streamed a page or a line at a time.
func (s *Service) Source(ctx context.Context, src reverify.Source, in Input) (tasks.Source, error) {
	switch src.Kind {
	case reverify.SourcePrefix:
		if s.objects == nil {
			return nil, ErrNoObjects
		}
		if err := s.objects.CheckBucket(ctx, src.Bucket); err != nil {
			return nil, fmt.Errorf("bucket %q: %w", src.Bucket, err)
		}
		return tasks.ListingSource(s.objects, src.Bucket, src.Prefix), nil
	case reverify.SourceManifest:
		if in.Manifest == nil {
			return nil, fmt.Errorf("manifest %s: nothing to read", src.Manifest)
		}
		return tasks.ManifestSource(in.Manifest, in.Format, src.Bucket, in.Bad), nil
	case reverify.SourceInventory:
		return s.inventory(ctx, src.Manifest, in)
	}
	return nil, fmt.Errorf("%w: unknown source kind %q", ErrInvalidSpec, src.Kind)
}

// inventory reads an S3 Inventory's manifest.json (from S3 or in.Manifest)
// and streams its data files from the inventory's destination bucket.
func (s *Service) inventory(ctx context.Context, manifest string, in Input) (tasks.Source, error) {
	if s.objects == nil {
		return nil, ErrNoObjects
	}
	r := in.Manifest
	if rest, ok := strings.CutPrefix(manifest, "s3://"); ok {
		bucket, key, _ := strings.Cut(rest, "/")
		rc, err := s.objects.Open(ctx, bucket, key)
		if err != nil {
			return nil, fmt.Errorf("inventory %s: %w", manifest, err)
		}
		defer rc.Close()
		r = rc
	}
	if r == nil {
		return nil, fmt.Errorf("inventory %s: nothing to read", manifest)
	}
	m, err := tasks.ParseInventoryManifest(r)
	if err != nil {
		return nil, err
	}
	return tasks.InventorySource(m, s.objects.Open, in.Bad), nil
}
