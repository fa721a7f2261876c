package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/worker/fleet"
)

// fairRedisDB is the Redis database TestDryRunForecast announces a fleet
// in: the CLI reads the default fleet prefix, so the test keeps to a
// database of its own (and deletes only the keys it set).
const fairRedisDB = 12

// TestDryRunForecast: enqueue --dry-run forecasts cost and duration from
// the fleet the workers announced in Redis when there is one, else from
// the rate, schedule and budget given to enqueue; bad prices and
// schedules are refused before the source is read.
func TestDryRunForecast(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	manifest := "a.jpg\nb.jpg\nc.jpg\nd.jpg\n"
	base := []string{"enqueue", "--bucket", "b", "--manifest", "-", "--dry-run", "--log-format", "text",
		"--price-per-call", "0.0021 EUR"}
	run := func(args ...string) string {
		t.Helper()
		out, stderr, code := cli(t, ctx, manifest, append(append([]string{}, base...), args...)...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		return out
	}

	// No Redis: the flags.
	var d dryRunDoc
	decodeStrict(t, run("--redis-url", "redis://127.0.0.1:1/0", "--api-rate", "2", "--api-daily-budget", "100000", "-o", "json"), &d)
	require.EqualValues(t, 4, d.WouldSend)
	f := d.Forecast
	require.EqualValues(t, 4, f.Objects)
	require.NotNil(t, f.DistinctImages)
	require.EqualValues(t, 4, *f.DistinctImages, "manifest entries carry no ETag: each counts once")
	require.EqualValues(t, 4, f.PaidCalls)
	require.Equal(t, "0.0084", f.Cost.Amount())
	require.Equal(t, "EUR", f.Cost.Currency())
	require.Equal(t, "flags", f.FleetFrom)
	require.InDelta(t, 2.0, *f.DurationSeconds, 1e-6, "4 calls at 2 calls/s")
	require.Equal(t, "at 2 calls/s, with 100,000 calls a day", f.Basis)

	out := run("--redis-url", "redis://127.0.0.1:1/0", "--api-rate-schedule", "TZ=UTC 00:00-24:00=4")
	require.Contains(t, out, "paid calls: 4\n")
	require.Contains(t, out, "cost: 0.0084 EUR (0.0021 EUR a call)")
	require.Contains(t, out, "duration: at TZ=UTC 00:00-24:00=4 calls/s (no calls outside it): 1 s")
	require.Contains(t, out, "given to this command")

	// A fleet announced in Redis wins over the flags.
	redisURL := fmt.Sprintf("redis://%s/%d", testenv.RedisAddr(t), fairRedisDB)
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t), DB: fairRedisDB})
	t.Cleanup(func() { rdb.Close() })
	g := fleet.New(rdb, fleet.Config{RatePerSecond: 1, DailyBudget: 3})
	require.NoError(t, g.Announce(ctx))
	t.Cleanup(func() {
		rdb.Del(context.Background(), "{reverify-fleet}:rate:mode", "{reverify-fleet}:budget:limit")
	})
	decodeStrict(t, run("--redis-url", redisURL, "--api-rate", "50", "-o", "json"), &d)
	f = d.Forecast
	require.Equal(t, "redis", f.FleetFrom)
	require.Equal(t, "at 1 calls/s, with 3 calls a day", f.Basis)
	require.Greater(t, *f.DurationSeconds, 3.0, "three today at most, the fourth tomorrow")

	for _, bad := range [][]string{
		{"--price-per-call", "0.0021"},
		{"--price-per-call", "-1 EUR"},
		{"--api-rate-schedule", "08:00-20:00"},
		{"--api-rate", "-1"},
	} {
		_, stderr, code := cli(t, ctx, manifest, append(append([]string{}, base...), bad...)...)
		require.NotEqual(t, 0, code, "%v", bad)
		require.Contains(t, stderr, "invalid REVERIFY_", "%v", bad)
	}
}
