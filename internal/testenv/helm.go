package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// HelmVersion is the helm the deploy tests render the chart with; `make
// tools` builds it from its Go module.
const HelmVersion = "v3.22.0"

// HelmInstall is the command that builds the pinned helm where HelmPath
// looks for it.
const HelmInstall = "make tools   # or: GOBIN=DIR go install helm.sh/helm/v3/cmd/helm@" + HelmVersion + " && mv DIR/helm ${XDG_CACHE_HOME:-$HOME/.cache}/reverify/bin/helm-" + HelmVersion

// HelmPath finds the helm binary: $REVERIFY_HELM, else
// $XDG_CACHE_HOME/reverify/bin/helm-VERSION (or $HOME/.cache/...).
func HelmPath() (string, error) {
	if p := os.Getenv("REVERIFY_HELM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("REVERIFY_HELM: %w", err)
		}
		return p, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the cache dir: %w", err)
		}
		cache = filepath.Join(home, ".cache")
	}
	p := filepath.Join(cache, "reverify", "bin", "helm-"+HelmVersion)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		return "", fmt.Errorf("helm %s not found in $REVERIFY_HELM or %s", HelmVersion, p)
	}
	return p, nil
}

// Helm returns the helm binary's path. Without it the test fails in CI
// and is skipped elsewhere.
func Helm(t testing.TB) string {
	t.Helper()
	p, err := HelmPath()
	if err != nil {
		unavailable(t, "%v; build it with: %s", err, HelmInstall)
	}
	return p
}
