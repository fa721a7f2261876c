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

// Locks takes fleet-wide locks in one holder's name.
type Locks struct {
	rdb    redis.UniversalClient
	holder string
}

// NewLocks returns locks held as holder (e.g. host/pid).
func NewLocks(rdb redis.UniversalClient, holder string) *Locks {
	return &Locks{rdb: rdb, holder: holder}
}

// TryLock takes the lock name for ttl; see the TryLock function.
func (l *Locks) TryLock(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	return TryLock(ctx, l.rdb, name, l.holder, ttl)
}
