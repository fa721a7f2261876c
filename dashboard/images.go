package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"reverify/storage/objects"
)

// ErrImageNotFound means the object is no longer in storage.
var ErrImageNotFound = errors.New("image not found in storage")

// GetObjectAPI is the one S3 call the dashboard makes; *s3.Client has it.
type GetObjectAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// S3Images opens stored images for streaming to the browser.
type S3Images struct{ api GetObjectAPI }

// NewS3Images returns an image source over api.
func NewS3Images(api GetObjectAPI) *S3Images { return &S3Images{api: api} }

// Open starts reading an object. The caller closes the body. Errors wrap
// ErrImageNotFound when the object or bucket is gone.
func (s *S3Images) Open(ctx context.Context, bucket, key, version string) (io.ReadCloser, int64, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if version != "" {
		in.VersionId = aws.String(version)
	}
	out, err := s.api.GetObject(ctx, in)
	if err != nil {
		// Named by its key hash, the SDK's text (with the URL) redacted:
		// the error is logged.
		err = objects.WrapError("get", bucket, key, err)
		if errors.Is(err, objects.ErrNotFound) {
			return nil, 0, fmt.Errorf("%w: %w", ErrImageNotFound, err)
		}
		return nil, 0, err
	}
	return out.Body, aws.ToInt64(out.ContentLength), nil
}
