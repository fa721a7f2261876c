package deploy

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"

	"reverify"
	"reverify/dashboard"
	"reverify/internal/testenv"
	"reverify/metrics"
	"reverify/scheduler"
	"reverify/storage/postgres"
)

const chartDir = "helm/reverify"

// builtin are the Kubernetes kinds the chart renders, with their
// apiVersion and Go type: each object decodes strictly into its type.
var builtin = map[string]struct {
	apiVersion string
	new        func() any
}{
	"Deployment":          {"apps/v1", func() any { return &appsv1.Deployment{} }},
	"Job":                 {"batch/v1", func() any { return &batchv1.Job{} }},
	"CronJob":             {"batch/v1", func() any { return &batchv1.CronJob{} }},
	"ConfigMap":           {"v1", func() any { return &corev1.ConfigMap{} }},
	"Secret":              {"v1", func() any { return &corev1.Secret{} }},
	"Service":             {"v1", func() any { return &corev1.Service{} }},
	"ServiceAccount":      {"v1", func() any { return &corev1.ServiceAccount{} }},
	"PodDisruptionBudget": {"policy/v1", func() any { return &policyv1.PodDisruptionBudget{} }},
	"NetworkPolicy":       {"networking.k8s.io/v1", func() any { return &networkingv1.NetworkPolicy{} }},
	"ServiceMonitor":      {"monitoring.coreos.com/v1", func() any { return &monitoringv1.ServiceMonitor{} }},
	"PrometheusRule":      {"monitoring.coreos.com/v1", func() any { return &monitoringv1.PrometheusRule{} }},
}

// object is one rendered Kubernetes object.
type object struct {
	source     string // where it came from, for messages
	apiVersion string
	kind, name string
	raw        []byte
	typed      any // a pointer to the k8s.io/api (or Prometheus Operator) type; nil for KEDA's
}

func (o object) where() string { return o.source + ": " + o.kind + "/" + o.name }

// splitDocs splits a multi-document YAML stream into its non-empty documents.
func splitDocs(t *testing.T, source string, src []byte) [][]byte {
	t.Helper()
	var out [][]byte
	dec := yaml.NewDecoder(bytes.NewReader(src))
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err, source)
		if len(node.Content) == 0 {
			continue
		}
		raw, err := yaml.Marshal(&node)
		require.NoError(t, err)
		out = append(out, raw)
	}
}

// decodeObjects decodes every document strictly: a field its type (or,
// for KEDA, its CRD schema) does not declare fails the test, as does an
// unknown kind.
func decodeObjects(t *testing.T, source string, src []byte) []object {
	t.Helper()
	crds := append(loadCRD(t, "testdata/keda/keda.sh_scaledobjects.yaml"), loadCRD(t, "testdata/keda/keda.sh_triggerauthentications.yaml")...)
	var out []object
	for _, raw := range splitDocs(t, source, src) {
		var h struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		require.NoError(t, sigsyaml.Unmarshal(raw, &h), source)
		o := object{source: source, apiVersion: h.APIVersion, kind: h.Kind, name: h.Metadata.Name, raw: raw}
		require.NotEmpty(t, o.name, "%s: an object without a name", o.where())
		if b, ok := builtin[o.kind]; ok {
			require.Equal(t, b.apiVersion, o.apiVersion, o.where())
			o.typed = b.new()
			require.NoError(t, sigsyaml.UnmarshalStrict(raw, o.typed), "%s does not decode strictly into its API type", o.where())
		} else {
			require.Empty(t, validateCRD(t, crds, raw), "%s against its CRD", o.where())
		}
		out = append(out, o)
	}
	return out
}

// rendering is one set of objects to check: the chart rendered with one
// value set, or the kustomize base.
type rendering struct {
	name    string
	objects []object
	// externalSecrets and externalConfigMaps are Secrets and ConfigMaps the
	// objects use but do not define (existingSecret, the Secret made by
	// hand, the kustomize generator), by name: their keys.
	externalSecrets, externalConfigMaps map[string][]string
	values                              chartValues
}

// chartValues are the values a check needs to know.
type chartValues struct {
	ExistingSecret string            `json:"existingSecret"`
	SecretKeys     map[string]string `json:"secretKeys"`
	ServiceAccount struct {
		Create      bool              `json:"create"`
		Annotations map[string]string `json:"annotations"`
	} `json:"serviceAccount"`
	Config struct {
		APITimeoutSeconds int `json:"apiTimeoutSeconds"`
	} `json:"config"`
	Worker struct {
		Keda struct {
			Enabled bool `json:"enabled"`
		} `json:"keda"`
	} `json:"worker"`
	Scheduler struct {
		Enabled bool `json:"enabled"`
	} `json:"scheduler"`
	Dashboard struct {
		Enabled     bool   `json:"enabled"`
		UsersSecret string `json:"usersSecret"`
		UsersKey    string `json:"usersKey"`
	} `json:"dashboard"`
	Migrate struct {
		Enabled bool `json:"enabled"`
	} `json:"migrate"`
	Retention struct {
		Enabled   bool   `json:"enabled"`
		Suspend   bool   `json:"suspend"`
		OlderThan string `json:"olderThan"`
		Schedule  string `json:"schedule"`
		Actor     string `json:"actor"`
	} `json:"retention"`
	Metrics struct {
		ServiceMonitor struct {
			Enabled bool `json:"enabled"`
		} `json:"serviceMonitor"`
		PrometheusRule struct {
			Enabled bool `json:"enabled"`
		} `json:"prometheusRule"`
	} `json:"metrics"`
	NetworkPolicy struct {
		Enabled bool `json:"enabled"`
	} `json:"networkPolicy"`
}

