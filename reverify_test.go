package reverify

import (
	"testing"

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
