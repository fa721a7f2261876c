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
	"unicode/utf8"
)

// Object is one object a source yields.
type Object struct {
	Bucket  string
	Key     string
	Version string
	Size    int64 // -1 when the source does not know it (manifests)
	// LastModified is zero when the source does not know it.
	LastModified time.Time
	// ETag is the object's ETag without quotes, "" when the source does
	// not know it (manifests). A plain MD5 of the bytes unless it has a
	// '-' (multipart) or the bucket encrypts with KMS.
	ETag string
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
	lr := newLineReader(br, maxLine)
	for {
		text, long, err := lr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: read line %d: %w", ErrManifest, lr.line+1, err)
		}
		if long {
			bad(BadLine{Line: lr.line, Reason: tooLong(maxLine)})
			continue
		}
		if len(strings.TrimSpace(string(text))) == 0 {
			continue
		}
		key := string(text)
		if err := checkKey(key); err != nil {
			bad(BadLine{Line: lr.line, Reason: err.Error()})
			continue
		}
		if lr.line%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := fn(Object{Bucket: bucket, Key: key, Size: -1}); err != nil {
			return err
		}
	}
}

func readCSV(ctx context.Context, br *bufio.Reader, defaultBucket string, bad func(BadLine), fn func(Object) error) error {
	cr := newCSVReader(br, maxLine)
	for n := 0; ; n++ {
		rec, line, reason, err := cr.read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: read line %d: %w", ErrManifest, cr.lr.line+1, err)
		}
		if reason != "" {
			bad(BadLine{Line: line, Reason: reason})
			continue
		}
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
	if err := checkVersion(o.Version); err != nil {
		return Object{}, err.Error()
	}
	return o, ""
}

// checkKey refuses what S3 cannot hold as a key, and so what the ledger
// (PostgreSQL text, which must be UTF-8) must never be sent: one bad key
// would fail a whole batch.
func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty key")
	case len(key) > 1024:
		return fmt.Errorf("key is %d bytes, S3 allows 1024", len(key))
	case !utf8.ValidString(key):
		return errors.New("key is not valid UTF-8")
	case strings.ContainsRune(key, 0):
		return errors.New("key contains a NUL byte")
	}
	return nil
}

// checkVersion refuses a version ID the ledger could not store.
func checkVersion(v string) error {
	switch {
	case len(v) > 1024:
		return fmt.Errorf("version ID is %d bytes", len(v))
	case !utf8.ValidString(v):
		return errors.New("version ID is not valid UTF-8")
	case strings.ContainsRune(v, 0):
		return errors.New("version ID contains a NUL byte")
	}
	return nil
}
