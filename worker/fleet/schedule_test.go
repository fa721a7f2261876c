package fleet_test

import (
	"bytes"
	"context"
	"log/slog"
	"reverify"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify/worker/fleet"
)

// clock is a settable time for fleet.Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func mustSchedule(t *testing.T, s string) reverify.RateSchedule {
	t.Helper()
	sch, err := reverify.ParseRateSchedule(s)
	require.NoError(t, err)
	return sch
}

// redisMicros is Redis's clock in µs, the clock of the fleet's GCRA.
func redisMicros(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	now, err := rdb.Time(context.Background()).Result()
	require.NoError(t, err)
	return now.UnixMicro()
}

func tat(t *testing.T, rdb *redis.Client, key string) int64 {
	t.Helper()
	s, err := rdb.Get(context.Background(), key).Result()
	require.NoError(t, err)
	n, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err)
	return n
}

// TestScheduledRateFollowsTheClock: with a fixed rate and a schedule, the
// rate is the schedule's at each admission, in the zone's wall clock
// across daylight saving, and the GCRA's arrival time carries across the
// boundary, so the first call after it is spaced at the new rate.
func TestScheduledRateFollowsTheClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pfx := prefix(t)
	clk := &clock{}
	sch := mustSchedule(t, "TZ=Europe/Berlin 08:00-20:00=40, 20:00-08:00=125")
	g := governors(t, 1, fleet.Config{Prefix: pfx, Schedule: sch, Now: clk.Now})[0]

	rates := []struct {
		name string
		at   string // UTC
		rate float64
		next string // UTC
	}{
		{"winter night before the spring shift", "2026-03-28T06:30:00Z", 125, "2026-03-28T07:00:00Z"},
		{"summer morning on the shift day", "2026-03-29T06:30:00Z", 40, "2026-03-29T18:00:00Z"},
		{"shift day, just before 08:00 CEST", "2026-03-29T05:59:00Z", 125, "2026-03-29T06:00:00Z"},
		{"autumn shift day, 19:30 CET", "2026-10-25T18:30:00Z", 40, "2026-10-25T19:00:00Z"},
		{"autumn shift day, 20:30 CET", "2026-10-25T19:30:00Z", 125, "2026-10-26T07:00:00Z"},
	}
	for _, tt := range rates {
		at, err := time.Parse(time.RFC3339, tt.at)
		require.NoError(t, err)
		clk.Set(at)
		st, err := g.Status(ctx)
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.rate, st.Rate, tt.name)
		require.Equal(t, fleet.RateSchedule, st.RateReason, tt.name)
		require.Equal(t, tt.next, st.RateChangesAt.UTC().Format(time.RFC3339), tt.name)
		require.Equal(t, sch.String(), st.Schedule.String())
	}

	// Calls: one before the boundary (125/s: 8 ms apart), the next after
	// it (40/s: 25 ms), reserved back to back from one arrival time.
	rdb := redisClient(t)
	key := pfx + "rate:fixed:tat"
	before, _ := time.Parse(time.RFC3339, "2026-03-29T05:50:00Z")
	after, _ := time.Parse(time.RFC3339, "2026-03-29T06:00:00Z")
	clk.Set(before)
	t0 := redisMicros(t, rdb) + 200_000
	require.NoError(t, rdb.Set(ctx, key, t0, time.Minute).Err())
	first := make(chan error, 1)
	go func() { _, err := g.Admit(ctx, "before"); first <- err }()
	require.Eventually(t, func() bool { return tat(t, rdb, key) != t0 }, 5*time.Second, time.Millisecond)
	require.Equal(t, t0+8_000, tat(t, rdb, key), "spaced at 125/s before the boundary")
	clk.Set(after)
	_, err := g.Admit(ctx, "after")
	require.NoError(t, err)
	require.NoError(t, <-first)
	require.Equal(t, t0+8_000+25_000, tat(t, rdb, key), "the arrival time carries across; 40/s at once")
}

// TestScheduledZeroStopsCalls: a window at 0 admits nothing until it ends,
// and the task is told to come back then (or within a minute).
func TestScheduledZeroStopsCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{}
	g := governors(t, 1, fleet.Config{RatePerSecond: 50, Schedule: mustSchedule(t, "TZ=UTC 00:00-12:00=0"), Now: clk.Now})[0]
	tests := []struct {
		at    string
		after time.Duration // 0: admitted
	}{
		{"2026-06-01T06:00:00Z", time.Minute},
		{"2026-06-01T11:59:30Z", 30 * time.Second},
		{"2026-06-01T12:00:00Z", 0},
	}
	for _, tt := range tests {
		at, _ := time.Parse(time.RFC3339, tt.at)
		clk.Set(at)
		_, err := g.Admit(ctx, "h")
		st, serr := g.Status(ctx)
		require.NoError(t, serr)
		if tt.after == 0 {
			require.NoError(t, err, tt.at)
			require.Equal(t, 50.0, st.Rate, "--api-rate where no window covers")
			require.Equal(t, fleet.RateConfigured, st.RateReason)
			continue
		}
		d := denied(t, err)
		require.Equal(t, reverify.WaitFleetRate, d.Reason)
		require.Equal(t, tt.after, d.After, tt.at)
		require.Zero(t, st.Rate)
		require.Equal(t, fleet.RateSchedule, st.RateReason)
	}
}

