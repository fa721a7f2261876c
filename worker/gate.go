package worker

import (
	"context"
	"fmt"
	"reverify"
	"sync"
	"time"
)

// gate stops work on runs that were paused or cancelled: a paused run's
// tasks wait without failing (a WaitError); a cancelled (or failed) run's
// tasks are done without fetching the image or calling the API.
func (j *job) gate(ctx context.Context) ending {
	if j.h.runs == nil {
		return nil
	}
	state, err := j.h.runs.RunState(ctx, j.p.RunID)
	switch {
	case err != nil:
		return func(context.Context) error { return j.ledgerError(err) }
	case state.Holding():
		return returns(&WaitError{After: 15 * time.Second, Reason: reverify.WaitRunHeld, Err: fmt.Errorf("run %s is %s", j.p.RunID, state)})
	case state == reverify.RunCancelled || state == reverify.RunFailed:
		return func(ctx context.Context) error {
			j.log.InfoContext(ctx, "skipping task of inactive run", "run_status", state)
			return nil
		}
	}
	return nil
}

// CachedRunGate answers RunState from a short-lived in-process cache, so
// the handler asks PostgreSQL about a run at most once per TTL per process
// instead of once per task. A cancel takes up to the TTL to be seen here;
// the ledger still refuses to start a call for a run that is not being
// sent meanwhile.
type CachedRunGate struct{ c *ttlCache[reverify.RunStatus] }

// NewCachedRunGate caches src's answers for ttl (default 2s).
func NewCachedRunGate(src RunGate, ttl time.Duration) *CachedRunGate {
	return &CachedRunGate{c: newTTLCache(src.RunState, ttl)}
}

// RunState implements RunGate. Concurrent callers for the same run share
// one lookup; errors are not cached.
func (g *CachedRunGate) RunState(ctx context.Context, runID string) (reverify.RunStatus, error) {
	return g.c.get(ctx, runID)
}

// CachedRunLimits answers RunLimits from a short-lived in-process cache:
// a run's changed caps hold within the TTL.
type CachedRunLimits struct{ c *ttlCache[reverify.RunLimits] }

// NewCachedRunLimits caches src's answers for ttl (default 2s).
func NewCachedRunLimits(src RunLimiter, ttl time.Duration) *CachedRunLimits {
	return &CachedRunLimits{c: newTTLCache(src.RunLimits, ttl)}
}

// RunLimits implements RunLimiter.
func (l *CachedRunLimits) RunLimits(ctx context.Context, runID string) (reverify.RunLimits, error) {
	return l.c.get(ctx, runID)
}

// ttlCache keeps a per-run answer for a TTL; concurrent callers for the
// same run share one lookup; errors are not cached.
type ttlCache[V any] struct {
	load func(ctx context.Context, runID string) (V, error)
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]cacheEntry[V]
}

type cacheEntry[V any] struct {
	v       V
	expires time.Time
	ready   chan struct{} // closed once v is loaded
}

func newTTLCache[V any](load func(context.Context, string) (V, error), ttl time.Duration) *ttlCache[V] {
	if ttl <= 0 {
		ttl = 2 * time.Second
	}
	return &ttlCache[V]{load: load, ttl: ttl, now: time.Now, entries: map[string]cacheEntry[V]{}}
}

func (g *ttlCache[V]) get(ctx context.Context, runID string) (V, error) {
	g.mu.Lock()
	e, ok := g.entries[runID]
	if ok && (e.ready != nil || g.now().Before(e.expires)) {
		g.mu.Unlock()
		if e.ready != nil {
			select {
			case <-e.ready:
				return g.get(ctx, runID)
			case <-ctx.Done():
				var zero V
				return zero, ctx.Err()
			}
		}
		return e.v, nil
	}
	if len(g.entries) > 10000 { // runs come and go; keep the map small
		clear(g.entries)
	}
	ready := make(chan struct{})
	g.entries[runID] = cacheEntry[V]{ready: ready}
	g.mu.Unlock()

	v, err := g.load(ctx, runID)
	g.mu.Lock()
	if err != nil {
		delete(g.entries, runID)
	} else {
		g.entries[runID] = cacheEntry[V]{v: v, expires: g.now().Add(g.ttl)}
	}
	g.mu.Unlock()
	close(ready)
	return v, err
}