// loadValues merges the chart's defaults with a value file (maps merge,
// the rest is replaced), as helm does, for the fields chartValues reads.
func loadValues(t *testing.T, files ...string) chartValues {
	t.Helper()
	merged := map[string]any{}
	for _, f := range append([]string{filepath.Join(chartDir, "values.yaml")}, files...) {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, sigsyaml.Unmarshal(src, &m), f)
		mergeValues(merged, m)
	}
	raw, err := sigsyaml.Marshal(merged)
	require.NoError(t, err)
	var v chartValues
	require.NoError(t, sigsyaml.Unmarshal(raw, &v))
	return v
}

func mergeValues(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeValues(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// helm runs the pinned helm binary and returns its standard output.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Helm(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// helm keeps its caches and config here; nothing is fetched.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// valueSets are the value files the chart is linted and rendered with.
func valueSets(t *testing.T) []string {
	t.Helper()
	sets, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(sets), 4)
	return sets
}

func renderChart(t *testing.T, release, namespace string, valueFiles ...string) string {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", namespace}
	for _, f := range valueFiles {
		args = append(args, "--values", f)
	}
	out, err := helm(t, args...)
	require.NoError(t, err)
	return out
}

func TestHelmChart(t *testing.T) {
	t.Parallel()
	bin := readBinary(t)
	known := exportedMetrics(t)
	for _, set := range valueSets(t) {
		t.Run(filepath.Base(set), func(t *testing.T) {
			t.Parallel()
			out, err := helm(t, "lint", chartDir, "--strict", "--values", set)
			require.NoError(t, err, out)
			src := renderChart(t, "rv", "kyc", set)
			v := loadValues(t, set)
			r := rendering{name: filepath.Base(set), objects: decodeObjects(t, "helm template -f "+set, []byte(src)), values: v,
				externalSecrets: map[string][]string{}}
			if v.ExistingSecret != "" {
				for _, key := range v.SecretKeys {
					r.externalSecrets[v.ExistingSecret] = append(r.externalSecrets[v.ExistingSecret], key)
				}
			}
			if v.Dashboard.UsersSecret != "" {
				// The users file is the operator's own Secret: its key must
				// be what the dashboard reads (checkMountedKey).
				r.externalSecrets[v.Dashboard.UsersSecret] = []string{v.Dashboard.UsersKey}
			}
			checkRendering(t, bin, known, r)
		})
	}
}

// TestHelmChartRefusesBadValues: values that would deploy something broken
// fail at render time, naming the value.
func TestHelmChartRefusesBadValues(t *testing.T) {
	t.Parallel()
	secrets := filepath.Join(chartDir, "ci", "default-values.yaml")
	for _, tc := range []struct{ set, want string }{
		{"", "secrets.databaseURL (or existingSecret) is required"},
		{"worker.keda.enabled=true,worker.keda.minReplicaCount=0,secrets.kedaDatabaseURL=postgres://k@db/r", "minReplicaCount must be at least 1"},
		{"worker.keda.enabled=true", "secrets.kedaDatabaseURL (or existingSecret) is required"},
		{"worker.terminationGracePeriodSeconds=30", "terminationGracePeriodSeconds must exceed"},
		{"config.extraEnv.HOME=/tmp", "HOME is not a REVERIFY_* setting"},
		{"worker.replica=3", "additional properties 'replica' not allowed"},
		{"config.logLevel=verbose", "logLevel"},
		{"retention.enabled=true,retention.olderThan=forever", "olderThan"},
		{"retention.enabled=true,retention.olderThan=", "olderThan"},
	} {
		args := []string{"template", "rv", chartDir}
		if tc.set != "" {
			args = append(args, "--values", secrets, "--set", tc.set)
		}
		_, err := helm(t, args...)
		require.ErrorContains(t, err, tc.want, tc.set)
	}
}

// kustomizeFiles are the files of deploy/kubernetes rendered from the
// chart, each from its templates.
var kustomizeFiles = []struct {
	file      string
	templates []string
}{
	{"reverify.yaml", []string{"configmap.yaml", "serviceaccount.yaml", "worker.yaml", "scheduler.yaml", "dashboard.yaml",
		"migrate-job.yaml", "prune-cronjob.yaml", "networkpolicy.yaml"}},
	{"keda.yaml", []string{"worker-scaledobject.yaml"}},
	{"monitoring.yaml", []string{"servicemonitor.yaml", "prometheusrule.yaml"}},
}

var update = flag.Bool("update", false, "rewrite deploy/kubernetes from the chart (make manifests)")

// TestKustomizeBase: deploy/kubernetes is the chart rendered with
// deploy/kubernetes/values.yaml (make manifests), plus the example Secret
// and the schedules generator; it passes the same checks as the chart.
func TestKustomizeBase(t *testing.T) {
	t.Parallel()
	bin := readBinary(t)
	const values = "kubernetes/values.yaml"
	// Every template is in one of the files, or renders nothing with these values.
	all, err := filepath.Glob(filepath.Join(chartDir, "templates", "*.yaml"))
	require.NoError(t, err)
	var listed []string
	for _, f := range kustomizeFiles {
		listed = append(listed, f.templates...)
	}
	for _, tpl := range all {
		if !slices.Contains(listed, filepath.Base(tpl)) {
			out, err := helm(t, "template", "reverify", chartDir, "--namespace", "reverify", "--values", values,
				"--show-only", "templates/"+filepath.Base(tpl))
			require.Error(t, err, "%s renders %s but no file of deploy/kubernetes holds it", tpl, out)
		}
	}
	for _, f := range kustomizeFiles {
		args := []string{"template", "reverify", chartDir, "--namespace", "reverify", "--values", values}
		for _, tpl := range f.templates {
			args = append(args, "--show-only", "templates/"+tpl)
		}
		want, err := helm(t, args...)
		require.NoError(t, err)
		want = manifestsHeader + want
		path := filepath.Join("kubernetes", f.file)
		if *update {
			require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
		}
		have, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, want, string(have), "deploy/kubernetes/%s is stale: run make manifests", f.file)
	}

	var kust struct {
		APIVersion         string   `json:"apiVersion"`
		Kind               string   `json:"kind"`
		Namespace          string   `json:"namespace"`
		Resources          []string `json:"resources"`
		ConfigMapGenerator []struct {
			Name  string   `json:"name"`
			Files []string `json:"files"`
		} `json:"configMapGenerator"`
		Images []struct {
			Name   string `json:"name"`
			NewTag string `json:"newTag"`
		} `json:"images"`
	}
	src, err := os.ReadFile("kubernetes/kustomization.yaml")
	require.NoError(t, err)
	require.NoError(t, sigsyaml.UnmarshalStrict(src, &kust))
	require.Equal(t, "reverify", kust.Namespace)
	files, err := filepath.Glob("kubernetes/*.yaml")
	require.NoError(t, err)
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && base != "values.yaml" && base != exampleSecret {
			require.Contains(t, kust.Resources, base, "kustomization.yaml does not apply %s", base)
		}
	}
	require.NotContains(t, kust.Resources, exampleSecret, "the base kustomization applies the example Secret")
	r := rendering{name: "kustomize", values: loadValues(t, values), externalSecrets: map[string][]string{},
		externalConfigMaps: map[string][]string{}}
	// The Secret is made by hand (or a secret manager) with the example's keys.
	var example corev1.Secret
	src, err = os.ReadFile(filepath.Join("kubernetes", exampleSecret))
	require.NoError(t, err)
	require.NoError(t, sigsyaml.UnmarshalStrict(src, &example))
	require.Equal(t, r.values.ExistingSecret, example.Name, "values.yaml names the Secret the example shows")
	for k := range example.StringData {
		r.externalSecrets[example.Name] = append(r.externalSecrets[example.Name], k)
	}
	for _, k := range r.values.SecretKeys {
		require.Contains(t, example.StringData, k, "the example Secret shows every key the chart reads")
	}
	for _, res := range kust.Resources {
		src, err := os.ReadFile(filepath.Join("kubernetes", res))
		require.NoError(t, err)
		r.objects = append(r.objects, decodeObjects(t, "deploy/kubernetes/"+res, src)...)
	}
	require.Len(t, kust.ConfigMapGenerator, 1, "the schedules come from a generator: an edit rolls the scheduler")
	gen := kust.ConfigMapGenerator[0]
	for _, f := range gen.Files {
		key, path, ok := strings.Cut(f, "=")
		if !ok {
			key, path = filepath.Base(f), f
		}
		r.externalConfigMaps[gen.Name] = append(r.externalConfigMaps[gen.Name], key)
		fh, err := os.Open(filepath.Join("kubernetes", path))
		require.NoError(t, err)
		_, err = scheduler.Load(fh)
		fh.Close()
		require.NoError(t, err, "%s", path)
	}
	require.NotEmpty(t, kust.Images)
	for _, img := range kust.Images {
		require.NotEmpty(t, img.NewTag)
		require.NotEqual(t, "latest", img.NewTag)
	}
	checkRendering(t, bin, exportedMetrics(t), r)
}

