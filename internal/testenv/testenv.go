// Package testenv gives tests real services: a fresh PostgreSQL database per
// test, the shared Redis with a unique queue name per test, and a versitygw
// S3 server process per test.
//
// Discovery, the same for every service:
//
//   - PostgreSQL: $REVERIFY_TEST_DATABASE_URL, an admin URL, default
//     postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable.
//   - Redis: $REVERIFY_TEST_REDIS_ADDR, default 127.0.0.1:6379.
//
// If the configured service answers, it is used. If not: with CI=true the
// test fails (a missing service never skips in CI); otherwise, when a Docker
// engine is available, one container per test binary is started with
// testcontainers-go and used; otherwise the test is skipped with the reason.
//
// S3 tests run the versitygw binary (see VersitygwPath), and Redis Cluster
// and Sentinel tests their own redis-server processes (RedisCluster,
// RedisSentinel; redis-server and redis-cli from $PATH); a missing binary
// fails the test in CI and skips it elsewhere.
//
// The package also holds the one process launcher (Start, Process) and the
// one free-port helper (FreePort) of the project's harnesses, the one
// place versitygw is started (StartVersitygw, over HTTPS with
// Versitygw.TLS) and the throwaway certificates for HTTPS (WriteTLS). Their core needs no
// testing.TB, so programs (bench, deploy/scaleout) use them too; StartT and
// FreePortT are the test wrappers.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// inCI reports whether the tests run in CI, where a missing service must
// fail the test instead of skipping it.
func inCI() bool { return os.Getenv("CI") == "true" }

// randomHex returns n random bytes, hex encoded.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testenv: random: %v", err)
	}
	return hex.EncodeToString(b)
}

// Queue returns an asynq queue name unique to this test, e.g.
// "t-testenqueue-run-3f9a1c2b", so tests can share one Redis.
func Queue(t testing.TB) string {
	t.Helper()
	return "t-" + sanitise(t.Name(), 40) + "-" + randomHex(t, 4)
}

// sanitise lowercases s and replaces every run of characters other than
// [a-z0-9] with one "-", keeping at most max bytes.
func sanitise(s string, max int) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := b.String()
	if len(out) > max {
		out = out[:max]
	}
	return strings.Trim(out, "-")
}

// unavailable handles a service that does not answer and has no fallback:
// it fails the test in CI and skips it elsewhere.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf("testenv (CI=true, missing services fail): "+format, args...)
	}
	t.Skipf("testenv: "+format, args...)
}
