package tasks

import (
	"context"
	"strings"

	"reverify/storage/objects"
)

// Lister streams the objects under a prefix.
type Lister interface {
	List(ctx context.Context, bucket, prefix string, fn func(objects.Object) error) error
}

// ListingSource yields every object under bucket/prefix, a page at a time.
func ListingSource(l Lister, bucket, prefix string) Source {
	return func(ctx context.Context, fn func(Object) error) error {
		return l.List(ctx, bucket, prefix, func(o objects.Object) error {
			return fn(Object{Bucket: o.Bucket, Key: o.Key, Version: o.VersionID, Size: o.Size, LastModified: o.LastModified, ETag: o.ETag})
		})
	}
}

// SuffixFilter keeps keys that end in one of suffixes, ignoring case. No
// suffixes keeps everything.
func SuffixFilter(suffixes []string) Filter {
	if len(suffixes) == 0 {
		return nil
	}
	lower := make([]string, len(suffixes))
	for i, s := range suffixes {
		lower[i] = strings.ToLower(s)
	}
	return func(o Object) bool {
		k := strings.ToLower(o.Key)
		for _, s := range lower {
			if strings.HasSuffix(k, s) {
				return true
			}
		}
		return false
	}
}