// exampleSecret shows the Secret the workloads read; it is applied by hand
// once filled in, never by the kustomization.
const exampleSecret = "secret.example.yaml"

// TestSecretExampleIsRefusedAsIs: the example Secret is not applied by the
// kustomization, and its placeholders, applied unedited, stop reverify
// from starting rather than guard the images with a token anyone can read
// in this repository.
func TestSecretExampleIsRefusedAsIs(t *testing.T) {
	t.Parallel()
	var kust struct{ Resources []string }
	src, err := os.ReadFile("kubernetes/kustomization.yaml")
	require.NoError(t, err)
	require.NoError(t, sigsyaml.Unmarshal(src, &kust))
	require.NotContains(t, kust.Resources, exampleSecret, "the base kustomization applies the example Secret")

	var secret corev1.Secret
	src, err = os.ReadFile(filepath.Join("kubernetes", exampleSecret))
	require.NoError(t, err)
	require.NoError(t, sigsyaml.UnmarshalStrict(src, &secret))
	sd := secret.StringData
	require.Error(t, dashboard.Auth{Token: sd["dashboard-token"]}.Validate(), "the example token passes validation")
	require.Error(t, dashboard.Auth{User: sd["dashboard-user"], PasswordHash: sd["dashboard-password-hash"]}.Validate(),
		"the example password hash passes validation")
	require.True(t, dashboard.IsPlaceholder(sd["api-key"]), "the example API key is not refused")
	for _, key := range []string{"database-url", "keda-database-url", "redis-url"} {
		u, err := url.Parse(sd[key])
		require.NoError(t, err)
		pass, _ := u.User.Password()
		require.True(t, dashboard.IsPlaceholder(pass), "the example %s password is not refused", key)
	}
}

const manifestsHeader = "# Generated by `make manifests` from deploy/helm/reverify with\n# deploy/kubernetes/values.yaml: edit those, not this file.\n"

// workload is a Deployment or Job, by its pod template.
type workload struct {
	o        object
	replicas *int32
	strategy appsv1.DeploymentStrategyType
	selector map[string]string
	pod      corev1.PodTemplateSpec
}

