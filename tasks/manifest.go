package tasks

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Object is one object a source yields.
type Object struct {
	Bucket  string
	Key     string
	Version string
	Size    int64 // -1 when the source does not know it (manifests)
	// LastModified is zero when the source does not know it.
	LastModified time.Time
}

// Source yields objects to fn until it is exhausted or fn returns an error.
type Source func(ctx context.Context, fn func(Object) error) error

// ManifestFormat says how manifest lines are read.
type ManifestFormat string

// Manifest formats.
const (
	ManifestAuto  ManifestFormat = "auto"  // CSV when the first line looks like bucket,key; else lines
	ManifestCSV   ManifestFormat = "csv"   // bucket,key[,version]
	ManifestLines ManifestFormat = "lines" // one key per line, bucket from the run
)

// ErrManifest wraps problems that make a whole manifest unusable.
var ErrManifest = errors.New("manifest")

// BadLine is a manifest line that was not used, and why.
type BadLine struct {
	Line   int
	Reason string
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.\-_]{1,254}$`)

// ManifestSource reads a manifest. Lines that cannot be used are reported to
// bad (with their line number) and skipped; they never stop the rest.
func ManifestSource(r io.Reader, format ManifestFormat, defaultBucket string, bad func(BadLine)) Source {
	if bad == nil {
		bad = func(BadLine) {}
	}
	return func(ctx context.Context, fn func(Object) error) error {
		br := bufio.NewReaderSize(r, 64<<10)
		f, err := detectFormat(br, format)
		if err != nil {
			return err
		}
		if f == ManifestLines {
			if defaultBucket == "" {
				return fmt.Errorf("%w: a one-key-per-line manifest needs --bucket", ErrManifest)
			}
			return readLines(ctx, br, defaultBucket, bad, fn)
		}
		return readCSV(ctx, br, defaultBucket, bad, fn)
	}
}

func detectFormat(br *bufio.Reader, f ManifestFormat) (ManifestFormat, error) {
	switch f {
	case ManifestCSV, ManifestLines:
		return f, nil
	case ManifestAuto, "":
	default:
		return "", fmt.Errorf("%w: unknown format %q (want auto, csv or lines)", ErrManifest, f)
	}
	peek, _ := br.Peek(4096)
	first, _, _ := strings.Cut(string(peek), "\n")
	first = strings.TrimSuffix(first, "\r")
	rec, err := csv.NewReader(strings.NewReader(first)).Read()
	if err == nil && len(rec) >= 2 && len(rec) <= 3 && (bucketName.MatchString(rec[0]) || strings.EqualFold(rec[0], "bucket")) {
		return ManifestCSV, nil
	}
	return ManifestLines, nil
}

func readLines(ctx context.Context, br *bufio.Reader, bucket string, bad func(BadLine), fn func(Object) error) error {
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		key := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(key) == "" {
			continue
		}
		if err := checkKey(key); err != nil {
			bad(BadLine{Line: line, Reason: err.Error()})
			continue
		}
		if line%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := fn(Object{Bucket: bucket, Key: key, Size: -1}); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: read line %d: %w", ErrManifest, line+1, err)
	}
	return nil
}

func readCSV(ctx context.Context, br *bufio.Reader, defaultBucket string, bad func(BadLine), fn func(Object) error) error {
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	for n := 0; ; n++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			bad(BadLine{Line: perr.Line, Reason: perr.Err.Error()})
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: read: %w", ErrManifest, err)
		}
		line, _ := cr.FieldPos(0)
		if n == 0 && strings.EqualFold(rec[0], "bucket") {
			continue // header
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		obj, reason := csvObject(rec, defaultBucket)
		if reason != "" {
			bad(BadLine{Line: line, Reason: reason})
			continue
		}
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := fn(obj); err != nil {
			return err
		}
	}
}

func csvObject(rec []string, defaultBucket string) (Object, string) {
	if len(rec) < 2 || len(rec) > 3 {
		return Object{}, fmt.Sprintf("want bucket,key[,version], got %d fields", len(rec))
	}
	o := Object{Bucket: rec[0], Key: rec[1], Size: -1}
	if len(rec) == 3 {
		o.Version = rec[2]
	}
	if o.Bucket == "" {
		o.Bucket = defaultBucket
	}
	if !bucketName.MatchString(o.Bucket) {
		return Object{}, fmt.Sprintf("invalid bucket name %q", o.Bucket)
	}
	if err := checkKey(o.Key); err != nil {
		return Object{}, err.Error()
	}
	return o, ""
}

func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty key")
	case len(key) > 1024:
		return fmt.Errorf("key is %d bytes, S3 allows 1024", len(key))
	case strings.ContainsRune(key, 0):
		return errors.New("key contains a NUL byte")
	}
	return nil
}
