package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

// unreachableDB is a database URL nothing answers at.
const unreachableDB = "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"

// TestExitCodes: 0 when a command is done, 2 when the command line is
// wrong (cobra's own errors and the commands' flag checks, with a hint to
// --help), 1 when the command fails.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, exitOK, ""},
		{[]string{"runs"}, exitOK, ""},
		{[]string{"runs", "show", "--help"}, exitOK, ""},
		{[]string{"version"}, exitOK, ""},
		{[]string{"bogus"}, exitUsage, `unknown command "bogus" for "reverify"`},
		{[]string{"runs", "shwo"}, exitUsage, `unknown command "shwo" for "reverify runs"; did you mean show?`},
		{[]string{"migrate", "sideways"}, exitUsage, `unknown command "sideways" for "reverify migrate"`},
		{[]string{"runs", "show"}, exitUsage, "accepts 1 arg(s), received 0"},
		{[]string{"runs", "priority", "x"}, exitUsage, "accepts 2 arg(s), received 1"},
		{[]string{"worker", "extra"}, exitUsage, `unknown command "extra"`},
		{[]string{"runs", "list", "--nope"}, exitUsage, "unknown flag: --nope"},
		{[]string{"runs", "list", "--limit", "x"}, exitUsage, `invalid argument "x" for "--limit"`},
		{[]string{"runs", "list", "--limit", "0"}, exitUsage, "invalid --limit 0"},
		{[]string{"runs", "list", "--status", "done"}, exitUsage, `invalid --status "done"`},
		{[]string{"runs", "list", "-o", "xml"}, exitUsage, "want table, json, yaml"},
		{[]string{"runs", "watch", "x", "--interval", "0s"}, exitUsage, "invalid --interval"},
		{[]string{"runs", "retry", "x", "--status", "scored,nope"}, exitUsage, "--status"},
		{[]string{"enqueue"}, exitUsage, "enqueue needs --bucket"},
		{[]string{"enqueue", "--manifest", "m.csv", "--prefix", "p"}, exitUsage, "--prefix lists a bucket"},
		{[]string{"report", "--view", "all", "-o", "csv"}, exitUsage, "CSV holds one view"},
		{[]string{"report", "--view", "nope"}, exitUsage, `invalid --view "nope"`},
		{[]string{"report", "-o", "yml"}, exitUsage, "want table, csv, json, yaml"},
		{[]string{"report", "--view", "run_summary", "--since", "2026-11-01"}, exitUsage, "--since and --until cut --view reviews only"},
		{[]string{"report", "--view", "reviews", "--since", "yesterday"}, exitUsage, `invalid --since "yesterday"`},
		{[]string{"report", "--view", "reviews", "--since", "2026-11-02", "--until", "2026-11-01"}, exitUsage, "is not before --until"},
		{[]string{"migrate", "--database-url", "::not a url"}, exitError, "REVERIFY_DATABASE_URL"},
		{[]string{"runs", "show", "x", "--database-url", unreachableDB}, exitError, "REVERIFY_DATABASE_URL"},
	}
	for _, tt := range tests {
		out, stderr, code := cli(t, ctx, "", tt.args...)
		require.Equal(t, tt.code, code, "%v: %s", tt.args, stderr)
		require.Contains(t, stderr, tt.want, "%v", tt.args)
		switch tt.code {
		case exitUsage:
			cmd := strings.Join(append([]string{"reverify"}, commandWords(tt.args)...), " ")
			require.Contains(t, stderr, "Run '"+cmd+" --help' for usage.", "%v", tt.args)
			require.Empty(t, out, "%v", tt.args)
		case exitOK:
			require.Empty(t, stderr, "%v", tt.args)
		}
	}
}

// commandWords are the words of args that name commands (those before the
// first flag, less a final unknown one).
func commandWords(args []string) []string {
	root := (&app{stdout: io.Discard, stderr: io.Discard, stdin: strings.NewReader("")}).rootCommand()
	c, rest, _ := root.Find(args)
	_ = rest
	return strings.Fields(strings.TrimPrefix(c.CommandPath(), "reverify"))
}

