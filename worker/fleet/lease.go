package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	renewScript   = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
)

// Lease is a fleet-wide lock its holder renews while it acts, so that of
// several processes exactly one does a job (fire schedules, feed the task
// queue); a holder that dies loses it within the TTL and another takes
// over. A Lease is used by one goroutine.
type Lease struct {
	rdb    redis.UniversalClient
	key    string
	holder string
	ttl    time.Duration
	held   bool
}

// NewLease returns the lease stored under key, held in holder's name
// (host/pid, say) for ttl at a time.
func NewLease(rdb redis.UniversalClient, key, holder string, ttl time.Duration) *Lease {
	return &Lease{rdb: rdb, key: key, holder: holder, ttl: ttl}
}

// Hold takes the lease when it is free, or renews it when this holder has
// it, and reports whether this holder has it now. Call it more often than
// the TTL. After an error the holder must act as if it had lost the lease.
func (l *Lease) Hold(ctx context.Context) (bool, error) {
	var err error
	if l.held {
		var n int
		n, err = renewScript.Run(ctx, l.rdb, []string{l.key}, l.holder, l.ttl.Milliseconds()).Int()
		l.held = err == nil && n == 1
	} else {
		l.held, err = l.rdb.SetNX(ctx, l.key, l.holder, l.ttl).Result()
	}
	if err != nil {
		l.held = false
		return false, fmt.Errorf("lease %s: %w", l.key, err)
	}
	return l.held, nil
}

// Held reports whether the last Hold found the lease this holder's.
func (l *Lease) Held() bool { return l.held }

// Release gives the lease up, when this holder has it.
func (l *Lease) Release(ctx context.Context) error {
	l.held = false
	if err := releaseScript.Run(ctx, l.rdb, []string{l.key}, l.holder).Err(); err != nil {
		return fmt.Errorf("release lease %s: %w", l.key, err)
	}
	return nil
}

// Marker is a key that tells whether Redis lost its data since it was
// last set: Redis kept without persistence forgets every queued task when
// it restarts, and the feeder then fills every window again at once.
type Marker struct {
	rdb redis.UniversalClient
	key string
}

// NewMarker returns the marker stored under key.
func NewMarker(rdb redis.UniversalClient, key string) *Marker { return &Marker{rdb: rdb, key: key} }

// Lost reports whether the marker is gone.
func (m *Marker) Lost(ctx context.Context) (bool, error) {
	n, err := m.rdb.Exists(ctx, m.key).Result()
	if err != nil {
		return false, fmt.Errorf("marker %s: %w", m.key, err)
	}
	return n == 0, nil
}

// Set puts the marker back.
func (m *Marker) Set(ctx context.Context) error {
	if err := m.rdb.Set(ctx, m.key, time.Now().UTC().Format(time.RFC3339), 0).Err(); err != nil {
		return fmt.Errorf("marker %s: %w", m.key, err)
	}
	return nil
}

// FeederKeys names the feeder's lease and marker for a ledger: workers of
// one ledger share them, workers of another (a test's own database, say)
// do not.
func FeederKeys(ledgerID string) (lease, marker string) {
	p := "reverify:{feeder-" + ledgerID + "}:"
	return p + "leader", p + "epoch"
}
