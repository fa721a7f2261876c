// Command seed puts generated face images (and a few bad objects) into an
// S3 bucket, so the docker compose stack has something to verify:
//
//	seed --bucket kyc --images 200
//
// It reads the S3 settings the binary does (REVERIFY_S3_ENDPOINT,
// REVERIFY_S3_REGION, REVERIFY_S3_PATH_STYLE, the AWS credential chain)
// and creates the bucket if needed; seeding again overwrites the same keys.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"reverify/demo"
	"reverify/storage/objects"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	bucket := fs.String("bucket", "kyc", "bucket to create and fill")
	n := fs.Int("images", 200, "objects to put under selfies/")
	wait := fs.Duration("wait", time.Minute, "how long to retry while S3 does not answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pathStyle, _ := strconv.ParseBool(os.Getenv("REVERIFY_S3_PATH_STYLE"))
	client, err := objects.NewClient(ctx, objects.Config{
		Endpoint: os.Getenv("REVERIFY_S3_ENDPOINT"), Region: os.Getenv("REVERIFY_S3_REGION"), PathStyle: pathStyle,
	})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*wait)
	for {
		counts, err := demo.Seed(ctx, client, *bucket, *n)
		if err == nil {
			fmt.Printf("seeded s3://%s/selfies/ with %d objects (%s)\n", *bucket, *n, counts)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "seed: S3 not ready, retrying:", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
