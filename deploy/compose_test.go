package deploy

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
	sigsyaml "sigs.k8s.io/yaml"

	"reverify/scheduler"
)

// loadCompose loads docker-compose.yml as docker compose does, with the
// compose specification's own loader: schema validation, interpolation,
// YAML anchors and merges, relative paths resolved. Every profile is on.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	dir, err := filepath.Abs(".")
	require.NoError(t, err)
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "docker-compose.yml")}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) {
		o.SetProjectName("reverify", true)
		o.Profiles = []string{"*"}
		o.ResolvePaths = true
	})
	require.NoError(t, err, "docker-compose.yml does not load")
	return p
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	bin := readBinary(t)
	p := loadCompose(t)
	svcs := p.AllServices()
	for _, name := range []string{"redis", "postgres", "s3", "seed", "fake-api", "migrate", "worker", "scheduler", "dashboard",
		"prometheus", "grafana", "enqueue"} {
		require.Contains(t, svcs, name, "the local stack has %s", name)
	}
	require.Subset(t, []string(svcs["redis"].Command), []string{"--appendonly", "yes"}, "Redis keeps queued tasks across restarts")

	dockerfile, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	for name, s := range svcs {
		where := "docker-compose.yml service " + name
		// Pinned images that exist: a tag, never latest; ours are built.
		if s.Build == nil {
			require.Regexp(t, `^[a-z0-9./-]+:[0-9A-Za-z][0-9A-Za-z._-]*$`, s.Image, "%s: a pinned image", where)
			require.NotContains(t, s.Image, ":latest", where)
		} else {
			require.Equal(t, "reverify:dev", s.Image, where)
			require.Regexp(t, `(?m)^FROM .* AS `+regexp.QuoteMeta(s.Build.Target)+`$`, string(dockerfile), "%s builds a stage of the Dockerfile", where)
		}
		require.NotContains(t, s.Image, "minio", "%s: the stack's S3 is versitygw, as in the tests", where)
		for dep, d := range s.DependsOn {
			require.Contains(t, svcs, dep, "%s depends on a missing service", where)
			switch d.Condition {
			case types.ServiceConditionHealthy:
				require.NotNil(t, svcs[dep].HealthCheck, "%s waits for %s to be healthy, which has no healthcheck", where, dep)
			case types.ServiceConditionCompletedSuccessfully:
				require.Equal(t, "no", svcs[dep].Restart, "%s waits for %s to finish, which restarts", where, dep)
			case types.ServiceConditionStarted:
			default:
				t.Fatalf("%s: depends_on %s has condition %q", where, dep, d.Condition)
			}
		}
		for _, port := range s.Ports {
			require.Equal(t, "127.0.0.1", port.HostIP, "%s publishes %d beyond loopback", where, port.Target)
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				_, err := os.Stat(v.Source)
				require.NoError(t, err, "%s mounts a missing file", where)
			}
		}
		if s.Restart != "no" && !slices.Contains(s.Profiles, "tools") && name != "scheduler" {
			// The scheduler's /readyz needs Redis only; everything long-running says when it is up.
			require.NotNil(t, s.HealthCheck, "%s: a long-running service has a healthcheck", where)
		}
		if s.HealthCheck != nil {
			require.NotEmpty(t, s.HealthCheck.Test, where)
			require.Equal(t, "CMD", s.HealthCheck.Test[0], "%s: exec form (no shell needed)", where)
			for _, arg := range s.HealthCheck.Test {
				if u, err := url.Parse(arg); err == nil && u.Scheme == "http" && s.Image == "reverify:dev" && len(s.Entrypoint) == 0 {
					checkComposeProbe(t, where, s, u)
				}
			}
		}
		if s.Image != "reverify:dev" || len(s.Entrypoint) > 0 {
			continue // not the reverify binary
		}
		bin.checkArgs(t, where, s.Command)
		for k := range s.Environment {
			bin.checkEnv(t, where, k)
		}
		cmd := s.Command[0]
		for _, port := range s.Ports {
			u := &url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(int(port.Target)), Path: "/healthz"}
			checkComposeProbe(t, where+" published port", s, u)
		}
		if cmd != "migrate" && cmd != "fake-api" && !slices.Contains(s.Profiles, "tools") {
			require.Contains(t, s.DependsOn, "migrate", "%s starts after the schema is migrated", where)
			require.Equal(t, types.ServiceConditionCompletedSuccessfully, s.DependsOn["migrate"].Condition, where)
		}
		for i, a := range s.Command {
			if a == "--config" && i+1 < len(s.Command) {
				require.True(t, slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == s.Command[i+1] }),
					"%s: --config %s is not mounted", where, s.Command[i+1])
			}
		}
	}

	// Workers get images to verify: the bucket the enqueue tool reads is seeded first.
	seed := svcs["seed"]
	require.Equal(t, []string{"seed"}, []string(seed.Entrypoint))
	bucket := flagValue(seed.Command, "--bucket")
	require.NotEmpty(t, bucket)
	require.Equal(t, bucket, flagValue(svcs["enqueue"].Command, "--bucket"), "enqueue reads the seeded bucket")
	require.Equal(t, types.ServiceConditionCompletedSuccessfully, svcs["worker"].DependsOn["seed"].Condition)
	require.Equal(t, types.ServiceConditionHealthy, svcs["worker"].DependsOn["fake-api"].Condition)
	s3 := svcs["s3"]
	require.Equal(t, []string{"versitygw"}, []string(s3.Entrypoint))
	s3URL, err := url.Parse(*svcs["worker"].Environment["REVERIFY_S3_ENDPOINT"])
	require.NoError(t, err)
	require.Equal(t, "s3", s3URL.Hostname())
	require.Equal(t, ":"+s3URL.Port(), flagValue(s3.Command, "--port"), "the workers reach versitygw where it listens")
	require.Equal(t, flagValue(s3.Command, "--access"), *svcs["worker"].Environment["AWS_ACCESS_KEY_ID"])
	require.Equal(t, flagValue(s3.Command, "--secret"), *svcs["worker"].Environment["AWS_SECRET_ACCESS_KEY"])

	f, err := os.Open("schedules.example.json")
	require.NoError(t, err)
	defer f.Close()
	_, err = scheduler.Load(f)
	require.NoError(t, err, "schedules.example.json")

	w := svcs["worker"]
	require.NotNil(t, w.Deploy)
	require.NotNil(t, w.Deploy.Replicas)
	require.Greater(t, *w.Deploy.Replicas, 1, "several workers")
	require.NotNil(t, w.StopGracePeriod)
	shutdown, err := time.ParseDuration(*w.Environment["REVERIFY_SHUTDOWN_TIMEOUT"])
	require.NoError(t, err)
	require.Greater(t, time.Duration(*w.StopGracePeriod), shutdown, "compose waits longer than the worker's shutdown timeout")

	d := svcs["dashboard"]
	hash := *d.Environment["REVERIFY_DASHBOARD_PASSWORD_HASH"] // the loader has undone the $$ escaping
	require.NoError(t, bcrypt.CompareHashAndPassword([]byte(hash), []byte("reverify-local")),
		"the password the compose file documents matches its hash")
	require.NotEmpty(t, *d.Environment["REVERIFY_DASHBOARD_USER"])

	checkComposeMonitoring(t, p)
}

