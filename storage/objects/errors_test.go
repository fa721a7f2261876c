package objects

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/require"
)

func responseError(status int, err error) error {
	return &smithy.OperationError{
		ServiceID:     "S3",
		OperationName: "GetObject",
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      err,
			},
		},
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"NoSuchKey type", responseError(404, &types.NoSuchKey{}), ErrNotFound},
		{"NotFound type", responseError(404, &types.NotFound{}), ErrNotFound},
		{"NoSuchBucket type", responseError(404, &types.NoSuchBucket{}), ErrBucketNotFound},
		{"NoSuchBucket code", responseError(404, &smithy.GenericAPIError{Code: "NoSuchBucket"}), ErrBucketNotFound},
		{"NoSuchVersion code", responseError(404, &smithy.GenericAPIError{Code: "NoSuchVersion"}), ErrNotFound},
		{"AccessDenied code", responseError(403, &smithy.GenericAPIError{Code: "AccessDenied"}), ErrAccessDenied},
		{"bare 403", responseError(403, errors.New("forbidden")), ErrAccessDenied},
		{"bare 404", responseError(404, errors.New("not found")), ErrNotFound},
		{"SlowDown", responseError(503, &smithy.GenericAPIError{Code: "SlowDown"}), nil},
		{"500", responseError(500, &smithy.GenericAPIError{Code: "InternalError"}), nil},
		{"network", fmt.Errorf("dial: %w", errors.New("connection refused")), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := classify(c.err)
			require.Equal(t, c.want, got)

			wrapped := opError("get", "b", "k", c.err)
			require.ErrorIs(t, wrapped, c.err, "original cause reachable")
			if c.want != nil {
				require.ErrorIs(t, wrapped, c.want)
				require.False(t, IsRetryable(wrapped))
			} else {
				require.True(t, IsRetryable(wrapped))
			}
		})
	}
}

func TestIsRetryable(t *testing.T) {
	t.Parallel()
	require.False(t, IsRetryable(nil))
	require.False(t, IsRetryable(fmt.Errorf("x: %w", context.Canceled)))
	require.True(t, IsRetryable(fmt.Errorf("x: %w", context.DeadlineExceeded)))
	require.False(t, IsRetryable(fmt.Errorf("x: %w", ErrTooLarge)))
	require.False(t, IsRetryable(fmt.Errorf("x: %w", ErrBucketNotFound)))
}

func TestUnquoteETag(t *testing.T) {
	t.Parallel()
	require.Equal(t, "abc", unquoteETag(`"abc"`))
	require.Equal(t, "abc", unquoteETag(`W/"abc"`))
	require.Equal(t, "abc-2", unquoteETag(`abc-2`))
	require.Equal(t, `"`, unquoteETag(`"`))
}
