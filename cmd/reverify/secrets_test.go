package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
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
