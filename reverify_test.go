package reverify

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMayCross checks the shortcut the ledger's failure-threshold check takes before it
// counts a run's finished objects: whenever some count of finished objects
// makes failures cross, MayCross holds (no run escapes its threshold), and
// when MayCross holds, the least possible count does cross (the shortcut
// skips every run it can).
func TestMayCross(t *testing.T) {
	t.Parallel()
	for _, th := range []Threshold{
		DefaultThreshold(),
		{Percent: 10, MinDone: 10},
		{Percent: 100, Count: 5},
		{Percent: 0, MinDone: 1},
		{Percent: 0},
		{Percent: 100},
		{Percent: 33.3, MinDone: 3},
		{Percent: 50, MinDone: 1000, Count: 7},
	} {
		for failed := int64(0); failed <= 1200; failed++ {
			least := max(th.MinDone, failed, 1)
			require.Equal(t, th.Crossed(failed, least) != "", th.MayCross(failed), "%+v, %d failed", th, failed)
			for _, done := range []int64{failed, failed + 1, failed * 2, least, least + 1, 1999, 5000} {
				if done >= failed && th.Crossed(failed, done) != "" {
					require.True(t, th.MayCross(failed), "%+v: %d of %d crosses", th, failed, done)
				}
			}
		}
	}
}

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	var d struct{ D Duration }
	require.NoError(t, json.Unmarshal([]byte(`{"D":"36h"}`), &d))
	require.Equal(t, Duration(36*time.Hour), d.D)
	require.NoError(t, json.Unmarshal([]byte(`{"D":250000000}`), &d))
	require.Equal(t, Duration(250*time.Millisecond), d.D)
	require.Error(t, json.Unmarshal([]byte(`{"D":"soon"}`), &d))
	require.Error(t, json.Unmarshal([]byte(`{"D":true}`), &d))
	b, err := json.Marshal(struct{ D Duration }{Duration(90 * time.Second)})
	require.NoError(t, err)
	require.JSONEq(t, `{"D":"1m30s"}`, string(b))
}

func TestVocabularyParses(t *testing.T) {
	t.Parallel()
	for _, s := range Statuses() {
		got, err := ParseStatus(string(s))
		require.NoError(t, err)
		require.Equal(t, s, got)
	}
	_, err := ParseStatus("done")
	require.ErrorContains(t, err, "want one of pending, scored")
	p, err := ParsePriority("")
	require.NoError(t, err)
	require.Equal(t, PriorityNormal, p)
	_, err = ParsePriority("urgent")
	require.Error(t, err)
	require.Equal(t, map[string]int{"q-high": 6, "q": 3, "q-low": 1}, PriorityQueues("q"))
	for _, p := range Priorities() {
		require.Equal(t, "q", p.BaseQueue(p.Queue("q")))
	}
	require.Equal(t, "empty object", Unsendable(0, 10))
	require.Contains(t, Unsendable(11, 10), "larger than the 10-byte limit")
	require.Empty(t, Unsendable(10, 10))
	require.Empty(t, Unsendable(-1, 10))
}
