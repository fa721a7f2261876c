package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// TryLock takes a fleet-wide lock for ttl, for work that one process at a
// time should do (periodic reconciliation). It reports whether it got it;
// the lock is never released early, so the work runs at most once per ttl.
func TryLock(ctx context.Context, rdb redis.UniversalClient, name, holder string, ttl time.Duration) (bool, error) {
	ok, err := rdb.SetNX(ctx, "reverify:lock:"+name, holder, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("take lock %s: %w", name, err)
	}
	return ok, nil
}