// checkRendering checks one set of objects against the binary and itself.
func checkRendering(t *testing.T, bin binary, known map[string]bool, r rendering) {
	t.Helper()
	byKind := map[string]map[string]object{}
	for _, o := range r.objects {
		if byKind[o.kind] == nil {
			byKind[o.kind] = map[string]object{}
		}
		require.NotContains(t, byKind[o.kind], o.name, "duplicate %s", o.where())
		byKind[o.kind][o.name] = o
	}

	configMaps := map[string]map[string]string{}
	for name, o := range byKind["ConfigMap"] {
		cm := o.typed.(*corev1.ConfigMap)
		configMaps[name] = cm.Data
		for _, k := range secretEnv {
			require.NotContains(t, cm.Data, k, "%s: a credential in a ConfigMap", o.where())
		}
		if js, ok := cm.Data["schedules.json"]; ok {
			_, err := scheduler.Load(strings.NewReader(js))
			require.NoError(t, err, "%s: schedules.json", o.where())
		}
	}
	secrets := map[string]map[string]string{}
	for name, o := range byKind["Secret"] {
		s := o.typed.(*corev1.Secret)
		secrets[name] = map[string]string{}
		for k, v := range s.StringData {
			secrets[name][k] = v
		}
		for k, v := range s.Data {
			secrets[name][k] = string(v)
		}
	}
	for name, keys := range r.externalSecrets {
		require.NotContains(t, secrets, name, "%s: Secret %s is both rendered and external", r.name, name)
		secrets[name] = map[string]string{}
		for _, k := range keys {
			secrets[name][k] = ""
		}
	}
	for name, keys := range r.externalConfigMaps {
		require.NotContains(t, configMaps, name, "%s: ConfigMap %s is both rendered and external", r.name, name)
		configMaps[name] = map[string]string{}
		for _, k := range keys {
			configMaps[name][k] = ""
		}
	}
	serviceAccounts := map[string]*corev1.ServiceAccount{}
	for name, o := range byKind["ServiceAccount"] {
		serviceAccounts[name] = o.typed.(*corev1.ServiceAccount)
	}

	var workloads []workload
	for _, o := range byKind["Deployment"] {
		d := o.typed.(*appsv1.Deployment)
		workloads = append(workloads, workload{o: o, replicas: d.Spec.Replicas, strategy: d.Spec.Strategy.Type,
			selector: d.Spec.Selector.MatchLabels, pod: d.Spec.Template})
	}
	for _, o := range byKind["Job"] {
		j := o.typed.(*batchv1.Job)
		workloads = append(workloads, workload{o: o, pod: j.Spec.Template})
	}
	for _, o := range byKind["CronJob"] {
		cj := o.typed.(*batchv1.CronJob)
		workloads = append(workloads, workload{o: o, pod: cj.Spec.JobTemplate.Spec.Template})
	}
	image := ""
	byCommand := map[string]workload{}
	for _, w := range workloads {
		spec := w.pod.Spec
		for k, v := range w.selector {
			require.Equal(t, v, w.pod.Labels[k], "%s: the selector does not match the pod labels", w.o.where())
		}
		checkPodSecurity(t, w.o.where(), spec)
		if spec.ServiceAccountName != "" && r.values.ServiceAccount.Create {
			require.Contains(t, serviceAccounts, spec.ServiceAccountName, "%s: a missing ServiceAccount", w.o.where())
		}
		require.Len(t, spec.Containers, 1, w.o.where())
		c := spec.Containers[0]
		where := w.o.where() + " container " + c.Name
		require.NotContains(t, c.Image, ":latest", where)
		require.Regexp(t, `^[a-z0-9./-]+/reverify:[0-9A-Za-z._-]+$`, c.Image, where)
		if image == "" {
			image = c.Image
		}
		require.Equal(t, image, c.Image, "%s: every component runs the same image", where)
		require.Empty(t, c.Command, "%s: the image's entrypoint is the binary", where)
		bin.checkArgs(t, where, c.Args)
		byCommand[c.Args[0]] = w
		checkContainerEnv(t, bin, where, spec, c, configMaps, secrets)
		for i, a := range c.Args {
			if a == "--config" && i+1 < len(c.Args) {
				require.True(t, mounted(c, c.Args[i+1]), "%s: --config %s is on no mounted volume", where, c.Args[i+1])
			}
		}
		checkProbes(t, where, c, configMaps)
		require.NotEmpty(t, c.Resources.Requests, "%s: resource requests", where)
		require.NotNil(t, c.Resources.Limits.Memory(), "%s: a memory limit", where)
		require.False(t, c.Resources.Limits.Memory().IsZero(), "%s: a memory limit", where)
	}

	worker, ok := byCommand["worker"]
	require.True(t, ok, "%s: a worker Deployment", r.name)
	require.Equal(t, "Deployment", worker.o.kind)
	wc := worker.pod.Spec.Containers[0]
	shutdown := 30 * time.Second // the worker's default
	if v := envValue(wc, configMaps)["REVERIFY_SHUTDOWN_TIMEOUT"]; v != "" {
		var err error
		shutdown, err = time.ParseDuration(v)
		require.NoError(t, err)
	}
	grace := worker.pod.Spec.TerminationGracePeriodSeconds
	require.NotNil(t, grace, "the worker sets terminationGracePeriodSeconds")
	require.Greater(t, time.Duration(*grace)*time.Second, shutdown+5*time.Second,
		"the grace period leaves the worker time to finish in-flight images")
	require.NotNil(t, wc.ReadinessProbe)
	require.NotContains(t, worker.pod.Annotations, "prometheus.io/scrape", "Prometheus Operator ignores these: a ServiceMonitor scrapes the workers")

	if r.values.Scheduler.Enabled {
		sched, ok := byCommand["scheduler"]
		require.True(t, ok, "%s: a scheduler Deployment", r.name)
		require.NotNil(t, sched.replicas)
		require.EqualValues(t, 1, *sched.replicas, "exactly one scheduler")
		require.Equal(t, appsv1.RecreateDeploymentStrategyType, sched.strategy, "a rollout never runs two schedulers")
		cm := ""
		for _, v := range sched.pod.Spec.Volumes {
			if v.ConfigMap != nil {
				cm = v.ConfigMap.Name
			}
		}
		require.Contains(t, configMaps, cm, "the scheduler's schedules")
		if _, external := r.externalConfigMaps[cm]; !external {
			require.Contains(t, sched.pod.Annotations, "checksum/schedules", "an edit of the schedules rolls the scheduler")
		}
	} else {
		require.NotContains(t, byCommand, "scheduler")
	}
	if r.values.Dashboard.Enabled {
		require.Contains(t, byCommand, "dashboard", r.name)
	}
	if r.values.Migrate.Enabled {
		mig, ok := byCommand["migrate"]
		require.True(t, ok, "%s: a migrate Job", r.name)
		require.Equal(t, "Job", mig.o.kind)
		require.Equal(t, "pre-install,pre-upgrade", mig.o.typed.(*batchv1.Job).Annotations["helm.sh/hook"],
			"migrate runs as a hook: a new Job each release, before the workers roll")
		for _, e := range mig.pod.Spec.Containers[0].Env {
			if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
				if s, ok := byKind["Secret"][ref.SecretKeyRef.Name]; ok && ref.SecretKeyRef.Name != r.values.ExistingSecret {
					// On install the release's own Secret does not exist yet.
					ann := s.typed.(*corev1.Secret).Annotations
					require.Equal(t, "pre-install,pre-upgrade", ann["helm.sh/hook"], "%s: the hook's Secret is a hook too", s.where())
					weight, _ := strconv.Atoi(ann["helm.sh/hook-weight"])
					require.Less(t, weight, 0, "%s is created before the Job", s.where())
				}
			}
		}
	}
	checkRetention(t, r, byCommand, configMaps, secrets)
	if !r.values.ServiceAccount.Create {
		require.Empty(t, byKind["ServiceAccount"])
	}
	for _, sa := range serviceAccounts {
		for k, v := range r.values.ServiceAccount.Annotations {
			require.Equal(t, v, sa.Annotations[k], "the ServiceAccount carries %s (IRSA, Pod Identity)", k)
		}
		require.NotNil(t, sa.AutomountServiceAccountToken)
		require.False(t, *sa.AutomountServiceAccountToken, "reverify never talks to the Kubernetes API")
	}

	for _, o := range byKind["PodDisruptionBudget"] {
		pdb := o.typed.(*policyv1.PodDisruptionBudget)
		require.Equal(t, worker.selector, pdb.Spec.Selector.MatchLabels, "%s selects the workers", o.where())
		require.NotNil(t, pdb.Spec.MaxUnavailable)
	}

	checkKEDA(t, r, byKind, worker, secrets)

	services := map[string]*corev1.Service{}
	for name, o := range byKind["Service"] {
		svc := o.typed.(*corev1.Service)
		services[name] = svc
		found := false
		for _, w := range workloads {
			if mapsContain(w.pod.Labels, svc.Spec.Selector) {
				found = true
				for _, p := range svc.Spec.Ports {
					_, ok := containerPort(w.pod.Spec.Containers[0], p.TargetPort)
					require.True(t, ok, "%s: targetPort %v is no container port", o.where(), p.TargetPort.String())
				}
			}
		}
		require.True(t, found, "%s selects no pods", o.where())
	}

	checkMonitoring(t, known, r, byKind, worker, services)

	require.Equal(t, r.values.NetworkPolicy.Enabled, len(byKind["NetworkPolicy"]) > 0, r.name)
	for _, o := range byKind["NetworkPolicy"] {
		np := o.typed.(*networkingv1.NetworkPolicy)
		var selected []workload
		for _, w := range workloads {
			if mapsContain(w.pod.Labels, np.Spec.PodSelector.MatchLabels) {
				selected = append(selected, w)
			}
		}
		require.NotEmpty(t, selected, "%s selects no pods", o.where())
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				require.NotNil(t, p.Port, o.where())
				for _, w := range selected {
					_, ok := containerPort(w.pod.Spec.Containers[0], *p.Port)
					require.True(t, ok, "%s lets in port %s, which %s does not serve", o.where(), p.Port.String(), w.o.name)
				}
			}
		}
	}
	// Every port a pod serves beyond probes is reachable through its policy.
	if r.values.NetworkPolicy.Enabled {
		for _, w := range workloads {
			covered := false
			for _, o := range byKind["NetworkPolicy"] {
				covered = covered || mapsContain(w.pod.Labels, o.typed.(*networkingv1.NetworkPolicy).Spec.PodSelector.MatchLabels)
			}
			require.True(t, covered, "%s: no NetworkPolicy selects its pods", w.o.where())
		}
	}
}

