package tasks

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrInventory wraps problems that make an S3 Inventory unusable.
var ErrInventory = errors.New("s3 inventory")

// InventoryManifest is the manifest.json S3 Inventory writes beside its
// data files.
type InventoryManifest struct {
	SourceBucket      string `json:"sourceBucket"`
	DestinationBucket string `json:"destinationBucket"` // arn:aws:s3:::bucket
	FileFormat        string `json:"fileFormat"`
	FileSchema        string `json:"fileSchema"` // "Bucket, Key, Size, LastModifiedDate, ..."
	Files             []struct {
		Key string `json:"key"`
	} `json:"files"`
}

// OpenFunc opens one object for reading.
type OpenFunc func(ctx context.Context, bucket, key string) (io.ReadCloser, error)

// ParseInventoryManifest reads manifest.json; only the CSV format is supported.
func ParseInventoryManifest(r io.Reader) (InventoryManifest, error) {
	var m InventoryManifest
	if err := json.NewDecoder(io.LimitReader(r, 64<<20)).Decode(&m); err != nil {
		return m, fmt.Errorf("%w: manifest.json: %w", ErrInventory, err)
	}
	if !strings.EqualFold(m.FileFormat, "CSV") {
		return m, fmt.Errorf("%w: file format %q is not supported (use CSV)", ErrInventory, m.FileFormat)
	}
	if m.FileSchema == "" || len(m.Files) == 0 {
		return m, fmt.Errorf("%w: manifest.json has no fileSchema or no files", ErrInventory)
	}
	return m, nil
}

// InventoryOption bounds what reading an inventory may cost.
type InventoryOption func(*inventoryLimits)

type inventoryLimits struct {
	maxFileBytes int64
	maxLine      int
}

// DefaultMaxInventoryFileBytes bounds the decompressed size of one
// inventory data file: S3 splits an inventory into many files, each far
// smaller, and a gzip bomb stops here.
const DefaultMaxInventoryFileBytes = 64 << 30

// WithMaxFileBytes sets how many decompressed bytes one data file may hold
// before the inventory is refused (default DefaultMaxInventoryFileBytes).
func WithMaxFileBytes(n int64) InventoryOption {
	return func(l *inventoryLimits) { l.maxFileBytes = n }
}

// ErrInventoryTooLarge: a data file decompresses to more than the limit.
var ErrInventoryTooLarge = fmt.Errorf("%w: data file too large", ErrInventory)

// InventorySource yields the current objects of an S3 Inventory: each data
// file (gzipped CSV, keys URL-encoded) is streamed from the destination
// bucket with open. Delete markers and non-current versions are skipped.
// Rows that cannot be used (not CSV, a key or version that is not UTF-8,
// a row over 16 KiB) are reported to bad (line = row within its file) and
// skipped; memory stays flat whatever a file holds, and a file that
// decompresses to more than the limit ends the source with
// ErrInventoryTooLarge.
func InventorySource(m InventoryManifest, open OpenFunc, bad func(BadLine), opts ...InventoryOption) Source {
	if bad == nil {
		bad = func(BadLine) {}
	}
	limits := inventoryLimits{maxFileBytes: DefaultMaxInventoryFileBytes, maxLine: maxLine}
	for _, o := range opts {
		o(&limits)
	}
	return func(ctx context.Context, fn func(Object) error) error {
		cols := map[string]int{}
		for i, c := range strings.Split(m.FileSchema, ",") {
			cols[strings.TrimSpace(c)] = i
		}
		for _, need := range []string{"Bucket", "Key"} {
			if _, ok := cols[need]; !ok {
				return fmt.Errorf("%w: fileSchema has no %s column", ErrInventory, need)
			}
		}
		dest := strings.TrimPrefix(m.DestinationBucket, "arn:aws:s3:::")
		for _, f := range m.Files {
			if err := readInventoryFile(ctx, open, dest, f.Key, cols, limits, bad, fn); err != nil {
				return err
			}
		}
		return nil
	}
}

// capReader fails once more than n bytes were read.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n < 0 {
		return 0, ErrInventoryTooLarge
	}
	if int64(len(p)) > c.n+1 {
		p = p[:c.n+1]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if c.n < 0 {
		return n, ErrInventoryTooLarge
	}
	return n, err
}

func readInventoryFile(ctx context.Context, open OpenFunc, bucket, key string, cols map[string]int,
	limits inventoryLimits, bad func(BadLine), fn func(Object) error) error {
	rc, err := open(ctx, bucket, key)
	if err != nil {
		return fmt.Errorf("%w: open s3://%s/%s: %w", ErrInventory, bucket, key, err)
	}
	defer rc.Close()
	var r io.Reader = rc
	if strings.HasSuffix(key, ".gz") {
		gz, err := gzip.NewReader(rc)
		if err != nil {
			return fmt.Errorf("%w: s3://%s/%s: %w", ErrInventory, bucket, key, err)
		}
		defer gz.Close()
		r = gz
	}
	cr := newCSVReader(bufio.NewReaderSize(&capReader{r: r, n: limits.maxFileBytes}, 64<<10), limits.maxLine)
	field := func(rec []string, name string) string {
		if i, ok := cols[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	for {
		rec, line, reason, err := cr.read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if errors.Is(err, ErrInventoryTooLarge) {
			return fmt.Errorf("%w: s3://%s/%s decompresses to more than %d bytes", ErrInventoryTooLarge, bucket, key, limits.maxFileBytes)
		}
		if err != nil {
			return fmt.Errorf("%w: read s3://%s/%s: %w", ErrInventory, bucket, key, err)
		}
		if reason != "" {
			bad(BadLine{Line: line, Reason: key + ": " + reason})
			continue
		}
		if strings.EqualFold(field(rec, "IsDeleteMarker"), "true") || strings.EqualFold(field(rec, "IsLatest"), "false") {
			continue
		}
		k, err := url.QueryUnescape(field(rec, "Key"))
		if err != nil {
			bad(BadLine{Line: line, Reason: key + ": key is not URL-encoded"})
			continue
		}
		o := Object{Bucket: field(rec, "Bucket"), Key: k, Version: field(rec, "VersionId"), Size: -1}
		if !bucketName.MatchString(o.Bucket) {
			bad(BadLine{Line: line, Reason: key + ": invalid bucket name"})
			continue
		}
		if err := errors.Join(checkKey(o.Key), checkVersion(o.Version)); err != nil {
			bad(BadLine{Line: line, Reason: fmt.Sprintf("%s: unusable row (bucket %s): %v", key, o.Bucket, err)})
			continue
		}
		if s := field(rec, "Size"); s != "" {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				o.Size = n
			}
		}
		if s := field(rec, "LastModifiedDate"); s != "" {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				o.LastModified = t
			}
		}
		if line%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := fn(o); err != nil {
			return err
		}
	}
}
