package objects

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The S3 operations the Store uses, one interface each as in the SDK's
// feature/s3/manager. *s3.Client satisfies all of them.
type (
	ListObjectsV2API interface {
		ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	}
	GetObjectAPI interface {
		GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	}
	HeadObjectAPI interface {
		HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	}
	HeadBucketAPI interface {
		HeadBucket(ctx context.Context, in *s3.HeadBucketInput, optFns ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	}
)

// API is the subset of *s3.Client the Store uses.
type API interface {
	ListObjectsV2API
	GetObjectAPI
	HeadObjectAPI
	HeadBucketAPI
}

var _ API = (*s3.Client)(nil)

// Object describes one stored object. VersionID is empty when the server did
// not report one (always, for List).
type Object struct {
	Bucket       string
	Key          string
	ETag         string // without the surrounding quotes
	VersionID    string
	Size         int64
	LastModified time.Time
}

// Store reads objects from S3. It is safe for concurrent use.
type Store struct {
	api      API
	direct   *directGetter // when set, Get takes it instead of api
	pageSize int32
}

// Option configures a Store.
type Option func(*Store)

// WithPageSize sets how many keys List asks for per ListObjectsV2 page
// (S3's default and maximum is 1,000). Values <= 0 keep the server default.
func WithPageSize(n int32) Option {
	return func(s *Store) { s.pageSize = n }
}

// New returns a Store that calls api.
func New(api API, opts ...Option) *Store {
	s := &Store{api: api}
	for _, o := range opts {
		o(s)
	}
	return s
}

// List calls fn for every object under prefix in bucket, in key order, one
// ListObjectsV2 page at a time, so memory does not grow with the number of
// objects. Zero-byte keys ending in "/" (directory markers) are skipped.
//
// List stops at the first error fn returns and returns it unwrapped. Listing
// errors wrap ErrBucketNotFound, ErrAccessDenied, or are transient.
func (s *Store) List(ctx context.Context, bucket, prefix string, fn func(Object) error) error {
	return s.ListPages(ctx, bucket, prefix, "", func(page []Object, _ string) error {
		for _, o := range page {
			if err := fn(o); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListPages is List a page at a time, for callers that keep their place:
// it starts at token ("" = the first page) and passes fn each page with
// the token of the page after it ("" after the last). The page slice is
// reused once fn returns.
func (s *Store) ListPages(ctx context.Context, bucket, prefix, token string, fn func(page []Object, next string) error) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket)}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	if s.pageSize > 0 {
		in.MaxKeys = aws.Int32(s.pageSize)
	}
	var page []Object
	for {
		in.ContinuationToken = nil
		if token != "" {
			in.ContinuationToken = aws.String(token)
		}
		out, err := s.api.ListObjectsV2(ctx, in)
		if err != nil {
			return bucketError("list", bucket, prefix, err)
		}
		page = page[:0]
		for _, c := range out.Contents {
			key := aws.ToString(c.Key)
			size := aws.ToInt64(c.Size)
			if size == 0 && strings.HasSuffix(key, "/") {
				continue
			}
			page = append(page, Object{
				Bucket:       bucket,
				Key:          key,
				ETag:         unquoteETag(aws.ToString(c.ETag)),
				Size:         size,
				LastModified: aws.ToTime(c.LastModified),
			})
		}
		next := aws.ToString(out.NextContinuationToken)
		if !aws.ToBool(out.IsTruncated) {
			next = ""
		}
		if next != "" && next == token {
			return wrapAs("list", prefixName(bucket, prefix), prefix, nil, errors.New("the server returned the same continuation token twice"))
		}
		if err := fn(page, next); err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		token = next
	}
}

// bucketError classifies an error of an operation on a whole bucket (list,
// head bucket): there, only the bucket can be missing (HeadBucket's 404 has
// no body, so it arrives as "NotFound").
func bucketError(op, bucket, prefix string, err error) error {
	sentinel := classify(err)
	if errors.Is(sentinel, ErrNotFound) {
		sentinel = ErrBucketNotFound
	}
	return wrapAs(op, prefixName(bucket, prefix), prefix, sentinel, err)
}

// Get reads the object bucket/key (the given version, or the latest when
// versionID is "") into buf, which is reset first, and returns its metadata.
//
// maxBytes must be positive. An object larger than maxBytes is refused with
// ErrTooLarge without reading it: the declared Content-Length is checked
// first, and at most maxBytes+1 bytes are ever read. The returned Object
// then still carries the size the server declared (-1 if it declared none).
//
// Errors wrap ErrNotFound (missing key or version), ErrBucketNotFound,
// ErrAccessDenied, ErrTooLarge, or are transient. On error buf is empty.
func (s *Store) Get(ctx context.Context, bucket, key, versionID string, maxBytes int64, buf *bytes.Buffer) (Object, error) {
	buf.Reset()
	if maxBytes <= 0 {
		return Object{}, wrapAs("get", objectName(bucket, key), key, nil, fmt.Errorf("maxBytes must be positive, got %d", maxBytes))
	}

	out, err := s.get(ctx, getRequest{Bucket: bucket, Key: key, VersionID: versionID})
	if err != nil {
		return Object{}, opError("get", bucket, key, err)
	}
	// Closing an unread body makes net/http drop the connection rather than
	// drain it, which is what we want for refused objects.
	defer out.Body.Close()

	obj := Object{
		Bucket:       bucket,
		Key:          key,
		ETag:         unquoteETag(out.ETag),
		VersionID:    out.VersionID,
		Size:         -1,
		LastModified: out.LastModified,
	}
	if out.ContentLength != nil {
		obj.Size = *out.ContentLength
		if obj.Size > maxBytes {
			return obj, tooLarge(bucket, key, obj.Size, maxBytes)
		}
		// Room for the body and for the read that finds its end:
		// bytes.Buffer.ReadFrom wants MinRead bytes free before every read,
		// and would otherwise double an exactly-sized buffer just to see EOF.
		buf.Grow(int(obj.Size) + bytes.MinRead)
	}

	limit := maxBytes + 1
	if limit <= 0 { // maxBytes == math.MaxInt64
		limit = maxBytes
	}
	n, err := buf.ReadFrom(io.LimitReader(out.Body, limit))
	if err != nil {
		buf.Reset()
		return obj, opError("get", bucket, key, fmt.Errorf("read body: %w", err))
	}
	if n > maxBytes {
		buf.Reset()
		return obj, tooLarge(bucket, key, n, maxBytes)
	}
	if obj.Size >= 0 && n != obj.Size {
		buf.Reset()
		return obj, wrapAs("get", objectName(bucket, key), key, nil, fmt.Errorf("short body: read %d of %d bytes: %w", n, obj.Size, io.ErrUnexpectedEOF))
	}
	obj.Size = n
	return obj, nil
}

// Open starts reading the latest version of bucket/key, for files read as
// a stream (an S3 Inventory's manifest and data files); the caller closes
// the body. Errors wrap the same sentinels as Get.
func (s *Store) Open(ctx context.Context, bucket, key string) (io.ReadCloser, error) {
	out, err := s.get(ctx, getRequest{Bucket: bucket, Key: key})
	if err != nil {
		return nil, opError("get", bucket, key, err)
	}
	return out.Body, nil
}

// get sends one GET, directly when the Store has a direct getter.
func (s *Store) get(ctx context.Context, in getRequest) (*getResponse, error) {
	if s.direct != nil {
		return s.direct.get(ctx, in)
	}
	req := &s3.GetObjectInput{Bucket: aws.String(in.Bucket), Key: aws.String(in.Key)}
	if in.VersionID != "" {
		req.VersionId = aws.String(in.VersionID)
	}
	out, err := s.api.GetObject(ctx, req)
	if err != nil {
		return nil, err
	}
	return &getResponse{Body: out.Body, ContentLength: out.ContentLength, ETag: aws.ToString(out.ETag),
		VersionID: aws.ToString(out.VersionId), LastModified: aws.ToTime(out.LastModified)}, nil
}

func tooLarge(bucket, key string, size, maxBytes int64) error {
	return wrapAs("get", objectName(bucket, key), key, ErrTooLarge, fmt.Errorf("%d bytes or more, limit %d", size, maxBytes))
}

// Head returns the metadata of bucket/key (the given version, or the latest
// when versionID is "") without reading it. Errors wrap ErrNotFound,
// ErrAccessDenied, or are transient; a missing bucket reads as ErrNotFound
// because HEAD responses carry no error code.
func (s *Store) Head(ctx context.Context, bucket, key, versionID string) (Object, error) {
	in := &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	out, err := s.api.HeadObject(ctx, in)
	if err != nil {
		return Object{}, opError("head", bucket, key, err)
	}
	return Object{
		Bucket:       bucket,
		Key:          key,
		ETag:         unquoteETag(aws.ToString(out.ETag)),
		VersionID:    aws.ToString(out.VersionId),
		Size:         aws.ToInt64(out.ContentLength),
		LastModified: aws.ToTime(out.LastModified),
	}, nil
}

// CheckBucket verifies that bucket exists and the credentials may use it.
// Errors wrap ErrBucketNotFound, ErrAccessDenied, or are transient.
func (s *Store) CheckBucket(ctx context.Context, bucket string) error {
	_, err := s.api.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err == nil {
		return nil
	}
	return bucketError("head bucket", bucket, "", err)
}

// unquoteETag strips the double quotes S3 puts around ETags (and a weak
// "W/" prefix some servers add).
func unquoteETag(etag string) string {
	etag = strings.TrimPrefix(etag, "W/")
	if len(etag) >= 2 && etag[0] == '"' && etag[len(etag)-1] == '"' {
		return etag[1 : len(etag)-1]
	}
	return etag
}
