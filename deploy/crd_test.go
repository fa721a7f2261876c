package deploy

import (
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// crdSchema is one served version of a CustomResourceDefinition.
type crdSchema struct {
	group, version, kind string
	schema               map[string]any
}

// loadCRD reads a CRD file (as controller-gen writes them) and returns the
// schema of each served version.
func loadCRD(t *testing.T, file string) []crdSchema {
	t.Helper()
	src, err := os.ReadFile(file)
	require.NoError(t, err)
	var crd struct {
		Spec struct {
			Group string `json:"group"`
			Names struct {
				Kind string `json:"kind"`
			} `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Served bool   `json:"served"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	require.NoError(t, sigsyaml.Unmarshal(src, &crd), file)
	var out []crdSchema
	for _, v := range crd.Spec.Versions {
		if v.Served {
			out = append(out, crdSchema{crd.Spec.Group, v.Name, crd.Spec.Names.Kind, v.Schema.OpenAPIV3Schema})
		}
	}
	require.NotEmpty(t, out, file)
	return out
}

// validateCRD checks a custom object against its structural schema as the
// API server would prune and validate it: a field the schema does not
// declare is an error (the API server would drop it silently), as are a
// wrong type, a missing required field and a value outside an enum.
// metadata is checked against metav1.ObjectMeta, strictly.
func validateCRD(t *testing.T, schemas []crdSchema, doc []byte) []string {
	t.Helper()
	var obj map[string]any
	require.NoError(t, sigsyaml.Unmarshal(doc, &obj))
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	for _, s := range schemas {
		if apiVersion != s.group+"/"+s.version || kind != s.kind {
			continue
		}
		var errs []string
		if meta, ok := obj["metadata"]; ok {
			raw, err := sigsyaml.Marshal(meta)
			require.NoError(t, err)
			var om metav1.ObjectMeta
			if err := sigsyaml.UnmarshalStrict(raw, &om); err != nil {
				errs = append(errs, "metadata: "+err.Error())
			}
		}
		rest := map[string]any{}
		for k, v := range obj {
			if k != "metadata" {
				rest[k] = v
			}
		}
		props, _ := s.schema["properties"].(map[string]any)
		trimmed := map[string]any{"type": "object", "properties": props, "required": s.schema["required"]}
		delete(props, "metadata")
		validateValue(trimmed, rest, "", &errs)
		return errs
	}
	return []string{fmt.Sprintf("no CRD serves %s %s", apiVersion, kind)}
}

func validateValue(schema map[string]any, v any, path string, errs *[]string) {
	fail := func(format string, args ...any) {
		*errs = append(*errs, fmt.Sprintf("%s: ", orRoot(path))+fmt.Sprintf(format, args...))
	}
	if v == nil {
		if n, _ := schema["nullable"].(bool); !n {
			fail("null")
		}
		return
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, v) {
		fail("%v is not one of %v", v, enum)
	}
	if ios, _ := schema["x-kubernetes-int-or-string"].(bool); ios {
		switch x := v.(type) {
		case string:
		case float64:
			if x != math.Trunc(x) {
				fail("%v is neither an integer nor a string", v)
			}
		default:
			fail("%T is neither an integer nor a string", v)
		}
		return
	}
	switch typ, _ := schema["type"].(string); typ {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			fail("want an object, have %T", v)
			return
		}
		props, _ := schema["properties"].(map[string]any)
		for _, r := range asStrings(schema["required"]) {
			if _, ok := m[r]; !ok {
				fail("missing required field %q", r)
			}
		}
		preserve, _ := schema["x-kubernetes-preserve-unknown-fields"].(bool)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k].(map[string]any); ok {
				validateValue(ps, m[k], path+"."+k, errs)
				continue
			}
			switch ap := schema["additionalProperties"].(type) {
			case map[string]any:
				validateValue(ap, m[k], path+"."+k, errs)
			case bool:
				if !ap {
					fail("unknown field %q", k)
				}
			default:
				if !preserve {
					fail("unknown field %q", k)
				}
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			fail("want an array, have %T", v)
			return
		}
		items, _ := schema["items"].(map[string]any)
		for i, e := range a {
			validateValue(items, e, fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case "string":
		if _, ok := v.(string); !ok {
			fail("want a string, have %T (%v)", v, v)
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != math.Trunc(f) {
			fail("want an integer, have %T (%v)", v, v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			fail("want a number, have %T", v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			fail("want a boolean, have %T", v)
		}
	}
}

func asStrings(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, e := range a {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func orRoot(path string) string {
	if path == "" {
		return "."
	}
	return path
}

// TestCRDValidatorRejectsWhatTheAPIServerWould keeps the validator honest.
func TestCRDValidatorRejectsWhatTheAPIServerWould(t *testing.T) {
	t.Parallel()
	crds := append(loadCRD(t, "testdata/keda/keda.sh_scaledobjects.yaml"), loadCRD(t, "testdata/keda/keda.sh_triggerauthentications.yaml")...)
	good := `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: w}
spec:
  scaleTargetRef: {name: w}
  minReplicaCount: 1
  triggers:
    - type: postgresql
      metadata: {query: "SELECT 1", targetQueryValue: "5"}
      authenticationRef: {name: a}
`
	require.Empty(t, validateCRD(t, crds, []byte(good)))
	for bad, want := range map[string]string{
		"spec:\n  scaleTargetRef: {name: w}\n  minReplicas: 1\n  triggers: []\n":                `unknown field "minReplicas"`,
		"spec:\n  scaleTargetRef: {name: w}\n  minReplicaCount: one\n  triggers: []\n":          "want an integer",
		"spec:\n  scaleTargetRef: {}\n  triggers: []\n":                                         `missing required field "name"`,
		"spec:\n  scaleTargetRef: {name: w}\n  triggers: [{type: x, metadata: {a: 1}}]\n":       "want a string",
		"metadata: {name: w, labelz: {}}\nspec:\n  scaleTargetRef: {name: w}\n  triggers: []\n": "metadata",
		"spec:\n  scaleTargetRef: {name: w}\n  pollingInterval: \"30\"\n  triggers: []\n":       "want an integer",
	} {
		doc := "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\n" + bad
		if !strings.HasPrefix(bad, "metadata") {
			doc = "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: w}\n" + bad
		}
		errs := validateCRD(t, crds, []byte(doc))
		require.NotEmpty(t, errs, bad)
		require.Contains(t, fmt.Sprint(errs), want, bad)
	}
}
