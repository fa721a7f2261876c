package testenv_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
)

// TestHelperMissingPostgres is run in a subprocess by TestMissingService with
// an unreachable database URL.
func TestHelperMissingPostgres(t *testing.T) {
	if os.Getenv("REVERIFY_TESTENV_HELPER") != "1" {
		t.Skip("helper for TestMissingService")
	}
	testenv.Postgres(t)
}

// TestMissingService checks the discovery rule: an unreachable service fails
// the test when CI=true and skips it otherwise (here Docker is made
// unreachable too).
func TestMissingService(t *testing.T) {
	t.Parallel()
	run := func(ci string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMissingPostgres$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(),
			"REVERIFY_TESTENV_HELPER=1",
			"REVERIFY_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2",
			"DOCKER_HOST=unix:///nonexistent/docker.sock",
			"TESTCONTAINERS_RYUK_DISABLED=true",
			"CI="+ci,
		)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run("true")
	require.Error(t, err, out)
	require.Contains(t, out, "--- FAIL: TestHelperMissingPostgres")
	require.Contains(t, out, "CI=true")

	out, err = run("")
	require.NoError(t, err, out)
	require.Contains(t, out, "--- SKIP: TestHelperMissingPostgres")
	require.True(t, strings.Contains(out, "does not answer"), out)
}

// TestHelperMissingRedisBinary is run in a subprocess by
// TestMissingRedisBinary with a $PATH that holds no Redis programs.
func TestHelperMissingRedisBinary(t *testing.T) {
	if os.Getenv("REVERIFY_TESTENV_HELPER") != "1" {
		t.Skip("helper for TestMissingRedisBinary")
	}
	testenv.RedisCluster(t)
}

// TestMissingRedisBinary: without redis-server the Redis Cluster and
// Sentinel tests fail in CI and skip elsewhere, saying what to install.
func TestMissingRedisBinary(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	run := func(ci string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMissingRedisBinary$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "REVERIFY_TESTENV_HELPER=1", "PATH="+empty, "CI="+ci)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run("true")
	require.Error(t, err, out)
	require.Contains(t, out, "--- FAIL: TestHelperMissingRedisBinary")
	require.Contains(t, out, "redis-server not found")

	out, err = run("")
	require.NoError(t, err, out)
	require.Contains(t, out, "--- SKIP: TestHelperMissingRedisBinary")
	require.Contains(t, out, ".ci/install")
}
