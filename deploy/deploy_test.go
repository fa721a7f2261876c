package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"reverify"
	"reverify/dashboard"
	"reverify/internal/testenv"
	"reverify/metrics"
	"reverify/scheduler"
	"reverify/storage/postgres"
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
var listenEnv = map[string]string{"worker": "REVERIFY_METRICS_ADDR", "scheduler": "REVERIFY_METRICS_ADDR", "dashboard": "REVERIFY_DASHBOARD_ADDR"}

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

// TestSecretExampleIsRefusedAsIs: the example Secret is not applied by the
// kustomization, and its placeholders, applied unedited, stop reverify
// from starting rather than guard the images with a token anyone can read
// in this repository.
func TestSecretExampleIsRefusedAsIs(t *testing.T) {
	t.Parallel()
	var kust struct{ Resources []string }
	src, err := os.ReadFile("kubernetes/kustomization.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(src, &kust))
	require.NotContains(t, kust.Resources, exampleSecret, "the base kustomization applies the example Secret")

	var secret struct {
		StringData map[string]string `yaml:"stringData"`
	}
	src, err = os.ReadFile(filepath.Join("kubernetes", exampleSecret))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(src, &secret))
	sd := secret.StringData
	require.Error(t, dashboard.Auth{Token: sd["dashboard-token"]}.Validate(), "the example token passes validation")
	require.Error(t, dashboard.Auth{User: sd["dashboard-user"], PasswordHash: sd["dashboard-password-hash"]}.Validate(),
		"the example password hash passes validation")
	require.True(t, dashboard.IsPlaceholder(sd["api-key"]), "the example API key is not refused")
	u, err := url.Parse(sd["database-url"])
	require.NoError(t, err)
	pass, _ := u.User.Password()
	require.True(t, dashboard.IsPlaceholder(pass), "the example database password is not refused")
}

func (b binary) checkEnv(t *testing.T, where, name string) {
	t.Helper()
	require.True(t, b.env[name] || awsEnv[name], "%s: reverify does not read %s", where, name)
}

// --- Kubernetes ---

// exampleSecret shows the Secret the workloads read; it is applied by hand
// once filled in, never by the kustomization.
const exampleSecret = "secret.example.yaml"

type header struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
		ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
	} `yaml:"valueFrom"`
}