// checkRetention: with retention enabled, a CronJob runs `reverify prune
// --older-than` the values' age on a valid schedule, one at a time, with
// the ledger and Redis of the other workloads and an actor for the audit
// log; without, there is none.
func checkRetention(t *testing.T, r rendering, byCommand map[string]workload, configMaps, secrets map[string]map[string]string) {
	t.Helper()
	prune, ok := byCommand["prune"]
	if !r.values.Retention.Enabled {
		require.False(t, ok, "%s: a prune workload while retention is off", r.name)
		return
	}
	require.True(t, ok, "%s: retention enabled but no prune CronJob", r.name)
	require.Equal(t, "CronJob", prune.o.kind)
	cj := prune.o.typed.(*batchv1.CronJob)
	_, err := cron.ParseStandard(cj.Spec.Schedule)
	require.NoError(t, err, "%s: schedule", prune.o.where())
	require.Equal(t, r.values.Retention.Schedule, cj.Spec.Schedule)
	require.NotNil(t, cj.Spec.TimeZone)
	_, err = time.LoadLocation(*cj.Spec.TimeZone)
	require.NoError(t, err, "%s: timeZone", prune.o.where())
	require.Equal(t, batchv1.ForbidConcurrent, cj.Spec.ConcurrencyPolicy, "two prunes never overlap")
	require.NotNil(t, cj.Spec.Suspend)
	require.Equal(t, r.values.Retention.Suspend, *cj.Spec.Suspend)
	require.Equal(t, corev1.RestartPolicyNever, prune.pod.Spec.RestartPolicy)

	c := prune.pod.Spec.Containers[0]
	i := slices.Index(c.Args, "--older-than")
	require.GreaterOrEqual(t, i, 0, "%s: prune --older-than", prune.o.where())
	require.Equal(t, r.values.Retention.OlderThan, c.Args[i+1])
	require.Regexp(t, `^[0-9]+d$|^([0-9]+d)?[0-9]+[hms]`, c.Args[i+1], "an age reverify prune reads")
	env := envValue(c, configMaps)
	require.Equal(t, r.values.Retention.Actor, env["REVERIFY_ACTOR"], "the audit log names the retention job")
	var fromSecret []string
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			require.Contains(t, secrets, e.ValueFrom.SecretKeyRef.Name, "%s: %s from a missing Secret", prune.o.where(), e.Name)
			fromSecret = append(fromSecret, e.Name)
		}
	}
	require.ElementsMatch(t, []string{"REVERIFY_DATABASE_URL", "REVERIFY_REDIS_URL"}, fromSecret,
		"the ledger, and Redis for the runs' queued tasks, wired as the worker's")
	worker := byCommand["worker"].pod.Spec.Containers[0]
	require.Equal(t, worker.EnvFrom, c.EnvFrom, "the settings ConfigMap of the other workloads")
	require.Equal(t, worker.Image, c.Image)
}

