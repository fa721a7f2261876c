package tasks

import (
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// NewPipelinedClient returns an asynq client for the producer whose Redis
// commands are auto-pipelined: the Enqueue calls of the producer's
// concurrent enqueuers share round trips instead of taking one each, which
// raises enqueue throughput on one Redis (BenchmarkProducerEnqueue;
// docs/performance.md). Task IDs, duplicates and errors behave as with
// asynq.NewClient. close releases the client and its connections; do not
// call client.Close.
//
// A single-node Redis and Sentinel (asynq's failover option makes a
// single-node client that follows the master) are pipelined; a Cluster
// gets a plain asynq client.
func NewPipelinedClient(opt asynq.RedisConnOpt) (client *asynq.Client, close func() error, err error) {
	rc, ok := opt.MakeRedisClient().(*redis.Client)
	if !ok {
		c := asynq.NewClient(opt)
		return c, c.Close, nil
	}
	ap, err := rc.AutoPipeline()
	if err != nil {
		_ = rc.Close()
		return nil, nil, fmt.Errorf("redis auto-pipeline: %w", err)
	}
	// The asynq client does not own a connection it was given: closing it
	// is closing the pipeliner and the Redis client under it.
	c := asynq.NewClientFromRedisClient(ap)
	return c, func() error { return errors.Join(ap.Close(), rc.Close()) }, nil
}
