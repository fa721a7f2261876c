package dashboard_test

import (
	"context"
	"net"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify/dashboard"
	"reverify/storage/objects"
)

// TestImageErrorsNameObjectsByKeyHash: when S3 cannot be reached, the
// error the dashboard logs names the image by its key hash; the SDK's
// text, which quotes the request URL, is redacted.
func TestImageErrorsNameObjectsByKeyHash(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	endpoint := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	client, err := objects.NewClient(context.Background(), objects.Config{Endpoint: endpoint, PathStyle: true, AccessKey: "AKID", SecretKey: "secret"})
	require.NoError(t, err)

	const key = "users/john-smith-1977/selfie.jpg"
	_, _, err = dashboard.NewS3Images(client).Open(context.Background(), "kyc", key, "")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "john-smith")
	require.NotContains(t, err.Error(), url.PathEscape(key))
	require.Contains(t, err.Error(), "key_hash="+dashboard.KeyHash("kyc", key))
	require.NotErrorIs(t, err, dashboard.ErrImageNotFound)
}
