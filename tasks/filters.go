package tasks

import (
	"context"
	"fmt"
	"reverify"
	"time"
)

// Filters select which objects of a source become part of a run. They are
// stored with the run (and in schedules) as JSON. Size and LastModified
// filters need a source that knows them (a listing or an S3 Inventory);
// objects whose size or time is unknown pass those filters.
type Filters struct {
	Suffixes       []string   `json:"suffixes,omitempty"`
	ModifiedAfter  *time.Time `json:"modified_after,omitempty"`
	ModifiedBefore *time.Time `json:"modified_before,omitempty"`
	MinSize        int64      `json:"min_size,omitempty"` // bytes, inclusive
	MaxSize        int64      `json:"max_size,omitempty"` // bytes, inclusive; 0 = no limit
	// NotVerifiedSince skips objects with a scored result newer than this
	// long before the run starts (saves paid calls).
	NotVerifiedSince reverify.Duration `json:"not_verified_since,omitempty"`
}

// Validate reports contradictory bounds.
func (f Filters) Validate() error {
	switch {
	case f.MinSize < 0 || f.MaxSize < 0:
		return fmt.Errorf("size bounds must not be negative")
	case f.MaxSize > 0 && f.MinSize > f.MaxSize:
		return fmt.Errorf("min size %d is above max size %d", f.MinSize, f.MaxSize)
	case f.ModifiedAfter != nil && f.ModifiedBefore != nil && !f.ModifiedAfter.Before(*f.ModifiedBefore):
		return fmt.Errorf("modified-after %s is not before modified-before %s",
			f.ModifiedAfter.Format(time.RFC3339), f.ModifiedBefore.Format(time.RFC3339))
	case f.NotVerifiedSince < 0:
		return fmt.Errorf("not-verified-since must not be negative")
	}
	return nil
}

// Keep returns the per-object filter (everything but NotVerifiedSince,
// which needs the ledger: see SkipRecentlyScored). nil keeps everything.
func (f Filters) Keep() Filter {
	suffix := SuffixFilter(f.Suffixes)
	if suffix == nil && f.ModifiedAfter == nil && f.ModifiedBefore == nil && f.MinSize == 0 && f.MaxSize == 0 {
		return nil
	}
	return func(o Object) bool {
		if suffix != nil && !suffix(o) {
			return false
		}
		if !o.LastModified.IsZero() {
			if f.ModifiedAfter != nil && !o.LastModified.After(*f.ModifiedAfter) {
				return false
			}
			if f.ModifiedBefore != nil && !o.LastModified.Before(*f.ModifiedBefore) {
				return false
			}
		}
		if o.Size >= 0 {
			if o.Size < f.MinSize || (f.MaxSize > 0 && o.Size > f.MaxSize) {
				return false
			}
		}
		return true
	}
}

// RecentLookup tells which objects already have a recent scored result;
// *postgres.Store satisfies it.
type RecentLookup interface {
	RecentlyScored(ctx context.Context, objs []reverify.ObjectRef, since time.Time) (map[reverify.ObjectRef]bool, error)
}

// SkipRecentlyScored wraps src: objects scored after since (in any run) are
// dropped, looked up a batch at a time. skipped, when not nil, is told how
// many each batch dropped.
func SkipRecentlyScored(src Source, lookup RecentLookup, since time.Time, skipped func(n int)) Source {
	const batch = 1000
	return func(ctx context.Context, fn func(Object) error) error {
		buf := make([]Object, 0, batch)
		flush := func() error {
			refs := make([]reverify.ObjectRef, len(buf))
			for i, o := range buf {
				refs[i] = reverify.ObjectRef{Bucket: o.Bucket, Key: o.Key}
			}
			recent, err := lookup.RecentlyScored(ctx, refs, since)
			if err != nil {
				return err
			}
			n := 0
			for _, o := range buf {
				if recent[reverify.ObjectRef{Bucket: o.Bucket, Key: o.Key}] {
					n++
					continue
				}
				if err := fn(o); err != nil {
					return err
				}
			}
			if n > 0 && skipped != nil {
				skipped(n)
			}
			buf = buf[:0]
			return nil
		}
		err := src(ctx, func(o Object) error {
			buf = append(buf, o)
			if len(buf) == batch {
				return flush()
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(buf) > 0 {
			return flush()
		}
		return nil
	}
}