// checkPodSecurity: a numeric non-root user the kubelet can verify (the
// image's USER), nothing writable, no privileges.
func checkPodSecurity(t *testing.T, where string, spec corev1.PodSpec) {
	t.Helper()
	psc := spec.SecurityContext
	require.NotNil(t, psc, where)
	require.NotNil(t, psc.RunAsNonRoot, where)
	require.True(t, *psc.RunAsNonRoot, where)
	require.NotNil(t, psc.RunAsUser, "%s: runAsNonRoot needs a numeric runAsUser (the image's USER is a number too)", where)
	require.EqualValues(t, imageUID(t), *psc.RunAsUser, where)
	require.NotNil(t, psc.SeccompProfile, where)
	require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type, where)
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		require.NotNil(t, sc, where)
		require.NotNil(t, sc.AllowPrivilegeEscalation, where)
		require.False(t, *sc.AllowPrivilegeEscalation, where)
		require.NotNil(t, sc.ReadOnlyRootFilesystem, where)
		require.True(t, *sc.ReadOnlyRootFilesystem, where)
		require.NotNil(t, sc.Capabilities, where)
		require.Contains(t, sc.Capabilities.Drop, corev1.Capability("ALL"), where)
	}
}

func checkKEDA(t *testing.T, r rendering, byKind map[string]map[string]object, worker workload, secrets map[string]map[string]string) {
	t.Helper()
	if !r.values.Worker.Keda.Enabled {
		require.Empty(t, byKind["ScaledObject"], r.name)
		require.NotNil(t, worker.replicas, "%s: without KEDA the Deployment sets its replicas", r.name)
		return
	}
	require.Nil(t, worker.replicas, "%s: the ScaledObject owns the worker count; replicas in the Deployment would fight it on every upgrade", r.name)
	require.Len(t, byKind["ScaledObject"], 1, r.name)
	for _, o := range byKind["ScaledObject"] {
		so := decodeScaledObject(t, o)
		require.Equal(t, worker.o.name, so.Spec.ScaleTargetRef.Name, o.where())
		require.GreaterOrEqual(t, so.Spec.MinReplicaCount, 1, "%s: a worker stays to run the feeder, retries and scheduled tasks", o.where())
		require.Greater(t, so.Spec.MaxReplicaCount, so.Spec.MinReplicaCount)
		require.Len(t, so.Spec.Triggers, 1, o.where())
		tr := so.Spec.Triggers[0]
		// The asynq pending lists hold only the feeder's window: the
		// backlog is in the ledger.
		require.Equal(t, "postgresql", tr.Type, "%s scales on the ledger's backlog", o.where())
		require.Equal(t, "AverageValue", tr.MetricType, "%s: the target is per worker", o.where())
		require.Equal(t, scalerQuery(t), tr.Metadata["query"], o.where())
		target, err := strconv.ParseFloat(tr.Metadata["targetQueryValue"], 64)
		require.NoError(t, err, "%s: targetQueryValue", o.where())
		require.Positive(t, target)
		for k := range tr.Metadata {
			require.NotContains(t, []string{"connection", "connectionFromEnv", "password", "passwordFromEnv"}, k,
				"%s: the connection comes from the TriggerAuthentication's Secret", o.where())
		}
		ta, ok := byKind["TriggerAuthentication"][tr.AuthenticationRef.Name]
		require.True(t, ok, "%s: no TriggerAuthentication %q", o.where(), tr.AuthenticationRef.Name)
		var auth triggerAuth
		require.NoError(t, sigsyaml.Unmarshal(ta.raw, &auth))
		var conn *corev1.SecretKeySelector
		for _, ref := range auth.Spec.SecretTargetRef {
			require.Contains(t, secrets[ref.Name], ref.Key, ta.where())
			if ref.Parameter == "connection" {
				conn = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}, Key: ref.Key}
			}
		}
		require.NotNil(t, conn, "%s passes no connection", ta.where())
		kedaURL := secrets[conn.Name][conn.Key]
		workerURL := ""
		for _, e := range worker.pod.Spec.Containers[0].Env {
			if e.Name == "REVERIFY_DATABASE_URL" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				workerURL = secrets[e.ValueFrom.SecretKeyRef.Name][e.ValueFrom.SecretKeyRef.Key]
			}
		}
		if kedaURL == "" || workerURL == "" {
			continue // an existing Secret: the values are not here
		}
		kedaDB, err := pgx.ParseConfig(kedaURL)
		require.NoError(t, err, "%s: %s is no PostgreSQL connection string", ta.where(), conn.Key)
		workerDB, err := pgx.ParseConfig(workerURL)
		require.NoError(t, err, "the workers' database URL")
		require.Equal(t, workerDB.Host, kedaDB.Host, "KEDA reads the ledger the workers write")
		require.Equal(t, workerDB.Database, kedaDB.Database, "KEDA reads the ledger the workers write")
		require.NotEqual(t, workerDB.User, kedaDB.User, "KEDA reads with a role that may only read the backlog")
	}
}

