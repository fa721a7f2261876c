package tasks

import (
	"compress/gzip"
	"context"
	"encoding/csv"
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

// InventorySource yields the current objects of an S3 Inventory: each data
// file (gzipped CSV, keys URL-encoded) is streamed from the destination
// bucket with open. Delete markers and non-current versions are skipped.
// Rows that cannot be used are reported to bad (line = row within its file).
func InventorySource(m InventoryManifest, open OpenFunc, bad func(BadLine)) Source {
	if bad == nil {
		bad = func(BadLine) {}
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
			if err := readInventoryFile(ctx, open, dest, f.Key, cols, bad, fn); err != nil {
				return err
			}
		}
		return nil
	}
}

func readInventoryFile(ctx context.Context, open OpenFunc, bucket, key string, cols map[string]int,
	bad func(BadLine), fn func(Object) error) error {
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
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	field := func(rec []string, name string) string {
		if i, ok := cols[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			var perr *csv.ParseError
			if errors.As(err, &perr) {
				bad(BadLine{Line: line, Reason: key + ": " + perr.Err.Error()})
				continue
			}
			return fmt.Errorf("%w: read s3://%s/%s: %w", ErrInventory, bucket, key, err)
		}
		if strings.EqualFold(field(rec, "IsDeleteMarker"), "true") || strings.EqualFold(field(rec, "IsLatest"), "false") {
			continue
		}
		k, err := url.QueryUnescape(field(rec, "Key"))
		if err != nil {
			bad(BadLine{Line: line, Reason: key + ": key is not URL-encoded: " + err.Error()})
			continue
		}
		o := Object{Bucket: field(rec, "Bucket"), Key: k, Version: field(rec, "VersionId"), Size: -1}
		if err := checkKey(o.Key); err != nil || o.Bucket == "" {
			bad(BadLine{Line: line, Reason: fmt.Sprintf("%s: unusable row (bucket %q): %v", key, o.Bucket, err)})
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
