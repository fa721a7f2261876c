package dashboard_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify/dashboard"
)

// runForecaster answers the run page's forecast as cmd/reverify's would,
// or fails.
type runForecaster struct {
	fc  dashboard.RunForecast
	err error
}

func (f runForecaster) RunForecast(context.Context, string) (dashboard.RunForecast, error) {
	return f.fc, f.err
}

// TestRunPageForecast: the run page shows the fleet's rate and why, the
// ETA, what is left to pay and what was spent; a forecast that fails
// leaves the rest of the page.
func TestRunPageForecast(t *testing.T) {
	t.Parallel()
	fc := dashboard.RunForecast{FleetRate: "adaptive API rate 143.2 calls/s (probing: growing to find the API's limit)",
		Schedule: "rate schedule TZ=Europe/Berlin 08:00-20:00=10, 20:00-08:00=100",
		ETA:      "3.3 hours", Left: "600,000 paid calls, costing 1260.0000 EUR", Spent: "840.0000 EUR"}
	b := setup(t, dashboard.Config{Forecaster: runForecaster{fc: fc}})
	res, body := b.do(t, call{method: "GET", path: "/runs/" + b.runID, auth: b.basic()})
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, body, `<td id="fleet-rate">adaptive API rate 143.2 calls/s (probing: growing to find the API&#39;s limit)</td>`)
	require.Contains(t, body, `<td id="fleet-schedule">rate schedule TZ=Europe/Berlin 08:00-20:00=10, 20:00-08:00=100</td>`)
	require.Contains(t, body, `<td id="eta">3.3 hours</td>`)
	require.Contains(t, body, `<td id="left">600,000 paid calls, costing 1260.0000 EUR</td>`)
	require.Contains(t, body, `<td id="spent">840.0000 EUR</td>`)

	b = setup(t, dashboard.Config{Forecaster: runForecaster{err: errors.New("redis down")}})
	res, body = b.do(t, call{method: "GET", path: "/runs/" + b.runID, auth: b.basic()})
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.NotContains(t, body, `id="forecast"`)
	require.Contains(t, body, `id="counts"`)
}
