package deploy

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("grafana/reverify.json")
	require.NoError(t, err)
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(src, &dash))
	require.NotEmpty(t, dash.UID)

	known := exportedMetrics(t)
	used := map[string]bool{}
	for _, panel := range dash.Panels {
		require.NotEmpty(t, panel.Targets, "panel %q has no query", panel.Title)
		for _, target := range panel.Targets {
			for _, n := range checkPromQL(t, known, "panel "+panel.Title, target.Expr) {
				used[strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count")] = true
			}
		}
	}
	for _, want := range []string{"reverify_api_call_duration_seconds", "reverify_results_total", "reverify_liveness_score",
		"reverify_s3_fetch_duration_seconds", "reverify_waits_total", "reverify_api_circuit_open", "reverify_fleet_circuit_open",
		"reverify_api_calls_total", "reverify_api_billable_answers_total", "asynq_tasks_enqueued_total", "asynq_tasks_processed_total",
		"reverify_backlog_objects", "reverify_runs", "reverify_fleet_daily_budget_used_calls", "reverify_fleet_api_rate_calls"} {
		require.True(t, used[want], "the dashboard charts %s", want)
	}
}
