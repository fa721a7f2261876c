package worker

import (
	"sync"
	"time"
)

// circuit stops API calls for a cool-down after the API refused the key
// (401/403): sending it again would fail every image.
type circuit struct {
	mu        sync.Mutex
	openUntil time.Time
	reason    string
	now       func() time.Time
}

func newCircuit(now func() time.Time) *circuit { return &circuit{now: now} }

// trip opens the circuit for d; it reports whether it was closed before.
func (c *circuit) trip(d time.Duration, reason string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	wasClosed := !c.now().Before(c.openUntil)
	c.openUntil = c.now().Add(d)
	c.reason = reason
	return wasClosed
}

// open returns how long the circuit stays open, and why; 0 when closed.
func (c *circuit) open() (time.Duration, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	left := c.openUntil.Sub(c.now())
	if left <= 0 {
		return 0, ""
	}
	return left, c.reason
}