type keyRef struct{ Name, Key string }

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	EnvFrom []struct {
		ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
		SecretRef    *struct{ Name string } `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env   []envVar `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type workload struct {
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds *int        `yaml:"terminationGracePeriodSeconds"`
				Containers                    []container `yaml:"containers"`
				Volumes                       []struct {
					Name   string `yaml:"name"`
					Secret *struct {
						SecretName string `yaml:"secretName"`
						Items      []struct{ Key string }
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type manifest struct {
	file string
	header
	raw []byte
}

func (m manifest) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, yaml.Unmarshal(m.raw, v), m.file)
}

func (m manifest) where() string { return m.file + ": " + m.Kind + "/" + m.Metadata.Name }

func loadManifests(t *testing.T) []manifest {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var out []manifest
	for _, f := range files {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(src))
		for {
			var node yaml.Node
			err := dec.Decode(&node)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
			raw, err := yaml.Marshal(&node)
			require.NoError(t, err)
			m := manifest{file: f, raw: raw}
			require.NoError(t, node.Decode(&m.header), f)
			require.NotEmpty(t, m.Kind, "%s: a document without kind", f)
			out = append(out, m)
		}
	}
	return out
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	bin := readBinary(t)
	all := loadManifests(t)

	byKind := map[string]map[string]manifest{}
	for _, m := range all {
		if byKind[m.Kind] == nil {
			byKind[m.Kind] = map[string]manifest{}
		}
		require.NotContains(t, byKind[m.Kind], m.Metadata.Name, "duplicate %s", m.where())
		byKind[m.Kind][m.Metadata.Name] = m
	}

	// Every file but the example Secret is applied by the kustomization,
	// and nothing it names is missing.
	var kust struct{ Resources []string }
	byKind["Kustomization"][""].decode(t, &kust)
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && base != exampleSecret {
			require.Contains(t, kust.Resources, base, "kustomization.yaml does not apply %s", base)
		}
	}
	for _, r := range kust.Resources {
		require.FileExists(t, filepath.Join("kubernetes", r))
	}

	configMaps := map[string]map[string]string{}
	for name, m := range byKind["ConfigMap"] {
		var cm struct{ Data map[string]string }
		m.decode(t, &cm)
		configMaps[name] = cm.Data
		if js, ok := cm.Data["schedules.json"]; ok {
			_, err := scheduler.Load(strings.NewReader(js))
			require.NoError(t, err, "%s: schedules.json", m.where())
		}
	}
	secrets := map[string]map[string]string{}
	for name, m := range byKind["Secret"] {
		var s struct {
			StringData map[string]string `yaml:"stringData"`
		}
		m.decode(t, &s)
		secrets[name] = s.StringData
	}

	workloads := map[string]workload{}
	image := ""
	for _, kind := range []string{"Deployment", "Job"} {
		for name, m := range byKind[kind] {
			var w workload
			m.decode(t, &w)
			workloads[kind+"/"+name] = w
			for k, v := range w.Spec.Selector.MatchLabels {
				require.Equal(t, v, w.Spec.Template.Metadata.Labels[k], "%s: the selector does not match the pod labels", m.where())
			}
			require.NotEmpty(t, w.Spec.Template.Spec.Containers, m.where())
			for _, c := range w.Spec.Template.Spec.Containers {
				where := m.where() + " container " + c.Name
				require.NotContains(t, c.Image, ":latest", where)
				require.Regexp(t, `^[a-z0-9./-]+/reverify:[0-9A-Za-z._-]+$`, c.Image, where)
				if image == "" {
					image = c.Image
				}
				require.Equal(t, image, c.Image, "%s: every component runs the same image", where)
				require.Empty(t, c.Command, "%s: the image's entrypoint is the binary", where)
				bin.checkArgs(t, where, c.Args)
				checkContainerEnv(t, bin, where, c, configMaps, secrets)
				for i, a := range c.Args {
					if a == "--config" && i+1 < len(c.Args) {
						require.True(t, mounted(c, c.Args[i+1]), "%s: --config %s is on no mounted volume", where, c.Args[i+1])
					}
				}
				checkProbes(t, where, c, configMaps)
			}
		}
	}

	worker, ok := workloads["Deployment/reverify-worker"]
	require.True(t, ok, "a worker Deployment")
	shutdown := 30 * time.Second // the worker's default
	if v := configMaps["reverify"]["REVERIFY_SHUTDOWN_TIMEOUT"]; v != "" {
		var err error
		shutdown, err = time.ParseDuration(v)
		require.NoError(t, err)
	}
	grace := worker.Spec.Template.Spec.TerminationGracePeriodSeconds
	require.NotNil(t, grace, "the worker sets terminationGracePeriodSeconds")
	require.Greater(t, time.Duration(*grace)*time.Second, shutdown+5*time.Second,
		"the grace period leaves the worker time to finish in-flight images")
	require.NotNil(t, worker.Spec.Template.Spec.Containers[0].ReadinessProbe)

	sched, ok := workloads["Deployment/reverify-scheduler"]
	require.True(t, ok, "a scheduler Deployment")
	require.NotNil(t, sched.Spec.Replicas)
	require.Equal(t, 1, *sched.Spec.Replicas, "exactly one scheduler")
	require.Equal(t, "Recreate", sched.Spec.Strategy.Type, "a rollout never runs two schedulers")
	_, ok = workloads["Deployment/reverify-dashboard"]
	require.True(t, ok, "a dashboard Deployment")
	_, ok = workloads["Job/reverify-migrate"]
	require.True(t, ok, "a migrate Job")

	for _, m := range byKind["PodDisruptionBudget"] {
		var pdb struct {
			Spec struct {
				MaxUnavailable any `yaml:"maxUnavailable"`
				Selector       struct {
					MatchLabels map[string]string `yaml:"matchLabels"`
				} `yaml:"selector"`
			} `yaml:"spec"`
		}
		m.decode(t, &pdb)
		require.Equal(t, worker.Spec.Selector.MatchLabels, pdb.Spec.Selector.MatchLabels, "%s selects the workers", m.where())
		require.NotNil(t, pdb.Spec.MaxUnavailable)
	}
	require.Len(t, byKind["PodDisruptionBudget"], 1)

	require.Len(t, byKind["ScaledObject"], 1)
	for _, m := range byKind["ScaledObject"] {
		so := decodeScaledObject(t, m)
		require.Equal(t, "reverify-worker", so.Spec.ScaleTargetRef.Name, m.where())
		require.GreaterOrEqual(t, so.Spec.MinReplicaCount, 1, "%s: a worker stays to run the feeder, retries and scheduled tasks", m.where())
		require.Greater(t, so.Spec.MaxReplicaCount, so.Spec.MinReplicaCount)
		require.Len(t, so.Spec.Triggers, 1, m.where())
		tr := so.Spec.Triggers[0]
		// The asynq pending lists hold only the feeder's window: the
		// backlog is in the ledger.
		require.Equal(t, "postgresql", tr.Type, "%s scales on the ledger's backlog", m.where())
		require.Contains(t, []string{"", "AverageValue"}, tr.MetricType, "%s: the target is per worker", m.where())
		require.NotEmpty(t, tr.Metadata["query"], m.where())
		target, err := strconv.ParseFloat(tr.Metadata["targetQueryValue"], 64)
		require.NoError(t, err, "%s: targetQueryValue", m.where())
		require.Positive(t, target)
		for k := range tr.Metadata {
			require.NotContains(t, []string{"connection", "connectionFromEnv", "password", "passwordFromEnv"}, k,
				"%s: the connection comes from the TriggerAuthentication's Secret", m.where())
		}

		// The connection is a Secret key naming the workers' database,
		// through a role of KEDA's own.
		ta, ok := byKind["TriggerAuthentication"][tr.AuthenticationRef.Name]
		require.True(t, ok, "%s: no TriggerAuthentication %q", m.where(), tr.AuthenticationRef.Name)
		var auth triggerAuth
		ta.decode(t, &auth)
		var conn *keyRef
		for _, r := range auth.Spec.SecretTargetRef {
			if r.Parameter == "connection" {
				conn = &keyRef{Name: r.Name, Key: r.Key}
			}
		}
		require.NotNil(t, conn, "%s passes no connection", ta.where())
		require.Contains(t, secrets[conn.Name], conn.Key, ta.where())
		kedaDB, err := pgx.ParseConfig(secrets[conn.Name][conn.Key])
		require.NoError(t, err, "%s: %s is no PostgreSQL connection string", ta.where(), conn.Key)
		workerDB := workerDatabase(t, worker, secrets)
		require.Equal(t, workerDB.Host, kedaDB.Host, "KEDA reads the ledger the workers write")
		require.Equal(t, workerDB.Database, kedaDB.Database, "KEDA reads the ledger the workers write")
		require.NotEqual(t, workerDB.User, kedaDB.User, "KEDA reads with a role that may only read the backlog")
	}
	for _, m := range byKind["TriggerAuthentication"] {
		var ta triggerAuth
		m.decode(t, &ta)
		for _, r := range ta.Spec.SecretTargetRef {
			require.Contains(t, secrets[r.Name], r.Key, m.where())
		}
	}

	for _, m := range byKind["Service"] {
		var svc struct {
			Spec struct {
				Selector map[string]string `yaml:"selector"`
				Ports    []struct {
					TargetPort any `yaml:"targetPort"`
				} `yaml:"ports"`
			} `yaml:"spec"`
		}
		m.decode(t, &svc)
		found := false
		for _, w := range workloads {
			if mapsContain(w.Spec.Template.Metadata.Labels, svc.Spec.Selector) {
				found = true
				for _, p := range svc.Spec.Ports {
					_, ok := containerPort(w.Spec.Template.Spec.Containers[0], p.TargetPort)
					require.True(t, ok, "%s: targetPort %v is no container port", m.where(), p.TargetPort)
				}
			}
		}
		require.True(t, found, "%s selects no pods", m.where())
	}
}

