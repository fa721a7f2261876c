package objects

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Permanent errors. Every error the Store returns that is none of these is
// transient (throttling, 5xx, network, timeouts) and worth retrying; see
// IsRetryable. Errors wrap both the sentinel and the SDK's original error.
var (
	// ErrNotFound: the object (or the requested version) does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrBucketNotFound: the bucket does not exist. It wraps ErrNotFound, so
	// errors.Is(err, ErrNotFound) also holds for a missing bucket; check
	// ErrBucketNotFound first to tell them apart.
	ErrBucketNotFound = fmt.Errorf("bucket not found: %w", ErrNotFound)
	// ErrAccessDenied: the credentials may not read the bucket or object
	// (403, bad key, bad signature).
	ErrAccessDenied = errors.New("access denied")
	// ErrTooLarge: the object is larger than the caller's limit.
	ErrTooLarge = errors.New("object too large")
)

// IsRetryable reports whether err is worth retrying: true for everything
// except a nil error, the permanent sentinels above and a cancelled context.
func IsRetryable(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, ErrNotFound), // includes ErrBucketNotFound
		errors.Is(err, ErrTooLarge),
		errors.Is(err, ErrAccessDenied),
		errors.Is(err, context.Canceled):
		return false
	}
	return true
}

// classify translates an SDK error into one of the permanent sentinels, or
// nil when the error is transient. It is the only place that inspects SDK
// error types, codes and HTTP statuses.
func classify(err error) error {
	if err == nil {
		return nil
	}

	var (
		noSuchKey    *types.NoSuchKey
		notFound     *types.NotFound
		noSuchBucket *types.NoSuchBucket
	)
	switch {
	case errors.As(err, &noSuchBucket):
		return ErrBucketNotFound
	case errors.As(err, &noSuchKey), errors.As(err, &notFound):
		return ErrNotFound
	}

	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchBucket":
			return ErrBucketNotFound
		case "NoSuchKey", "NotFound", "NoSuchVersion":
			return ErrNotFound
		case "AccessDenied", "Forbidden", "AllAccessDisabled", "AccountProblem",
			"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken":
			return ErrAccessDenied
		case "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
			"TooManyRequests", "RequestTimeout", "RequestTimeTooSkewed",
			"InternalError", "ServiceUnavailable", "Busy":
			return nil
		}
	}

	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		switch respErr.HTTPStatusCode() {
		case http.StatusNotFound:
			return ErrNotFound
		case http.StatusForbidden:
			return ErrAccessDenied
		}
	}
	return nil
}

// opError wraps err for operation op on bucket/key, adding the sentinel that
// classify finds so that callers can use errors.Is while the SDK error stays
// reachable with errors.As.
func opError(op, bucket, key string, err error) error {
	return wrapAs(op, bucket, key, classify(err), err)
}

func wrapAs(op, bucket, key string, sentinel, err error) error {
	where := bucket
	if key != "" {
		where = bucket + "/" + key
	}
	if sentinel == nil {
		return fmt.Errorf("s3 %s %s: %w", op, where, err)
	}
	return fmt.Errorf("s3 %s %s: %w: %w", op, where, sentinel, err)
}
