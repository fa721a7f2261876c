package fleet_test

import (
	"context"
	"errors"
	"reverify"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/worker/fleet"
)

// governors returns n governors sharing one fleet, as n worker processes
// would, each with its own Redis connection.
func governors(t *testing.T, n int, cfg fleet.Config) []*fleet.Governor {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = prefix(t)
	}
	var gs []*fleet.Governor
	for range n {
		rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
		t.Cleanup(func() { rdb.Close() })
		gs = append(gs, fleet.New(rdb, cfg))
	}
	return gs
}

// prefix is a fleet's Redis key prefix of its own for the test.
func prefix(t *testing.T) string {
	t.Helper()
	return "{" + testenv.Queue(t) + "}:"
}

func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func denied(t *testing.T, err error) *fleet.Denied {
	t.Helper()
	var d *fleet.Denied
	require.True(t, errors.As(err, &d), "want *fleet.Denied, got %v", err)
	return d
}

func TestInFlightCapIsFleetWide(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gs := governors(t, 3, fleet.Config{MaxInFlight: 5, MaxWait: 2 * time.Second})
	var inFlight, peak atomic.Int64
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			g := gs[i%len(gs)]
			p, err := g.Admit(ctx, "holder-"+string(rune('A'+i)))
			if err != nil {
				denied(t, err)
				return
			}
			n := inFlight.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(10 * time.Millisecond)
			inFlight.Add(-1)
			g.Release(ctx, p)
		})
	}
	wg.Wait()
	require.LessOrEqual(t, peak.Load(), int64(5))
	require.Equal(t, int64(5), peak.Load(), "the cap is reached, not just respected")
}

func TestCrashedHoldersSlotExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := governors(t, 1, fleet.Config{MaxInFlight: 1, SlotLease: 300 * time.Millisecond, MaxWait: 50 * time.Millisecond})[0]
	_, err := g.Admit(ctx, "crashed") // never released
	require.NoError(t, err)
	_, err = g.Admit(ctx, "next")
	require.Equal(t, reverify.WaitFleetBusy, denied(t, err).Reason)
	time.Sleep(350 * time.Millisecond)
	_, err = g.Admit(ctx, "next")
	require.NoError(t, err)
}

func TestRateIsFleetWide(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gs := governors(t, 2, fleet.Config{RatePerSecond: 20, MaxWait: 5 * time.Second})
	start := time.Now()
	var wg sync.WaitGroup
	var admitted atomic.Int64
	for i := range 40 {
		wg.Go(func() {
			_, err := gs[i%2].Admit(ctx, "h")
			require.NoError(t, err)
			admitted.Add(1)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	require.EqualValues(t, 40, admitted.Load())
	// 20/s with a burst of one: 40 calls take about two seconds across
	// both processes, not one.
	require.Greater(t, elapsed, 1800*time.Millisecond)
}

func TestDailyBudgetWaitsForTheNextUTCDay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 23, 0, 0, 0, time.UTC)
	g := governors(t, 1, fleet.Config{DailyBudget: 3, Now: func() time.Time { return now }})[0]
	for range 3 {
		_, err := g.Admit(ctx, "h")
		require.NoError(t, err)
	}
	_, err := g.Admit(ctx, "h")
	d := denied(t, err)
	require.Equal(t, reverify.WaitBudget, d.Reason)
	require.Equal(t, time.Hour, d.After)
	st := status(t, g)
	require.True(t, st.BudgetSpent())
	require.EqualValues(t, 3, st.BudgetUsed)

	now = now.Add(2 * time.Hour) // a new UTC day
	_, err = g.Admit(ctx, "h")
	require.NoError(t, err)
}

func TestAuthCircuitStopsTheFleetThenCloses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gs := governors(t, 2, fleet.Config{AuthCooldown: 1500 * time.Millisecond})
	opened, err := gs[0].Report(ctx, fleet.AuthError, "HTTP 401")
	require.NoError(t, err)
	require.True(t, opened)
	opened, err = gs[1].Report(ctx, fleet.AuthError, "HTTP 401")
	require.NoError(t, err)
	require.False(t, opened, "only the first report opens it, so it is logged once")

	_, err = gs[1].Admit(ctx, "h")
	d := denied(t, err)
	require.Equal(t, reverify.WaitAuthCircuit, d.Reason)
	require.LessOrEqual(t, d.After, 1500*time.Millisecond)
	st := status(t, gs[1])
	require.Positive(t, st.AuthOpenFor)
	require.Equal(t, "HTTP 401", st.AuthReason)

	time.Sleep(1600 * time.Millisecond)
	_, err = gs[1].Admit(ctx, "h")
	require.NoError(t, err, "probes again after the cool-down")
}

