package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDashboardIdentitySettingsAreChecked: a users file, the trusted
// proxies and the SSO role map that do not hold up stop the dashboard
// before it listens, naming the setting; hash-token prints what a users
// file holds for a token.
func TestDashboardIdentitySettingsAreChecked(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(src), 0o600))
		return p
	}
	sum := sha256.Sum256([]byte("a-token-of-enough-length"))
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--users-file", filepath.Join(dir, "missing.yaml")}, "REVERIFY_DASHBOARD_USERS_FILE"},
		{[]string{"--users-file", write("typo.yaml", "users:\n  - {name: ann, role: viewer, passwd: x}\n")}, `unknown field "passwd"`},
		{[]string{"--users-file", write("role.yaml", "users:\n  - {name: ann, role: admin, token_sha256: "+hex.EncodeToString(sum[:])+"}\n")},
			"want one of viewer, reviewer, operator"},
		{[]string{"--trusted-proxies", "10.0.0.0/40"}, "REVERIFY_DASHBOARD_TRUSTED_PROXIES"},
		{[]string{"--trusted-proxies", "10.0.0.0/8", "--sso-group-roles", "ops=root"}, "REVERIFY_DASHBOARD_SSO_GROUP_ROLES"},
		{[]string{"--trusted-proxies", "10.0.0.0/8", "--sso-header", ""}, "no SSO identity header"},
		{[]string{"--trusted-proxies", "10.0.0.0/8", "--sso-default-role", "boss"}, "SSO default role"},
	}
	for _, tt := range tests {
		_, stderr, code := cli(t, ctx, "", append([]string{"dashboard", "--addr", "127.0.0.1:0"}, tt.args...)...)
		require.Equal(t, 1, code, "%v: %s", tt.args, stderr)
		require.Contains(t, stderr, tt.want, "%v", tt.args)
	}

	out, _, code := cli(t, ctx, "a-token-of-enough-length\n", "dashboard", "hash-token")
	require.Zero(t, code)
	require.Equal(t, hex.EncodeToString(sum[:]), strings.TrimSpace(out))
	_, stderr, code := cli(t, ctx, "short\n", "dashboard", "hash-token")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "shorter than 16")
}
