package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
)

// TestHelpNeverShowsSecrets sets every secret a deployment passes by
// environment and asks every command for --help: flag defaults come from
// the environment, but a secret shows only as set, and a URL's password
// as xxxxx. It sets environment variables, so it does not run in parallel.
func TestHelpNeverShowsSecrets(t *testing.T) {
	unsetEnv(t, "REVERIFY_")
	secrets := map[string]string{
		"REVERIFY_API_KEY":                 "sk-live-APIKEY0001",
		"REVERIFY_DASHBOARD_TOKEN":         "tok-DASHTOKEN0002-0123456789",
		"REVERIFY_DASHBOARD_PASSWORD_HASH": "$2a$10$PWHASH0003abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ",
		"REVERIFY_DATABASE_URL":            "postgres://reverify:DBPASS0004@db:5432/reverify?sslmode=require&sslpassword=SSLPASS0005",
		"REVERIFY_REDIS_URL":               "redis://:REDISPASS0006@redis:6379/0",
		"REVERIFY_PROMETHEUS_URL":          "http://scraper:PROMPASS0007@prometheus:9090",
		"REVERIFY_API_URL":                 "https://user:APIURLPASS0008@api.example.com/modules?token=APIURLTOKEN0009",
		"REVERIFY_S3_ENDPOINT":             "http://minio:S3PASS0010@minio:9000",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	cmds := visibleCommands(a.rootCommand())
	require.Greater(t, len(cmds), 10)
	var seenHidden bool
	for _, c := range cmds {
		args := append(strings.Fields(strings.TrimPrefix(c.CommandPath(), "reverify")), "--help")
		out, stderr, code := cli(t, context.Background(), "", args...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		for env, secret := range secrets {
			for _, part := range []string{secret, "0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010"} {
				if strings.Contains(secret, part) {
					require.NotContains(t, out+stderr, part, "%v shows %s", args, env)
				}
			}
		}
		seenHidden = seenHidden || strings.Contains(out, "(set in $REVERIFY_API_KEY, hidden)")
	}
	require.True(t, seenHidden, "--help says the API key is set")

	// A key=value DSN's password is hidden too.
	t.Setenv("REVERIFY_DATABASE_URL", "host=db user=u password='DB PASS 0011' dbname=r")
	out, _, _ := cli(t, context.Background(), "", "migrate", "--help")
	require.NotContains(t, out, "0011")
	require.Contains(t, out, "password=xxxxx")
}

// TestConfigErrorsNeverShowSecrets: a URL setting that does not parse is
// named in the error, its password is not.
func TestConfigErrorsNeverShowSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tt := range []struct {
		args   []string
		want   string
		secret string
	}{
		{[]string{"worker", "--api-key", "k", "--redis-url", "redis://:REDISPASS@redis:notaport/0"}, "REVERIFY_REDIS_URL", "REDISPASS"},
		{[]string{"worker", "--api-key", "k", "--redis-url", "redis://:RE XPASSX PASS@redis:6379/0"}, "REVERIFY_REDIS_URL", "XPASSX"},
		{[]string{"worker", "--api-key", "k", "--redis-url", "ftp://:REDISPASS@redis:6379/0"}, "REVERIFY_REDIS_URL", "REDISPASS"},
		{[]string{"worker", "--api-key", "k", "--redis-url", "redis://:REDISPASS@redis:6379/x"}, "REVERIFY_REDIS_URL", "REDISPASS"},
		{[]string{"worker", "--api-key", "k", "--redis-url", "redis-cluster://u:RED@ISPASS@node-a,node-b:6379"}, "REVERIFY_REDIS_URL", "ISPASS"},
		{[]string{"migrate", "--database-url", "postgres://u:DBPASS@db:notaport/r"}, "REVERIFY_DATABASE_URL", "DBPASS"},
		{[]string{"migrate", "--database-url", "host=db password=DBPASS port=notaport"}, "REVERIFY_DATABASE_URL", "DBPASS"},
		{[]string{"enqueue", "--bucket", "b", "--s3-endpoint", "ftp://u:S3PASS@minio:9000"}, "REVERIFY_S3_ENDPOINT", "S3PASS"},
		{[]string{"worker", "--api-key", "k", "--api-url", "ftp://u:APIPASS@api"}, "REVERIFY_API_URL", "APIPASS"},
	} {
		_, stderr, code := cli(t, ctx, "", tt.args...)
		require.Equal(t, 1, code, "%v", tt.args)
		require.Contains(t, stderr, tt.want, "%v", tt.args)
		require.NotContains(t, stderr, tt.secret, "%v", tt.args)
	}
}

// TestFakeAPITakesTheKeyFromAFile: the fake API accepts the key the
// workers are given (REVERIFY_API_KEY or REVERIFY_API_KEY_FILE), so
// launchers need not put it on a command line.
func TestFakeAPITakesTheKeyFromAFile(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "api-key")
	require.NoError(t, os.WriteFile(keyFile, []byte("file-key-0123\n"), 0o600))
	port := testenv.FreePortT(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		_, _, code := cli(t, ctx, "", "fake-api", "--addr", port.Addr(), "--api-key-file", keyFile)
		done <- code
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	client := &http.Client{Timeout: 5 * time.Second}
	status := func(key string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+port.Addr()+"/liveness", strings.NewReader(`{"faceImage":"AAAA"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", key)
		res, err := client.Do(req)
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	require.Eventually(t, func() bool { return status("probe") != 0 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, http.StatusUnauthorized, status("fake-key"))
	require.NotEqual(t, http.StatusUnauthorized, status("file-key-0123"))
}

// TestPlaceholderSecretsAreRefused: the example Secret's placeholders
// stop a command from starting.
func TestPlaceholderSecretsAreRefused(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a worker that starts waits for its database
	defer cancel()
	for _, args := range [][]string{
		{"worker", "--api-key", "CHANGE-ME"},
		{"dashboard", "--token", "CHANGE-ME-TO-A-LONG-RANDOM-TOKEN"},
		{"dashboard", "--user", "ops", "--password-hash", "$2a$10$CHANGE.ME.CHANGE.ME.CHANGE.ME.CHANGE.ME.CHANGE.ME.CHA"},
		{"migrate", "--database-url", "postgres://reverify:CHANGE-ME@127.0.0.1:1/reverify?sslmode=disable"},
	} {
		_, stderr, code := cli(t, ctx, "", args...)
		require.Equal(t, 1, code, "%v", args)
		require.Contains(t, stderr, "placeholder", "%v", args)
	}
}
