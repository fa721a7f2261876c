package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const defaultRedisAddr = "127.0.0.1:6379"

var redisService service // test-only; see docker.go

// RedisAddr returns host:port of the Redis shared by all tests. Nothing is
// flushed: tests isolate themselves with unique queue names (see Queue).
func RedisAddr(t testing.TB) string {
	t.Helper()
	return redisService.get(t, func(s *service) {
		addr := os.Getenv("REVERIFY_TEST_REDIS_ADDR")
		if addr == "" {
			addr = defaultRedisAddr
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		err := c.Ping(ctx).Err()
		if err == nil {
			s.addr = addr
			return
		}
		s.missing = fmt.Sprintf("Redis at %s does not answer (set REVERIFY_TEST_REDIS_ADDR): %v", addr, err)
		s.fallback(redisContainerAddr)
	})
}
