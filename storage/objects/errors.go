package objects

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding/httpbinding"
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
	return wrapAs(op, objectName(bucket, key), key, classify(err), err)
}

// WrapError wraps an error of an S3 call about bucket/key made outside a
// Store (the dashboard's image stream) as the Store wraps its own:
// classified into the sentinels, the object named by its key hash, the
// SDK's text redacted.
func WrapError(op, bucket, key string, err error) error {
	if err == nil {
		return nil
	}
	return opError(op, bucket, key, err)
}

// objectName names an object in error text: its bucket (a bucket name is
// configuration, not personal data) and the hash of its key.
func objectName(bucket, key string) string {
	return bucket + " key_hash=" + KeyHash(bucket, key)
}

// prefixName names a listing in error text; a prefix can name a person
// (users/john-smith/) as well as a key can.
func prefixName(bucket, prefix string) string {
	if prefix == "" {
		return bucket
	}
	return bucket + " prefix_hash=" + KeyHash(bucket, prefix)
}

// objectError is an S3 error whose text names the object by its key hash:
// keys can name a person, and these errors reach logs, the ledger's
// messages and asynq's task records. The wrapped errors (the sentinel and
// the SDK's error) stay reachable with errors.Is and errors.As; their own
// text, which can carry the request URL, is redacted in Error.
type objectError struct {
	text string
	errs []error
}

func (e *objectError) Error() string   { return e.text }
func (e *objectError) Unwrap() []error { return e.errs }

// wrapAs builds the error of op on where (see objectName), sentinel (may be
// nil) wrapping err; secret is the key or prefix err's text must not show.
func wrapAs(op, where, secret string, sentinel, err error) error {
	e := &objectError{}
	var b strings.Builder
	b.WriteString("s3 " + op + " " + where + ": ")
	if sentinel != nil {
		b.WriteString(sentinel.Error() + ": ")
		e.errs = append(e.errs, sentinel)
	}
	b.WriteString(redact(err.Error(), secret))
	e.errs = append(e.errs, err)
	e.text = b.String()
	return e
}

// redacted replaces what error text must not show.
const redacted = "<redacted>"

// urlPath matches the path and query of a URL in error text (net/http's
// errors quote the request URL, whose path is the key).
var urlPath = regexp.MustCompile(`(https?://[^/\s"']+)/[^\s"']*`)

// redact removes the paths of URLs from text and every spelling of secret
// (raw, URL-escaped, Go-quoted) that error text may carry. Secrets of one
// or two bytes are left, or they would garble every word; URLs still go.
func redact(text, secret string) string {
	text = urlPath.ReplaceAllString(text, "$1/"+redacted)
	if len(secret) < 3 {
		return text
	}
	quoted := strconv.Quote(secret)
	for _, form := range []string{
		secret,
		httpbinding.EscapePath(secret, false),
		httpbinding.EscapePath(secret, true),
		url.PathEscape(secret),
		url.QueryEscape(secret),
		quoted[1 : len(quoted)-1],
	} {
		text = strings.ReplaceAll(text, form, redacted)
	}
	return text
}