// checkComposeProbe requires a reverify service's healthcheck to ask a
// path it serves on the port it listens on.
func checkComposeProbe(t *testing.T, where string, s types.ServiceConfig, u *url.URL) {
	t.Helper()
	cmd := s.Command[0]
	var listen string
	if env, ok := listenEnv[cmd]; ok && strings.HasPrefix(env, "REVERIFY_") {
		require.NotNil(t, s.Environment[env], "%s: %s serves no HTTP without %s", where, cmd, env)
		listen = *s.Environment[env]
	} else if ok {
		listen = flagValue(s.Command, env)
	}
	require.NotEmpty(t, listen, "%s: %s serves no HTTP", where, cmd)
	require.True(t, strings.HasSuffix(listen, ":"+u.Port()), "%s: the healthcheck asks port %s, %s listens on %s", where, u.Port(), cmd, listen)
	if cmd != "fake-api" {
		require.True(t, probePaths[u.Path], "%s: %s serves no %s", where, cmd, u.Path)
	}
}

// checkComposeMonitoring: Prometheus scrapes every worker where it serves
// metrics, and Grafana is provisioned with the shipped dashboard.
func checkComposeMonitoring(t *testing.T, p *types.Project) {
	t.Helper()
	svcs := p.AllServices()
	prom := svcs["prometheus"]
	var cfgPath string
	for _, v := range prom.Volumes {
		if v.Target == "/etc/prometheus/prometheus.yml" {
			cfgPath = v.Source
		}
	}
	require.NotEmpty(t, cfgPath, "Prometheus gets its configuration")
	src, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	var cfg struct {
		ScrapeConfigs []struct {
			JobName     string `json:"job_name"`
			MetricsPath string `json:"metrics_path"`
			DNSSD       []struct {
				Names []string `json:"names"`
				Type  string   `json:"type"`
				Port  int      `json:"port"`
			} `json:"dns_sd_configs"`
		} `json:"scrape_configs"`
	}
	require.NoError(t, sigsyaml.Unmarshal(src, &cfg))
	worker := svcs["worker"]
	addr := *worker.Environment["REVERIFY_METRICS_ADDR"]
	scraped := false
	for _, sc := range cfg.ScrapeConfigs {
		for _, sd := range sc.DNSSD {
			if slices.Contains(sd.Names, "worker") {
				scraped = true
				require.Equal(t, "/metrics", sc.MetricsPath)
				require.True(t, strings.HasSuffix(addr, ":"+strconv.Itoa(sd.Port)), "Prometheus scrapes port %d, workers serve %s", sd.Port, addr)
			}
		}
	}
	require.True(t, scraped, "Prometheus scrapes every worker (DNS: one address per replica)")
	require.Equal(t, "http://prometheus:9090", *svcs["dashboard"].Environment["REVERIFY_PROMETHEUS_URL"])

	grafana := svcs["grafana"]
	dashboards := map[string]string{}
	for _, v := range grafana.Volumes {
		dashboards[v.Target] = v.Source
	}
	dash, ok := dashboards["/var/lib/grafana/dashboards/reverify.json"]
	require.True(t, ok, "Grafana is provisioned with the dashboard")
	abs, err := filepath.Abs("grafana/reverify.json")
	require.NoError(t, err)
	require.Equal(t, abs, dash, "the shipped dashboard, not a copy")
	prov, ok := dashboards["/etc/grafana/provisioning/dashboards"]
	require.True(t, ok)
	src, err = os.ReadFile(filepath.Join(prov, "reverify.yml"))
	require.NoError(t, err)
	require.Contains(t, string(src), "path: /var/lib/grafana/dashboards")
	ds, ok := dashboards["/etc/grafana/provisioning/datasources"]
	require.True(t, ok)
	src, err = os.ReadFile(filepath.Join(ds, "prometheus.yml"))
	require.NoError(t, err)
	require.Contains(t, string(src), "url: http://prometheus:9090")
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}
