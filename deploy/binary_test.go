package deploy

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/campaign"
	"reverify/metrics"
	"reverify/worker/fleet"
)

// awsEnv are the standard AWS SDK variables the binary reads through the
// SDK's credential chain.
var awsEnv = map[string]bool{
	"AWS_ACCESS_KEY_ID": true, "AWS_SECRET_ACCESS_KEY": true, "AWS_SESSION_TOKEN": true,
	"AWS_REGION": true, "AWS_PROFILE": true, "AWS_ROLE_ARN": true, "AWS_WEB_IDENTITY_TOKEN_FILE": true,
}

// probePaths are the endpoints health.Handler serves.
var probePaths = map[string]bool{"/healthz": true, "/readyz": true}

// listenEnv is the variable that sets where a command serves HTTP
// (probes included); commands not listed serve none.
var listenEnv = map[string]string{
	"worker": "REVERIFY_METRICS_ADDR", "scheduler": "REVERIFY_METRICS_ADDR", "dashboard": "REVERIFY_DASHBOARD_ADDR",
	"fake-api": "--addr",
}

// secretEnv are settings that hold credentials: never in a ConfigMap or a
// compose file's plain text beyond the local stack's throwaway values.
var secretEnv = []string{"REVERIFY_DATABASE_URL", "REVERIFY_REDIS_URL", "REVERIFY_API_KEY",
	"REVERIFY_DASHBOARD_TOKEN", "REVERIFY_DASHBOARD_PASSWORD_HASH", "AWS_SECRET_ACCESS_KEY"}

// binary is what the reverify command line accepts, read from its source.
type binary struct {
	commands map[string]bool
	env      map[string]bool
	flags    map[string]bool
}

func readBinary(t *testing.T) binary {
	t.Helper()
	files, err := filepath.Glob("../cmd/reverify/*.go")
	require.NoError(t, err)
	b := binary{commands: map[string]bool{}, env: map[string]bool{}, flags: map[string]bool{}}
	useRE := regexp.MustCompile(`Use:\s*"([a-z-]+)`)
	envRE := regexp.MustCompile(`"(REVERIFY_[A-Z0-9_]+)"`)
	flagRE := regexp.MustCompile(`"([a-z][a-z0-9-]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range useRE.FindAllSubmatch(src, -1) {
			b.commands[string(m[1])] = true
		}
		for _, m := range envRE.FindAllSubmatch(src, -1) {
			b.env[string(m[1])] = true
		}
		for _, m := range flagRE.FindAllSubmatch(src, -1) {
			b.flags[string(m[1])] = true
		}
	}
	require.True(t, b.commands["worker"] && b.env["REVERIFY_REDIS_URL"], "the source of cmd/reverify was read")
	return b
}

// secretFlags take secrets (or URLs that hold passwords): they are
// passed by environment or file, never on a command line, which every
// user of the machine can read (ps, /proc/PID/cmdline) and which lands in
// process listings and crash reports.
var secretFlags = map[string]bool{"api-key": true, "token": true, "password-hash": true, "database-url": true, "redis-url": true}

func (b binary) checkArgs(t *testing.T, where string, args []string) {
	t.Helper()
	require.NotEmpty(t, args, "%s: no command", where)
	cmd := args[0]
	require.True(t, b.commands[cmd], "%s: reverify has no command %q", where, cmd)
	for _, a := range args[1:] {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			require.True(t, b.flags[name], "%s: reverify has no flag --%s", where, name)
			require.False(t, secretFlags[name], "%s: --%s on the command line: pass it by environment or file", where, name)
		}
	}
}

// TestLaunchersPassNoSecretsOnTheCommandLine: the programs that start
// reverify processes (the benchmark harness, make scaleout) hand them
// secrets by environment, as the manifests do.
func TestLaunchersPassNoSecretsOnTheCommandLine(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../bench/*.go")
	require.NoError(t, err)
	more, err := filepath.Glob("scaleout/*.go")
	require.NoError(t, err)
	files = append(files, more...)
	require.NotEmpty(t, more)
	argRE := regexp.MustCompile(`"--([a-z-]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range argRE.FindAllSubmatch(src, -1) {
			require.False(t, secretFlags[string(m[1])], "%s passes --%s on a command line: pass it by environment", f, m[1])
		}
	}
}