func checkMonitoring(t *testing.T, known map[string]bool, r rendering, byKind map[string]map[string]object, worker workload, services map[string]*corev1.Service) {
	t.Helper()
	// The Service Prometheus scrapes the workers through.
	var metricsSvc string
	for name, svc := range services {
		if mapsContain(worker.pod.Labels, svc.Spec.Selector) {
			metricsSvc = name
			require.True(t, svc.Spec.PublishNotReadyAddresses, "%s: a worker that cannot reach PostgreSQL is not ready, and must still be scraped to say so", name)
		}
	}
	require.NotEmpty(t, metricsSvc, "%s: a Service for the workers' metrics", r.name)

	require.Equal(t, r.values.Metrics.ServiceMonitor.Enabled, len(byKind["ServiceMonitor"]) == 1, r.name)
	for _, o := range byKind["ServiceMonitor"] {
		sm := o.typed.(*monitoringv1.ServiceMonitor)
		svc := services[metricsSvc]
		require.True(t, mapsContain(svc.Labels, sm.Spec.Selector.MatchLabels), "%s selects the workers' metrics Service", o.where())
		require.Len(t, sm.Spec.Endpoints, 1)
		ep := sm.Spec.Endpoints[0]
		require.Equal(t, "/metrics", ep.Path)
		require.True(t, slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }),
			"%s scrapes port %q, which %s does not have", o.where(), ep.Port, metricsSvc)
	}

	require.Equal(t, r.values.Metrics.PrometheusRule.Enabled, len(byKind["PrometheusRule"]) == 1, r.name)
	for _, o := range byKind["PrometheusRule"] {
		pr := o.typed.(*monitoringv1.PrometheusRule)
		alerts := map[string]string{}
		for _, g := range pr.Spec.Groups {
			for _, rule := range g.Rules {
				require.NotEmpty(t, rule.Alert, "%s: recording rules are not expected", o.where())
				expr := rule.Expr.String()
				where := o.where() + " alert " + rule.Alert
				checkPromQL(t, known, where, expr)
				require.Contains(t, expr, `job="`+metricsSvc+`"`, "%s reads this release's workers", where)
				require.NotEmpty(t, rule.Labels["severity"], where)
				require.NotEmpty(t, rule.Annotations["summary"], where)
				alerts[rule.Alert] = expr
			}
		}
		// The alerts issue 16 asks for, by what they read.
		for alert, metric := range map[string]string{
			"ReverifyAPIKeyRefused":        `reverify_fleet_circuit_open{.*circuit="auth"`,
			"ReverifyAPIOutage":            `reverify_fleet_circuit_open{.*circuit="outage"`,
			"ReverifyDailyBudgetSpent":     `reverify_fleet_daily_budget_spent`,
			"ReverifyRunFailed":            `reverify_runs{.*status="failed"`,
			"ReverifyQueueLatencyHigh":     `asynq_queue_latency_seconds`,
			"ReverifyCallsInFlightTooLong": fmt.Sprintf(`reverify_api_oldest_call_in_flight_seconds\{.* > %d$`, 2*r.values.Config.APITimeoutSeconds),
			"ReverifyTasksRefilled":        `reverify_feeder_refilled_tasks_total`,
			"ReverifyLedgerUnreachable":    `reverify_backlog_up\{.* == 0$`,
		} {
			require.Contains(t, alerts, alert, o.where())
			require.Regexp(t, metric, alerts[alert], "%s %s", o.where(), alert)
		}
		require.Regexp(t, fmt.Sprintf(`status="%s"`, reverify.RunFailed), alerts["ReverifyRunFailed"])
	}
}

// scalerQuery is the query of the ScaledObject in deploy/kubernetes (which
// TestKustomizeBase holds equal to the chart's).
func scalerQuery(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("kubernetes/keda.yaml")
	require.NoError(t, err)
	for _, raw := range splitDocs(t, "kubernetes/keda.yaml", src) {
		var so struct {
			Kind string `json:"kind"`
			scaledObject
		}
		require.NoError(t, sigsyaml.Unmarshal(raw, &so))
		if so.Kind == "ScaledObject" {
			for _, tr := range so.Spec.Triggers {
				if tr.Type == "postgresql" {
					return tr.Metadata["query"]
				}
			}
		}
	}
	t.Fatal("deploy/kubernetes has no ScaledObject with a postgresql trigger")
	return ""
}

type scaledObject struct {
	Spec struct {
		ScaleTargetRef  struct{ Name string } `json:"scaleTargetRef"`
		MinReplicaCount int                   `json:"minReplicaCount"`
		MaxReplicaCount int                   `json:"maxReplicaCount"`
		Triggers        []struct {
			Type              string                `json:"type"`
			MetricType        string                `json:"metricType"`
			Metadata          map[string]string     `json:"metadata"`
			AuthenticationRef struct{ Name string } `json:"authenticationRef"`
		} `json:"triggers"`
	} `json:"spec"`
}

func decodeScaledObject(t *testing.T, o object) scaledObject {
	t.Helper()
	var so scaledObject
	require.NoError(t, sigsyaml.Unmarshal(o.raw, &so), o.where())
	return so
}