// TestRunsWatchExitStatus: with --exit-status, watching a run that ends
// cancelled exits 1; without it, 0. (The runs come from enqueue with a
// manifest, which needs no S3.)
func TestRunsWatchExitStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := migratedDB(t)
	common := []string{"--database-url", dsn, "--log-format", "text"}
	out, stderr, code := cli(t, ctx, "a.jpg\nb.jpg\n", append([]string{"enqueue", "--bucket", "b", "--manifest", "-"}, common...)...)
	require.Equal(t, 0, code, stderr)
	id := strings.TrimSpace(out)
	_, stderr, code = cli(t, ctx, "", append([]string{"runs", "cancel", id}, common...)...)
	require.Equal(t, 0, code, stderr)

	out, stderr, code = cli(t, ctx, "", append([]string{"runs", "watch", id, "--interval", "50ms"}, common...)...)
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, out, "run "+id+" cancelled")
	_, stderr, code = cli(t, ctx, "", append([]string{"runs", "watch", id, "--interval", "50ms", "--exit-status"}, common...)...)
	require.Equal(t, exitError, code)
	require.Equal(t, "reverify: run "+id+" cancelled\n", stderr)

	// A run that is still going: interrupted, --exit-status says so.
	out, _, code = cli(t, ctx, "c.jpg\n", append([]string{"enqueue", "--bucket", "b", "--manifest", "-"}, common...)...)
	require.Equal(t, 0, code)
	wctx, cancel := context.WithCancel(ctx) // as an interrupt does
	defer time.AfterFunc(300*time.Millisecond, cancel).Stop()
	_, stderr, code = cli(t, wctx, "", append([]string{"runs", "watch", strings.TrimSpace(out), "--interval", "50ms", "--exit-status"}, common...)...)
	require.Equal(t, exitError, code, stderr)
	require.Contains(t, stderr, "before it ended")
}

// helpCommands are the commands whose --help is kept in testdata/help.
var helpCommands = [][]string{{}, {"enqueue"}, {"runs", "list"}, {"runs", "watch"}, {"report"}, {"migrate"}, {"migrate", "up"},
	{"audit"}, {"erase"}, {"prune"}}

// TestHelpGolden keeps the help of a few commands as reviewed; -update
// rewrites testdata/help.
func TestHelpGolden(t *testing.T) {
	unsetEnv(t, "REVERIFY_")
	for _, words := range helpCommands {
		out, stderr, code := cli(t, context.Background(), "", append(words, "--help")...)
		require.Equal(t, 0, code, stderr)
		name := strings.Join(append([]string{"reverify"}, words...), "_") + ".txt"
		path := filepath.Join("testdata", "help", name)
		if *updateDocs {
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
			require.NoError(t, os.WriteFile(path, []byte(out), 0o644))
			continue
		}
		want, err := os.ReadFile(path)
		require.NoError(t, err, "regenerate with: go test ./cmd/reverify -run TestHelpGolden -update")
		require.Equal(t, string(want), out, "%s is out of date: go test ./cmd/reverify -run TestHelpGolden -update", path)
	}
}