func (b binary) checkEnv(t *testing.T, where, name string) {
	t.Helper()
	require.True(t, b.env[name] || awsEnv[name], "%s: reverify does not read %s", where, name)
}

// asynqMetrics are the names asynq's x/metrics queue collector exports.
var asynqMetrics = []string{
	"asynq_tasks_enqueued_total", "asynq_queue_size", "asynq_queue_latency_seconds",
	"asynq_queue_memory_usage_approx_bytes", "asynq_tasks_processed_total",
	"asynq_tasks_failed_total", "asynq_queue_paused_total",
}

// sharedMetrics match the series every worker exports alike, read from
// Redis or PostgreSQL rather than counted by the process: summing them
// over workers multiplies them by the number of workers (which KEDA
// changes). Aggregate them with max (or min).
var sharedMetrics = regexp.MustCompile(`\b(asynq_[a-z_]+|reverify_(fleet|backlog|runs|api_oldest)[a-z_]*)\b`)

// exportedMetrics are the metric names a worker serves (with the
// histogram series' suffixes), plus Prometheus' own "up".
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{"up": true}
	for _, n := range asynqMetrics {
		known[n] = true
	}
	reg := prometheus.NewRegistry()
	p := metrics.NewPipeline(reg)
	score := 50.0
	p.ObjectFetched(time.Millisecond, 1, nil)
	p.APICalled("scored", time.Millisecond, &score, true)
	p.ResultRecorded("scored")
	p.Waited("rate_limited", time.Second)
	require.NoError(t, metrics.RegisterBacklog(reg, noLedger{}, time.Second))
	require.NoError(t, metrics.RegisterLedger(reg, noLedger{}, time.Second))
	require.NoError(t, metrics.RegisterFleet(reg, noLedger{}, time.Second))
	require.NoError(t, metrics.RegisterFeeder(reg, noLedger{}))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		name := mf.GetName()
		known[name] = true
		if mf.GetType().String() == "HISTOGRAM" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				known[name+suffix] = true
			}
		}
	}
	return known
}

// noLedger is a ledger, fleet and feeder with nothing to report, for the
// metric names.
type noLedger struct{}

func (noLedger) Backlog(context.Context) (map[reverify.Priority]int64, error) { return nil, nil }
func (noLedger) RunsByStatus(context.Context) (map[reverify.RunStatus]int64, error) {
	return nil, nil
}
func (noLedger) OldestCallInFlight(context.Context) (time.Duration, error) { return 0, nil }
func (noLedger) Status(context.Context) (fleet.Status, error)              { return fleet.Status{}, nil }
func (noLedger) Stats() campaign.FeedStats                                 { return campaign.FeedStats{} }
func (noLedger) Leading() bool                                             { return false }

// metricRE finds metric names in PromQL.
var metricRE = regexp.MustCompile(`\b(?:reverify|asynq)_[a-z0-9_]+\b|\bup\{`)

// checkPromQL requires that expr names only exported metrics, and that
// it aggregates shared ones with max or min, never sum.
func checkPromQL(t *testing.T, known map[string]bool, where, expr string) []string {
	t.Helper()
	names := metricRE.FindAllString(expr, -1)
	require.NotEmpty(t, names, "%s: %s", where, expr)
	for i, n := range names {
		n = strings.TrimSuffix(n, "{")
		names[i] = n
		require.True(t, known[n], "%s uses %s, which nothing exports", where, n)
	}
	if sharedMetrics.MatchString(expr) {
		require.NotRegexp(t, `\bsum\b`, expr, "%s: every worker exports %v alike; aggregate with max, not sum", where, sharedMetrics.FindAllString(expr, -1))
		require.Regexp(t, `\b(max|min|absent)\b`, expr, "%s: aggregate the workers' identical series with max", where)
	}
	return names
}