type scaledObject struct {
	Spec struct {
		ScaleTargetRef  struct{ Name string } `yaml:"scaleTargetRef"`
		MinReplicaCount int                   `yaml:"minReplicaCount"`
		MaxReplicaCount int                   `yaml:"maxReplicaCount"`
		Triggers        []struct {
			Type              string                `yaml:"type"`
			MetricType        string                `yaml:"metricType"`
			Metadata          map[string]string     `yaml:"metadata"`
			AuthenticationRef struct{ Name string } `yaml:"authenticationRef"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

func decodeScaledObject(t *testing.T, m manifest) scaledObject {
	t.Helper()
	var so scaledObject
	m.decode(t, &so)
	return so
}

type triggerAuth struct {
	Spec struct {
		SecretTargetRef []struct {
			Parameter string `yaml:"parameter"`
			Name      string `yaml:"name"`
			Key       string `yaml:"key"`
		} `yaml:"secretTargetRef"`
	} `yaml:"spec"`
}

// workerDatabase is the ledger the worker Deployment connects to.
func workerDatabase(t *testing.T, w workload, secrets map[string]map[string]string) *pgx.ConnConfig {
	t.Helper()
	for _, e := range w.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "REVERIFY_DATABASE_URL" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			cfg, err := pgx.ParseConfig(secrets[e.ValueFrom.SecretKeyRef.Name][e.ValueFrom.SecretKeyRef.Key])
			require.NoError(t, err, "the workers' database-url")
			return cfg
		}
	}
	t.Fatal("the worker reads REVERIFY_DATABASE_URL from no Secret")
	return nil
}

func checkContainerEnv(t *testing.T, bin binary, where string, c container, configMaps, secrets map[string]map[string]string) {
	t.Helper()
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			require.Contains(t, configMaps, ef.ConfigMapRef.Name, where)
			for k := range configMaps[ef.ConfigMapRef.Name] {
				bin.checkEnv(t, where+" (configMap "+ef.ConfigMapRef.Name+")", k)
			}
		}
		if ef.SecretRef != nil {
			require.Contains(t, secrets, ef.SecretRef.Name, where)
			for k := range secrets[ef.SecretRef.Name] {
				bin.checkEnv(t, where, k)
			}
		}
	}
	for _, e := range c.Env {
		bin.checkEnv(t, where, e.Name)
		require.NotEqual(t, "REVERIFY_API_KEY", e.Name, "%s: the API key is mounted as a file, not put in the environment", where)
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			require.Contains(t, secrets[ref.Name], ref.Key, "%s: %s names a missing secret key", where, e.Name)
		}
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			ref := e.ValueFrom.ConfigMapKeyRef
			require.Contains(t, configMaps[ref.Name], ref.Key, "%s: %s names a missing config key", where, e.Name)
		}
		if strings.HasSuffix(e.Name, "_FILE") {
			require.True(t, mounted(c, e.Value), "%s: %s=%s is on no mounted volume", where, e.Name, e.Value)
		}
	}
}

// checkProbes requires probes on the endpoints health serves, on a port the
// container declares and the command listens on.
func checkProbes(t *testing.T, where string, c container, configMaps map[string]map[string]string) {
	t.Helper()
	for _, p := range []*probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil {
			continue
		}
		require.NotNil(t, p.HTTPGet, "%s: HTTP probes", where)
		require.True(t, probePaths[p.HTTPGet.Path], "%s: probe path %s is not served (want /healthz or /readyz)", where, p.HTTPGet.Path)
		port, ok := containerPort(c, p.HTTPGet.Port)
		require.True(t, ok, "%s: probe port %v is not a container port", where, p.HTTPGet.Port)
		require.True(t, listensOn(c, port, configMaps), "%s: %q serves no HTTP on port %d (it listens where %s says)",
			where, c.Args[0], port, listenEnv[c.Args[0]])
	}
}

func mounted(c container, path string) bool {
	for _, vm := range c.VolumeMounts {
		if strings.HasPrefix(path, vm.MountPath+"/") {
			return true
		}
	}
	return false
}

func containerPort(c container, ref any) (int, bool) {
	for _, p := range c.Ports {
		switch v := ref.(type) {
		case string:
			if p.Name == v {
				return p.ContainerPort, true
			}
		case int:
			if p.ContainerPort == v {
				return v, true
			}
		}
	}
	return 0, false
}

func listensOn(c container, port int, configMaps map[string]map[string]string) bool {
	values := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			for k, v := range configMaps[ef.ConfigMapRef.Name] {
				values[k] = v
			}
		}
	}
	for _, e := range c.Env {
		values[e.Name] = e.Value
	}
	name, ok := listenEnv[c.Args[0]]
	if !ok {
		return false
	}
	_, p, err := net.SplitHostPort(values[name])
	return err == nil && p == strconv.Itoa(port)
}

func mapsContain(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return len(want) > 0
}

// TestScalerQueryReadsTheBacklog runs the ScaledObject's query as KEDA's
// postgresql scaler does (pgx, one row scanned into a float64) against a
// migrated ledger, as a role granted only SELECT on the view it reads (as
// docs/operations.md says to set up): it measures what
// reverify_backlog_objects exports.
func TestScalerQueryReadsTheBacklog(t *testing.T) {
	t.Parallel()
	var query string
	for _, m := range loadManifests(t) {
		if m.Kind == "ScaledObject" {
			for _, tr := range decodeScaledObject(t, m).Spec.Triggers {
				if tr.Type == "postgresql" {
					query = tr.Metadata["query"]
				}
			}
		}
	}
	require.NotEmpty(t, query, "a postgresql trigger")
	view := regexp.MustCompile(`(?i)\bFROM\s+([a-z_]+)`).FindStringSubmatch(query)
	require.NotNil(t, view, "the query reads one view: %s", query)

	ctx := context.Background()
	store, owner := testenv.LedgerWithPool(t)
	role := fmt.Sprintf("reverify_keda_%x", rand.Uint64())
	_, err := owner.Exec(ctx, "CREATE ROLE "+role+" LOGIN")
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx := context.Background()
		_, err := owner.Exec(ctx, "DROP OWNED BY "+role)
		require.NoError(t, err)
		_, err = owner.Exec(ctx, "DROP ROLE "+role)
		require.NoError(t, err)
	})
	_, err = owner.Exec(ctx, "GRANT SELECT ON "+view[1]+" TO "+role)
	require.NoError(t, err)
	cfg := owner.Config().ConnConfig.Copy()
	cfg.User = role
	keda, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { keda.Close(context.Background()) })

	reg := prometheus.NewRegistry()
	require.NoError(t, metrics.RegisterBacklog(reg, store, metrics.BacklogTimeout))
	check := func(want float64) {
		t.Helper()
		var got float64
		require.NoError(t, keda.QueryRow(ctx, query).Scan(&got), query)
		require.Equal(t, want, got, query)
		exported := 0.0
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "reverify_backlog_objects" {
				for _, m := range mf.GetMetric() {
					exported += m.GetGauge().GetValue()
				}
			}
		}
		require.Equal(t, want, exported, "reverify_backlog_objects summed over priorities")
	}
	check(0)

	for i, p := range []reverify.Priority{reverify.PriorityHigh, reverify.PriorityLow} {
		run, err := store.CreateRun(ctx, postgres.NewRun{Name: string(p), Queue: "q", Priority: p,
			Source: reverify.Source{Kind: reverify.SourceManifest, Manifest: "test"}})
		require.NoError(t, err)
		objs := make([]reverify.ObjectRef, 3+i)
		for j := range objs {
			objs[j] = reverify.ObjectRef{Bucket: "b", Key: strconv.Itoa(j)}
		}
		_, err = store.AddObjects(ctx, run.ID, objs)
		require.NoError(t, err)
		require.NoError(t, store.StartRun(ctx, run.ID))
	}
	check(7)
}

// --- docker compose ---

type composeService struct {
	Image       string                 `yaml:"image"`
	Command     []string               `yaml:"command"`
	Environment map[string]string      `yaml:"environment"`
	DependsOn   map[string]any         `yaml:"depends_on"`
	StopGrace   string                 `yaml:"stop_grace_period"`
	Ports       []string               `yaml:"ports"`
	Healthcheck map[string]any         `yaml:"healthcheck"`
	Profiles    []string               `yaml:"profiles"`
	Deploy      struct{ Replicas int } `yaml:"deploy"`
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	bin := readBinary(t)
	src, err := os.ReadFile("docker-compose.yml")
	require.NoError(t, err)
	var compose struct {
		Services map[string]composeService `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(src, &compose))
	svcs := compose.Services
	for _, name := range []string{"redis", "postgres", "minio", "fake-api", "migrate", "worker", "scheduler", "dashboard"} {
		require.Contains(t, svcs, name, "the local stack has %s", name)
	}
	require.Subset(t, svcs["redis"].Command, []string{"--appendonly", "yes"}, "Redis keeps queued tasks across restarts")
	for _, name := range []string{"redis", "postgres", "minio"} {
		require.NotEmpty(t, svcs[name].Healthcheck, "%s has a healthcheck others wait on", name)
	}

	for name, s := range svcs {
		for dep := range s.DependsOn {
			require.Contains(t, svcs, dep, "%s depends on a missing service", name)
		}
		for _, p := range s.Ports {
			require.True(t, strings.HasPrefix(p, "127.0.0.1:"), "%s publishes %s beyond loopback", name, p)
		}
		if s.Image != "reverify:dev" {
			continue
		}
		where := "docker-compose.yml service " + name
		bin.checkArgs(t, where, s.Command)
		for k := range s.Environment {
			bin.checkEnv(t, where, k)
		}
		if s.Command[0] != "migrate" && s.Command[0] != "fake-api" && !slices.Contains(s.Profiles, "tools") {
			require.Contains(t, s.DependsOn, "migrate", "%s starts after the schema is migrated", where)
		}
	}

	f, err := os.Open("schedules.example.json")
	require.NoError(t, err)
	defer f.Close()
	_, err = scheduler.Load(f)
	require.NoError(t, err, "schedules.example.json")

	w := svcs["worker"]
	require.Greater(t, w.Deploy.Replicas, 1, "several workers")
	grace, err := time.ParseDuration(w.StopGrace)
	require.NoError(t, err)
	shutdown, err := time.ParseDuration(w.Environment["REVERIFY_SHUTDOWN_TIMEOUT"])
	require.NoError(t, err)
	require.Greater(t, grace, shutdown, "compose waits longer than the worker's shutdown timeout")

	d := svcs["dashboard"]
	hash := strings.ReplaceAll(d.Environment["REVERIFY_DASHBOARD_PASSWORD_HASH"], "$$", "$")
	require.NoError(t, bcrypt.CompareHashAndPassword([]byte(hash), []byte("reverify-local")),
		"the password the compose file documents matches its hash")
	require.NotEmpty(t, d.Environment["REVERIFY_DASHBOARD_USER"])
}

// --- Dockerfile ---

func TestDockerfile(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	s := string(src)
	require.GreaterOrEqual(t, strings.Count(s, "\nFROM ")+strings.Count(s[:5], "FROM"), 2, "multi-stage")
	require.Contains(t, s, "CGO_ENABLED=0", "a static binary")
	require.Regexp(t, `(?m)^USER\s+\S*nonroot`, s, "not root")
	require.Contains(t, s, "./cmd/reverify")
}

// --- Grafana ---

// asynqMetrics are the names asynq's x/metrics queue collector exports.
var asynqMetrics = []string{
	"asynq_tasks_enqueued_total", "asynq_queue_size", "asynq_queue_latency_seconds",
	"asynq_queue_memory_usage_approx_bytes", "asynq_tasks_processed_total",
	"asynq_tasks_failed_total", "asynq_queue_paused_total",
}

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

	known := map[string]bool{}
	for _, n := range asynqMetrics {
		known[n] = true
	}
	reg := prometheus.NewRegistry()
	p := metrics.NewPipeline(reg)
	score := 50.0
	p.ObjectFetched(time.Millisecond, 1, nil)
	p.APICalled("scored", time.Millisecond, &score)
	p.ResultRecorded("scored")
	p.Waited("rate_limited", time.Second)
	require.NoError(t, metrics.RegisterBacklog(reg, noBacklog{}, time.Second))
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

	metricRE := regexp.MustCompile(`\b(?:reverify|asynq)_[a-z0-9_]+\b`)
	used := map[string]bool{}
	for _, panel := range dash.Panels {
		require.NotEmpty(t, panel.Targets, "panel %q has no query", panel.Title)
		for _, target := range panel.Targets {
			names := metricRE.FindAllString(target.Expr, -1)
			require.NotEmpty(t, names, "panel %q: %s", panel.Title, target.Expr)
			for _, n := range names {
				require.True(t, known[n], "panel %q uses %s, which nothing exports", panel.Title, n)
				used[strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count")] = true
			}
		}
	}
	for _, want := range []string{"reverify_api_call_duration_seconds", "reverify_results_total", "reverify_liveness_score",
		"reverify_s3_fetch_duration_seconds", "reverify_waits_total", "reverify_api_circuit_open", "reverify_api_paid_calls_total",
		"asynq_tasks_enqueued_total", "reverify_backlog_objects"} {
		require.True(t, used[want], "the dashboard charts %s", want)
	}
}

// noBacklog is a ledger with no work, for the metric names.
type noBacklog struct{}

func (noBacklog) Backlog(context.Context) (map[reverify.Priority]int64, error) { return nil, nil }
