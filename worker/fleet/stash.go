package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Stash keeps the answer of a paid call beside its task while the ledger
// cannot be written, so a retry records that answer instead of paying for
// the call again.
type Stash struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// NewStash keeps answers for ttl (default 7 days).
func NewStash(rdb redis.UniversalClient, prefix string, ttl time.Duration) *Stash {
	if prefix == "" {
		prefix = "reverify:outcome:"
	}
	if ttl <= 0 {
		ttl = 7 * 24 * time.Hour
	}
	return &Stash{rdb: rdb, prefix: prefix, ttl: ttl}
}

// Save stores data under the task ID.
func (s *Stash) Save(ctx context.Context, taskID string, data []byte) error {
	if err := s.rdb.Set(ctx, s.prefix+taskID, data, s.ttl).Err(); err != nil {
		return fmt.Errorf("stash call outcome: %w", err)
	}
	return nil
}

// Load returns the stored data, or nil when there is none.
func (s *Stash) Load(ctx context.Context, taskID string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.prefix+taskID).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load stashed call outcome: %w", err)
	}
	return b, nil
}

// Drop forgets the stored data once it is in the ledger.
func (s *Stash) Drop(ctx context.Context, taskID string) error {
	if err := s.rdb.Del(ctx, s.prefix+taskID).Err(); err != nil {
		return fmt.Errorf("drop stashed call outcome: %w", err)
	}
	return nil
}
