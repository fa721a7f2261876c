package reverify_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify"
)

func TestRunLimitsParseAndRate(t *testing.T) {
	t.Parallel()
	noon := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)  // a Monday
	night := time.Date(2026, 6, 1, 22, 0, 0, 0, time.UTC) // no window
	tests := []struct {
		in        string
		text      string // RateText after parsing; "" = none
		noon      float64
		noonOK    bool
		night     float64
		nightOK   bool
		wantError bool
	}{
		{in: "", text: ""},
		{in: "0", text: ""},
		{in: "20", text: "20", noon: 20, noonOK: true, night: 20, nightOK: true},
		{in: "2.5", text: "2.5", noon: 2.5, noonOK: true, night: 2.5, nightOK: true},
		{in: "TZ=UTC Mon-Fri 08:00-20:00=5", text: "TZ=UTC Mon-Fri 08:00-20:00=5", noon: 5, noonOK: true},
		{in: "08:00-20:00=0", text: "TZ=UTC 08:00-20:00=0", noon: 0, noonOK: true},
		{in: "-1", wantError: true},
		{in: "fast", wantError: true},
		{in: "NaN", wantError: true},
		{in: "TZ=Mars/Base 08:00-20:00=5", wantError: true},
	}
	for _, tt := range tests {
		var l reverify.RunLimits
		err := l.ParseMaxRate(tt.in)
		if tt.wantError {
			require.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.text, l.RateText(), tt.in)
		r, ok := l.RateAt(noon)
		require.Equal(t, []any{tt.noon, tt.noonOK}, []any{r, ok}, tt.in)
		r, ok = l.RateAt(night)
		require.Equal(t, []any{tt.night, tt.nightOK}, []any{r, ok}, tt.in)
		require.NoError(t, l.Validate())
	}
	require.True(t, reverify.RunLimits{}.IsZero())
	require.False(t, reverify.RunLimits{MaxInFlight: 1}.IsZero())
	require.Error(t, reverify.RunLimits{MaxInFlight: -1}.Validate())
}
