package worker

import (
	"context"
	"fmt"
	"reverify"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify/worker/fleet"
)

// tokenFleet answers Admit when the test hands out an answer: an
// admission, or a refusal.
type tokenFleet struct {
	answers   chan error
	mu        sync.Mutex
	asked     int
	withdrawn int
}

func (f *tokenFleet) Admit(ctx context.Context, holder string) (fleet.Permit, error) {
	f.mu.Lock()
	f.asked++
	f.mu.Unlock()
	select {
	case err := <-f.answers:
		return fleet.Permit{}, err
	case <-ctx.Done():
		return fleet.Permit{}, ctx.Err()
	}
}

func (f *tokenFleet) Withdraw(context.Context, fleet.Permit) {
	f.mu.Lock()
	f.withdrawn++
	f.mu.Unlock()
}

func (f *tokenFleet) waitAsked(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.asked >= n
	}, 5*time.Second, time.Millisecond)
}

// TestFairGateSharesByRunNotByTask: a run with 2 tasks waiting beside one
// with 12 gets every other admission until its tasks are served; weights
// 6:3 get two admissions to one; a refusal goes to the run with the most
// tasks waiting; a task that leaves gives back an admission it was handed.
func TestFairGateSharesByRunNotByTask(t *testing.T) {
	t.Parallel()
	type waiter struct {
		run  string
		done chan error
	}
	start := func(t *testing.T, g *fairGate, f *tokenFleet, ctx context.Context, counts map[string]int, weights map[string]int) []waiter {
		t.Helper()
		var ws []waiter
		for _, run := range []string{"big", "small"} {
			for i := range counts[run] {
				w := waiter{run: run, done: make(chan error, 1)}
				go func() {
					_, err := g.Admit(ctx, run, weights[run], fmt.Sprintf("%s-%d", run, i))
					w.done <- err
				}()
				ws = append(ws, w)
				f.waitAsked(t, len(ws)) // every task is in line before the first answer
			}
		}
		return ws
	}
	// served hands out n answers one at a time and returns the runs
	// served, in order.
	served := func(t *testing.T, f *tokenFleet, ws []waiter, answers ...error) []string {
		t.Helper()
		var order []string
		seen := map[int]bool{}
		for _, a := range answers {
			f.answers <- a
			require.Eventually(t, func() bool {
				for i, w := range ws {
					if seen[i] {
						continue
					}
					select {
					case err := <-w.done:
						seen[i] = true
						order = append(order, fmt.Sprintf("%s:%v", w.run, err != nil))
						return true
					default:
					}
				}
				return false
			}, 5*time.Second, time.Millisecond)
		}
		return order
	}

	t.Run("equal weights", func(t *testing.T) {
		t.Parallel()
		f := &tokenFleet{answers: make(chan error)}
		g := newFairGate(f)
		ws := start(t, g, f, context.Background(), map[string]int{"big": 12, "small": 2}, map[string]int{"big": 3, "small": 3})
		got := served(t, f, ws, nil, nil, nil, nil, nil, nil)
		require.Equal(t, []string{"big:false", "small:false", "big:false", "small:false", "big:false", "big:false"}, got)
		served(t, f, ws, make([]error, 8)...) // the rest, so nothing is left waiting
	})
	t.Run("weights 6 and 3", func(t *testing.T) {
		t.Parallel()
		f := &tokenFleet{answers: make(chan error)}
		g := newFairGate(f)
		ws := start(t, g, f, context.Background(), map[string]int{"big": 6, "small": 6}, map[string]int{"big": 3, "small": 6})
		got := served(t, f, ws, nil, nil, nil, nil, nil, nil)
		require.Equal(t, 4, countRun(got, "small:false"), "two admissions in three to weight 6: %v", got)
		served(t, f, ws, make([]error, 6)...)
	})
	t.Run("refusals go to the fullest run", func(t *testing.T) {
		t.Parallel()
		f := &tokenFleet{answers: make(chan error)}
		g := newFairGate(f)
		ws := start(t, g, f, context.Background(), map[string]int{"big": 5, "small": 1}, map[string]int{"big": 3, "small": 3})
		denied := &fleet.Denied{Reason: reverify.WaitFleetRate, After: time.Second}
		got := served(t, f, ws, denied, denied, denied)
		require.Equal(t, []string{"big:true", "big:true", "big:true"}, got, "the small run's one task keeps its place")
		served(t, f, ws, nil, nil, nil)
	})
	t.Run("a task that leaves", func(t *testing.T) {
		t.Parallel()
		f := &tokenFleet{answers: make(chan error)}
		g := newFairGate(f)
		ctx, cancel := context.WithCancel(context.Background())
		ws := start(t, g, f, ctx, map[string]int{"big": 2}, map[string]int{"big": 3})
		cancel()
		for _, w := range ws {
			require.ErrorIs(t, <-w.done, context.Canceled)
		}
		// Their requests are still answered, and given back.
		f.answers <- nil
		f.answers <- nil
		require.Eventually(t, func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.withdrawn == 2
		}, 5*time.Second, time.Millisecond)
	})
}

func countRun(order []string, s string) int {
	n := 0
	for _, o := range order {
		if o == s {
			n++
		}
	}
	return n
}
