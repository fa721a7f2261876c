package main

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
)

// TestSeedFillsABucketTwice seeds versitygw (the compose stack's S3) the
// way the compose service does, twice: the second run finds the bucket.
func TestSeedFillsABucketTwice(t *testing.T) {
	srv := testenv.S3(t)
	t.Setenv("REVERIFY_S3_ENDPOINT", srv.Endpoint)
	t.Setenv("REVERIFY_S3_REGION", srv.Region)
	t.Setenv("REVERIFY_S3_PATH_STYLE", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	ctx := context.Background()
	for range 2 {
		require.NoError(t, run(ctx, []string{"--bucket", "kyc", "--images", "70", "--wait", "0s"}))
	}
	out, err := srv.Client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("kyc"), Prefix: aws.String("selfies/")})
	require.NoError(t, err)
	require.Len(t, out.Contents, 70)
}