func TestOutageCircuitOpensOnMostlyFailingCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := governors(t, 1, fleet.Config{OutageMinFails: 5, OutageWindow: time.Minute, OutageCooldown: time.Minute})[0]
	// 20 calls, 4 failures: not an outage.
	for range 20 {
		_, err := g.Admit(ctx, "h")
		require.NoError(t, err)
	}
	for range 4 {
		opened, err := g.Report(ctx, fleet.Transient, "")
		require.NoError(t, err)
		require.False(t, opened)
	}
	// Failures catch up with half the calls: an outage.
	var opened bool
	for range 6 {
		o, err := g.Report(ctx, fleet.Transient, "")
		require.NoError(t, err)
		opened = opened || o
	}
	require.True(t, opened)
	_, err := g.Admit(ctx, "h")
	require.Equal(t, reverify.WaitOutageCircuit, denied(t, err).Reason)
}

func TestStashAndLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { rdb.Close() })
	prefix := testenv.Queue(t)
	s := fleet.NewStash(rdb, prefix+":", time.Minute)
	got, err := s.Load(ctx, "task-1")
	require.NoError(t, err)
	require.Nil(t, got)
	require.NoError(t, s.Save(ctx, "task-1", []byte(`{"call":{}}`)))
	got, err = s.Load(ctx, "task-1")
	require.NoError(t, err)
	require.JSONEq(t, `{"call":{}}`, string(got))
	require.NoError(t, s.Drop(ctx, "task-1"))
	got, err = s.Load(ctx, "task-1")
	require.NoError(t, err)
	require.Nil(t, got)

	ok, err := fleet.TryLock(ctx, rdb, prefix, "a", time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = fleet.TryLock(ctx, rdb, prefix, "b", time.Minute)
	require.NoError(t, err)
	require.False(t, ok)
}

// TestRateDeferralSpendsNoBudget: a call the fleet rate defers is not
// counted against the daily budget.
func TestRateDeferralSpendsNoBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := governors(t, 1, fleet.Config{RatePerSecond: 1, DailyBudget: 100, MaxWait: 10 * time.Millisecond})[0]
	_, err := g.Admit(ctx, "h")
	require.NoError(t, err)
	for range 3 {
		_, err = g.Admit(ctx, "h")
		require.Equal(t, reverify.WaitFleetRate, denied(t, err).Reason)
	}
	st := status(t, g)
	require.EqualValues(t, 1, st.BudgetUsed, "only the admitted call counts")
}

// TestWithdrawGivesBackTheAdmission: an admission whose call is not made
// (the ledger said the object needs none) frees its slot and spends no
// budget.
func TestWithdrawGivesBackTheAdmission(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := governors(t, 1, fleet.Config{MaxInFlight: 1, DailyBudget: 100, MaxWait: 10 * time.Millisecond})[0]
	p, err := g.Admit(ctx, "a")
	require.NoError(t, err)
	_, err = g.Admit(ctx, "b")
	require.Equal(t, reverify.WaitFleetBusy, denied(t, err).Reason, "the one slot is taken")
	g.Withdraw(ctx, p)
	st := status(t, g)
	require.Zero(t, st.BudgetUsed, "no call was made")
	_, err = g.Admit(ctx, "b")
	require.NoError(t, err, "the slot is free again")
}

// status reads the fleet's state as g sees it.
func status(t *testing.T, g *fleet.Governor) fleet.Status {
	t.Helper()
	st, err := g.Status(context.Background())
	require.NoError(t, err)
	return st
}
