package tasks

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ActiveCounter counts the tasks workers hold right now (asynq's active
// list of a queue: taken from the queue and not yet done).
type ActiveCounter struct{ rdb redis.UniversalClient }

// NewActiveCounter returns a counter over the task queue's Redis.
func NewActiveCounter(rdb redis.UniversalClient) *ActiveCounter { return &ActiveCounter{rdb: rdb} }

// Active returns how many tasks of queues workers hold, in one round trip.
func (c *ActiveCounter) Active(ctx context.Context, queues []string) (int, error) {
	if len(queues) == 0 {
		return 0, nil
	}
	pipe := c.rdb.Pipeline()
	lens := make([]*redis.IntCmd, len(queues))
	for i, q := range queues {
		lens[i] = pipe.LLen(ctx, activeKey(q))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("count active tasks: %w", err)
	}
	n := 0
	for _, l := range lens {
		n += int(l.Val())
	}
	return n, nil
}

// activeKey is asynq's list of a queue's active tasks (asynq's
// internal/base.ActiveKey, which is not importable; TestActiveCounter
// holds it to asynq's behaviour).
func activeKey(queue string) string { return "asynq:{" + queue + "}:active" }
