package dashboard

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoginLimiter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	l := newLoginLimiter(3, 10*time.Second, 4, func() time.Time { return now })
	for range 3 {
		require.Zero(t, l.wait("a"))
		l.failed("a")
	}
	require.Equal(t, 10*time.Second, l.wait("a"), "the burst is spent")
	require.Zero(t, l.wait("b"), "another address is not held")
	now = now.Add(5 * time.Second)
	require.Equal(t, 5*time.Second, l.wait("a"))
	now = now.Add(5 * time.Second)
	require.Zero(t, l.wait("a"), "one try back after the interval")

	// The table holds at most 4 addresses; beyond, new ones share a bucket.
	for i := range 3 {
		l.failed(fmt.Sprint("c", i))
	}
	require.Len(t, l.clients, 4)
	for i := range 3 {
		require.Zero(t, l.wait(fmt.Sprint("new", i)))
		l.failed(fmt.Sprint("new", i))
	}
	require.Len(t, l.clients, 4, "bounded")
	require.Positive(t, l.wait("new-again"), "addresses beyond the table share one bucket")
	require.Positive(t, l.wait("b"), "so many addresses buy no more tries")

	// Refilled entries are forgotten when room is needed.
	now = now.Add(time.Minute)
	l.failed("late")
	require.Contains(t, l.clients, "late")
	require.LessOrEqual(t, len(l.clients), 4)
}

func TestClientKey(t *testing.T) {
	t.Parallel()
	require.Equal(t, "192.0.2.7", clientKey("192.0.2.7:51234"))
	require.Equal(t, clientKey("[2001:db8:1:2:aaaa::1]:443"), clientKey("[2001:db8:1:2:bbbb::9]:80"), "one /64")
	require.NotEqual(t, clientKey("[2001:db8:1:2::1]:443"), clientKey("[2001:db8:1:3::1]:443"))
}