// TestCommandsDocumentThemselves: every command has examples and checks
// its arguments, and no flag's help is mangled by a back-quote (pflag
// takes a back-quoted word for the flag's value name).
func TestCommandsDocumentThemselves(t *testing.T) {
	t.Parallel()
	root := (&app{stdout: io.Discard, stderr: io.Discard, stdin: strings.NewReader("")}).rootCommand()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "help" || c.Name() == "completion" || c.Hidden {
			return
		}
		require.NotEmpty(t, c.Example, "%s has no examples", c.CommandPath())
		require.NotNil(t, c.Args, "%s does not check its arguments", c.CommandPath())
		check := func(f *pflag.Flag) {
			require.NotContains(t, f.Usage, "`", "%s --%s", c.CommandPath(), f.Name)
			name, _ := pflag.UnquoteUsage(f)
			require.NotContains(t, name, " ", "%s --%s", c.CommandPath(), f.Name)
		}
		c.LocalFlags().VisitAll(check)
		c.InheritedFlags().VisitAll(check)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// TestSecretsStayOutOfHelp: settings read from the environment are the
// flags' defaults, but secrets among them are not printed by --help.
func TestSecretsStayOutOfHelp(t *testing.T) {
	t.Setenv("REVERIFY_API_KEY", "sk-live-0b5e")
	t.Setenv("REVERIFY_DASHBOARD_TOKEN", "tok-9c1d-0000-0000")
	t.Setenv("REVERIFY_DASHBOARD_PASSWORD_HASH", "$2a$10$hashhashhash")
	t.Setenv("REVERIFY_NOTIFY_SECRET", "whsec-77aa")
	t.Setenv("REVERIFY_NOTIFY", "https://hooks.slack.com/services/T0/B0/s3cr3t,https://ops.example.com/h?token=t0k")
	t.Setenv("REVERIFY_DATABASE_URL", "postgres://app:db-pa55@db:5432/reverify")
	t.Setenv("REVERIFY_REDIS_URL", "redis://:redis-pa55@cache:6379/0")
	var all string
	for _, args := range [][]string{{"worker", "--help"}, {"dashboard", "--help"}, {"--help"}} {
		out, stderr, code := cli(t, context.Background(), "", args...)
		require.Equal(t, 0, code, stderr)
		all += out
	}
	for _, secret := range []string{"sk-live-0b5e", "tok-9c1d", "hashhash", "whsec-77aa", "s3cr3t", "t0k", "db-pa55", "redis-pa55"} {
		require.NotContains(t, all, secret)
	}
	require.Contains(t, all, `(default "postgres://app:xxxxx@db:5432/reverify")`)
	require.Contains(t, all, `(default [https://hooks.slack.com/…,https://ops.example.com/…])`)
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, stderr, code := cli(t, context.Background(), "", "version", "-o", "json")
	require.Equal(t, 0, code, stderr)
	var v versionInfo
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&v))
	require.NotEmpty(t, v.Version)
	require.True(t, strings.HasPrefix(v.Go, "go"), v.Go)

	v = versionOf(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "13a7557c0ffee"}, {Key: "vcs.time", Value: "2026-11-25T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}})
	require.Equal(t, versionInfo{Version: "v1.4.0", Revision: "13a7557c0ffee", Time: "2026-11-25T10:00:00Z", Modified: true,
		Go: "go1.26.8", Platform: v.Platform}, v)

	out, _, code = cli(t, context.Background(), "", "version", "-o", "yaml")
	require.Equal(t, 0, code)
	var y map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(out), &y))
	require.Contains(t, y, "version")
	out, _, _ = cli(t, context.Background(), "", "version")
	require.Regexp(t, `(?m)^version\s+\S+`, out)
}

// TestCompletionOfRunIDs: shell completion offers the ledger's newest run
// IDs, with their status and name, and quietly nothing when the ledger
// does not answer.
func TestCompletionOfRunIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := migratedDB(t)
	out, stderr, code := cli(t, ctx, "a.jpg\n", "enqueue", "--bucket", "b", "--manifest", "-", "--name", "completion test", "--database-url", dsn)
	require.Equal(t, 0, code, stderr)
	id := strings.TrimSpace(out)

	for _, args := range [][]string{{"runs", "show", ""}, {"runs", "cancel", id[:4]}, {"report", "--run", ""}, {"runs", "priority", ""}} {
		out, stderr, code = cli(t, ctx, "", append([]string{cobra.ShellCompRequestCmd, "--database-url", dsn}, args...)...)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, out, id+"\trunning completion test", "%v", args)
	}
	out, _, _ = cli(t, ctx, "", cobra.ShellCompRequestCmd, "--database-url", dsn, "runs", "priority", id, "")
	require.Equal(t, []string{"high", "normal", "low", ":4"}, strings.Fields(out))
	out, _, _ = cli(t, ctx, "", cobra.ShellCompRequestCmd, "runs", "list", "-o", "")
	require.Equal(t, []string{"table", "json", "yaml", ":4"}, strings.Fields(out))

	start := time.Now()
	out, stderr, code = cli(t, ctx, "", cobra.ShellCompRequestCmd, "--database-url", unreachableDB, "runs", "show", "")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, ":4\n", firstLine(out)+"\n", "no IDs, no file names")
	require.Less(t, time.Since(start), 3*completionTimeout)
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// migratedDB returns a migrated database of the test's own.
func migratedDB(t *testing.T) string {
	t.Helper()
	dsn := testenv.Postgres(t)
	_, err := postgres.Migrate(context.Background(), dsn)
	require.NoError(t, err)
	return dsn
}