// TestScheduleIsTheAdaptiveCeiling: the adaptive rate never exceeds the
// schedule's rate of the moment; `runs show` (a governor without settings)
// reads the announced schedule and says why.
func TestScheduleIsTheAdaptiveCeiling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pfx := prefix(t)
	clk := &clock{t: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)}
	sch := mustSchedule(t, "TZ=UTC 08:00-20:00=4")
	g := governors(t, 1, fleet.Config{Prefix: pfx, Adaptive: true, Schedule: sch, Now: clk.Now})[0]
	_, err := g.Admit(ctx, "first")
	require.NoError(t, err)
	require.NoError(t, g.Announce(ctx))
	for _, gov := range []*fleet.Governor{g, fleet.New(redisClient(t), fleet.Config{Prefix: pfx, Now: clk.Now})} {
		st, err := gov.Status(ctx)
		require.NoError(t, err)
		require.True(t, st.Adaptive)
		require.Equal(t, 4.0, st.Rate)
		require.Equal(t, fleet.RateSchedule, st.RateReason)
		require.Equal(t, sch.String(), st.Schedule.String())
	}
	clk.Set(time.Date(2026, 6, 1, 21, 0, 0, 0, time.UTC)) // no window: no ceiling
	st, err := g.Status(ctx)
	require.NoError(t, err)
	require.NotEqual(t, fleet.RateSchedule, st.RateReason)
	require.Greater(t, st.Rate, 4.0, "the adaptive rate, from 10/s")
}

// TestLastAnnouncedScheduleWins: workers announcing different schedules:
// the fleet shows (and follows) the last, and the worker that replaced
// another's logs a warning.
func TestLastAnnouncedScheduleWins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pfx := prefix(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	a := fleet.New(redisClient(t), fleet.Config{Prefix: pfx, RatePerSecond: 10, Schedule: mustSchedule(t, "TZ=UTC 00:00-24:00=7"), Logger: log})
	b := fleet.New(redisClient(t), fleet.Config{Prefix: pfx, RatePerSecond: 10, Schedule: mustSchedule(t, "TZ=UTC 00:00-24:00=9"), Logger: log})
	require.NoError(t, a.Announce(ctx))
	require.NotContains(t, logs.String(), "different API rate schedules")
	require.NoError(t, b.Announce(ctx))
	require.Contains(t, logs.String(), "different API rate schedules")
	st, err := fleet.New(redisClient(t), fleet.Config{Prefix: pfx}).Status(ctx)
	require.NoError(t, err)
	require.Equal(t, "TZ=UTC 00:00-24:00=9", st.Schedule.String())
	require.Equal(t, 9.0, st.Rate)
	require.Equal(t, fleet.RateSchedule, st.RateReason)
	st, err = a.Status(ctx) // Status reads Redis afresh: a follows b's
	require.NoError(t, err)
	require.Equal(t, 9.0, st.Rate)
	require.Contains(t, logs.String(), "following the API rate schedule another worker announced")
}

// TestRunCapsAreFleetWide: a run's in-flight cap and rate cap hold across
// governors of separate processes, and a run at its cap is refused at once
// (run_cap) rather than kept waiting.
func TestRunCapsAreFleetWide(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gs := governors(t, 2, fleet.Config{})

	// In flight: two slots for the run, whoever takes them.
	lim := reverify.RunLimits{MaxInFlight: 2}
	p1, err := gs[0].AdmitRun(ctx, "run-a", "t1", lim)
	require.NoError(t, err)
	_, err = gs[1].AdmitRun(ctx, "run-a", "t2", lim)
	require.NoError(t, err)
	_, err = gs[1].AdmitRun(ctx, "run-a", "t3", lim)
	require.Equal(t, reverify.WaitRunCap, denied(t, err).Reason)
	_, err = gs[0].AdmitRun(ctx, "run-b", "t3", lim) // another run is not held back
	require.NoError(t, err)
	n, err := gs[1].RunInFlight(ctx, "run-a")
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	gs[0].ReleaseRun(ctx, p1)
	_, err = gs[1].AdmitRun(ctx, "run-a", "t3", lim)
	require.NoError(t, err, "a released slot is free fleet-wide")

	// Rate: 4 calls/s are 250 ms apart; of eight concurrent admissions
	// from two processes, those within a second are admitted (now, 250,
	// 500, 750 ms and 1 s: the horizon), the rest refused without waiting.
	var admitted, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, err := gs[i%2].AdmitRun(ctx, "run-c", "r"+strconv.Itoa(i), reverify.RunLimits{MaxRate: 4})
			if err == nil {
				admitted.Add(1)
				return
			}
			if denied(t, err).Reason == reverify.WaitRunCap {
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(5), admitted.Load())
	require.Equal(t, int32(3), refused.Load())

	// A run schedule at 0 stops the run's calls, and only its calls.
	stop := reverify.RunLimits{Schedule: mustSchedule(t, "TZ=UTC 00:00-24:00=0")}
	_, err = gs[0].AdmitRun(ctx, "run-d", "s", stop)
	require.Equal(t, reverify.WaitRunCap, denied(t, err).Reason)
}
