package objects

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// DefaultRegion is used when neither Config.Region nor the AWS environment
// (AWS_REGION, shared config) names a region.
const DefaultRegion = "us-east-1"

// Config says how to reach an S3-compatible object store.
type Config struct {
	// Endpoint is the base URL of an S3-compatible server, e.g.
	// "http://127.0.0.1:7070". Empty means AWS S3.
	Endpoint string
	// Region defaults to the AWS environment, then DefaultRegion.
	Region string
	// PathStyle addresses buckets as http://host/bucket/key instead of
	// http://bucket.host/key. Most S3-compatible servers need it.
	PathStyle bool
	// AccessKey and SecretKey are static credentials. Empty means the default
	// AWS credential chain (environment, shared files, IAM role, ...).
	AccessKey, SecretKey string
	// SDKGet makes Open's Store fetch through the SDK even against an
	// explicit Endpoint, for a server the direct GET does not suit.
	SDKGet bool
}

// Open returns a Store for cfg. With an explicit endpoint (an
// S3-compatible server), objects are fetched with directly signed GETs
// (see directGetter) unless cfg.SDKGet; listing, HEAD and AWS S3 itself go
// through the SDK.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Store, error) {
	awsCfg, err := loadConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := New(newClient(awsCfg, cfg), opts...)
	if cfg.Endpoint != "" && !cfg.SDKGet {
		if s.direct, err = newDirectGetter(awsCfg.HTTPClient, awsCfg.Credentials, awsCfg.Region, cfg.Endpoint, cfg.PathStyle); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// NewClient builds an S3 client for cfg, tuned for many concurrent GETs
// against one host.
func NewClient(ctx context.Context, cfg Config) (*s3.Client, error) {
	awsCfg, err := loadConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return newClient(awsCfg, cfg), nil
}

func newClient(awsCfg aws.Config, cfg Config) *s3.Client {
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})
}

func loadConfig(ctx context.Context, cfg Config) (aws.Config, error) {
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return aws.Config{}, errors.New("s3 config: access key and secret key must be set together")
	}

	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		// Workers fetch many small objects from one endpoint concurrently;
		// the net/http default of 2 idle connections per host would make
		// most requests open a new connection.
		tr.MaxIdleConns = 1024
		tr.MaxIdleConnsPerHost = 512
		tr.IdleConnTimeout = 90 * time.Second
	})

	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		// S3-compatible servers often reject the flexible-checksum headers
		// the SDK sends by default since service/s3 v1.73.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		// Callers (asynq) own retries across attempts; the SDK still retries
		// each call a few times, but without the client-side retry token
		// bucket, which under throttling fails calls with "retry quota
		// exceeded" instead of retrying them.
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	} else {
		opts = append(opts, config.WithDefaultRegion(DefaultRegion))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}

	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	if awsCfg.Credentials == nil {
		awsCfg.Credentials = aws.AnonymousCredentials{}
	}
	return awsCfg, nil
}
