package testenv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
)

// Containers are started at most once per test binary and shared by all its
// tests. They are not terminated explicitly: testcontainers' reaper (Ryuk)
// removes them when the test binary exits. This package-level state is
// test-only infrastructure.
var (
	dockerOnce sync.Once
	dockerErr  error

	pgContainer struct {
		once sync.Once
		url  string
		err  error
	}
	redisContainer struct {
		once sync.Once
		addr string
		err  error
	}
)

// errNoDocker means no usable Docker engine; the caller skips.
var errNoDocker = errors.New("no Docker engine available")

// dockerAvailable reports nil when a Docker engine answers.
func dockerAvailable() error {
	dockerOnce.Do(func() {
		dockerErr = func() (err error) {
			// The provider panics in some broken environments.
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("%w: %v", errNoDocker, r)
				}
			}()
			p, err := testcontainers.NewDockerProvider()
			if err != nil {
				return fmt.Errorf("%w: %v", errNoDocker, err)
			}
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.Health(ctx); err != nil {
				return fmt.Errorf("%w: %v", errNoDocker, err)
			}
			return nil
		}()
	})
	return dockerErr
}

// postgresContainerURL starts (once) a PostgreSQL container and returns its
// admin URL.
func postgresContainerURL() (string, error) {
	if err := dockerAvailable(); err != nil {
		return "", err
	}
	pgContainer.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c, err := tcpostgres.Run(ctx, "postgres:16-alpine",
			tcpostgres.WithDatabase("postgres"),
			tcpostgres.WithUsername("postgres"),
			tcpostgres.WithPassword("postgres"),
			tcpostgres.BasicWaitStrategies(),
		)
		if err != nil {
			pgContainer.err = fmt.Errorf("start postgres container: %w", err)
			return
		}
		pgContainer.url, pgContainer.err = c.ConnectionString(ctx, "sslmode=disable")
	})
	return pgContainer.url, pgContainer.err
}

// redisContainerAddr starts (once) a Redis container and returns host:port.
func redisContainerAddr() (string, error) {
	if err := dockerAvailable(); err != nil {
		return "", err
	}
	redisContainer.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c, err := tcredis.Run(ctx, "redis:7-alpine")
		if err != nil {
			redisContainer.err = fmt.Errorf("start redis container: %w", err)
			return
		}
		redisContainer.addr, redisContainer.err = c.PortEndpoint(ctx, "6379/tcp", "")
	})
	return redisContainer.addr, redisContainer.err
}
