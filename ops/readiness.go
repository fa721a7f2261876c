package ops

import (
	"context"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"reverify/health"
)

// LedgerProbe is what readiness asks of the ledger (*postgres.Store).
type LedgerProbe interface {
	Ping(ctx context.Context) error
	// SchemaCurrent fails while migrations are pending, e.g. while a
	// rollout waits for `reverify migrate`.
	SchemaCurrent(ctx context.Context) error
}

// Readiness checks the dependencies every long-running command needs:
// Redis, PostgreSQL, and a schema at this binary's version. close releases
// the Redis client it makes.
func Readiness(redisOpt asynq.RedisConnOpt, ledger LedgerProbe) ([]health.Check, func() error) {
	rc, _ := redisOpt.MakeRedisClient().(redis.UniversalClient)
	checks := []health.Check{
		{Name: "postgres", Func: ledger.Ping},
		{Name: "migrations", Func: ledger.SchemaCurrent},
	}
	if rc == nil {
		return checks, func() error { return nil }
	}
	checks = append(checks, health.Check{Name: "redis", Func: func(ctx context.Context) error { return rc.Ping(ctx).Err() }})
	return checks, rc.Close
}
