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
type CachedRunGate struct {
	src RunGate
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]gateEntry
}

type gateEntry struct {
	state   reverify.RunStatus
	expires time.Time
	ready   chan struct{} // closed once state is loaded
}

// NewCachedRunGate caches src's answers for ttl (default 2s).
func NewCachedRunGate(src RunGate, ttl time.Duration) *CachedRunGate {
	if ttl <= 0 {
		ttl = 2 * time.Second
	}
	return &CachedRunGate{src: src, ttl: ttl, now: time.Now, entries: map[string]gateEntry{}}
}

// RunState implements RunGate. Concurrent callers for the same run share
// one lookup; errors are not cached.
func (g *CachedRunGate) RunState(ctx context.Context, runID string) (reverify.RunStatus, error) {
	g.mu.Lock()
	e, ok := g.entries[runID]
	if ok && (e.ready != nil || g.now().Before(e.expires)) {
		g.mu.Unlock()
		if e.ready != nil {
			select {
			case <-e.ready:
				return g.RunState(ctx, runID)
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		return e.state, nil
	}
	if len(g.entries) > 10000 { // runs come and go; keep the map small
		clear(g.entries)
	}
	ready := make(chan struct{})
	g.entries[runID] = gateEntry{ready: ready}
	g.mu.Unlock()

	state, err := g.src.RunState(ctx, runID)
	g.mu.Lock()
	if err != nil {
		delete(g.entries, runID)
	} else {
		g.entries[runID] = gateEntry{state: state, expires: g.now().Add(g.ttl)}
	}
	g.mu.Unlock()
	close(ready)
	return state, err
}