type triggerAuth struct {
	Spec struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

// envValue is the container's environment as set in the manifest (values
// from ConfigMaps included, Secrets not).
func envValue(c corev1.Container, configMaps map[string]map[string]string) map[string]string {
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
	return values
}

func checkContainerEnv(t *testing.T, bin binary, where string, spec corev1.PodSpec, c corev1.Container, configMaps, secrets map[string]map[string]string) {
	t.Helper()
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			require.Contains(t, configMaps, ef.ConfigMapRef.Name, where)
			for k := range configMaps[ef.ConfigMapRef.Name] {
				bin.checkEnv(t, where+" (configMap "+ef.ConfigMapRef.Name+")", k)
			}
		}
		require.Nil(t, ef.SecretRef, "%s: name each secret variable (envFrom a Secret hides what is read)", where)
	}
	for _, e := range c.Env {
		bin.checkEnv(t, where, e.Name)
		require.NotEqual(t, "REVERIFY_API_KEY", e.Name, "%s: the API key is mounted as a file, not put in the environment", where)
		if slices.Contains(secretEnv, e.Name) {
			require.Empty(t, e.Value, "%s: %s in plain text", where, e.Name)
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			require.Contains(t, secrets, ref.Name, "%s: %s names a missing Secret", where, e.Name)
			require.Contains(t, secrets[ref.Name], ref.Key, "%s: %s names a missing secret key", where, e.Name)
		}
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			ref := e.ValueFrom.ConfigMapKeyRef
			require.Contains(t, configMaps[ref.Name], ref.Key, "%s: %s names a missing config key", where, e.Name)
		}
		if strings.HasSuffix(e.Name, "_FILE") {
			require.True(t, mounted(c, e.Value), "%s: %s=%s is on no mounted volume", where, e.Name, e.Value)
			checkMountedKey(t, where, spec, c, e.Value, secrets)
		}
	}
}

// checkMountedKey requires that a file the container reads is a key of
// the Secret mounted there.
func checkMountedKey(t *testing.T, where string, spec corev1.PodSpec, c corev1.Container, path string, secrets map[string]map[string]string) {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(path, vm.MountPath+"/")
		if !ok {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			require.Contains(t, secrets, v.Secret.SecretName, where)
			for _, item := range v.Secret.Items {
				if item.Path == rel {
					require.Contains(t, secrets[v.Secret.SecretName], item.Key, "%s: %s mounts a missing key", where, path)
					return
				}
			}
		}
	}
	t.Fatalf("%s: %s is no key of a mounted Secret", where, path)
}

// checkProbes requires probes on the endpoints health serves, on a port the
// container declares and the command listens on.
func checkProbes(t *testing.T, where string, c corev1.Container, configMaps map[string]map[string]string) {
	t.Helper()
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil {
			continue
		}
		require.NotNil(t, p.HTTPGet, "%s: HTTP probes", where)
		require.True(t, probePaths[p.HTTPGet.Path], "%s: probe path %s is not served (want /healthz or /readyz)", where, p.HTTPGet.Path)
		port, ok := containerPort(c, p.HTTPGet.Port)
		require.True(t, ok, "%s: probe port %s is not a container port", where, p.HTTPGet.Port.String())
		_, listen, err := net.SplitHostPort(envValue(c, configMaps)[listenEnv[c.Args[0]]])
		require.NoError(t, err, "%s: %q serves no HTTP (it listens where %s says)", where, c.Args[0], listenEnv[c.Args[0]])
		require.Equal(t, strconv.Itoa(int(port)), listen, "%s: probes port %d, %q listens on %s", where, port, c.Args[0], listen)
	}
}

func mounted(c corev1.Container, path string) bool {
	for _, vm := range c.VolumeMounts {
		if strings.HasPrefix(path, vm.MountPath+"/") {
			return true
		}
	}
	return false
}

func containerPort(c corev1.Container, ref intstr.IntOrString) (int32, bool) {
	for _, p := range c.Ports {
		if ref.Type == intstr.String && p.Name == ref.StrVal || ref.Type == intstr.Int && p.ContainerPort == ref.IntVal {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

func mapsContain(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return len(want) > 0
}

// imageUID is the numeric user the Dockerfile's final stage runs as.
func imageUID(t *testing.T) int64 {
	t.Helper()
	src, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^USER\s+(\d+)(?::(\d+))?\s*$`).FindSubmatch(src)
	require.NotNil(t, m, "the Dockerfile's USER is numeric (UID:GID), so the kubelet can check runAsNonRoot")
	uid, err := strconv.ParseInt(string(m[1]), 10, 64)
	require.NoError(t, err)
	return uid
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	s := string(src)
	require.GreaterOrEqual(t, strings.Count(s, "\nFROM ")+strings.Count(s[:5], "FROM"), 2, "multi-stage")
	require.Contains(t, s, "CGO_ENABLED=0", "a static binary")
	require.Contains(t, s, "./cmd/reverify")
	require.NotContains(t, s, ":latest")
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(s, -1)
	require.NotEmpty(t, users)
	require.Regexp(t, `^[1-9][0-9]*:[1-9][0-9]*$`, users[len(users)-1][1], "a numeric, non-root UID:GID: a name cannot be verified against runAsNonRoot")
	require.EqualValues(t, 65532, imageUID(t), "distroless' nonroot user")
}

// TestScalerQueryReadsTheBacklog runs the ScaledObject's query as KEDA's
// postgresql scaler does (pgx, one row scanned into a float64) against a
// migrated ledger, as a role granted only SELECT on the view it reads (as
// docs/operations.md says to set up): it measures what
// reverify_backlog_objects exports.
func TestScalerQueryReadsTheBacklog(t *testing.T) {
	t.Parallel()
	query := scalerQuery(t)
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
