package dashboard_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify/dashboard"
)

func TestCheckExposure(t *testing.T) {
	t.Parallel()
	creds := dashboard.Auth{Token: "0123456789abcdef0123"}
	tests := []struct {
		addr string
		auth dashboard.Auth
		ok   bool
	}{
		{"127.0.0.1:8080", dashboard.Auth{}, true},
		{"[::1]:8080", dashboard.Auth{}, true},
		{"localhost:8080", dashboard.Auth{}, true},
		{":8080", dashboard.Auth{}, false},
		{"0.0.0.0:8080", dashboard.Auth{}, false},
		{"10.1.2.3:8080", dashboard.Auth{}, false},
		{"dashboard.internal:8080", dashboard.Auth{}, false},
		{":8080", creds, true},
	}
	for _, tt := range tests {
		err := dashboard.CheckExposure(tt.addr, tt.auth)
		require.Equal(t, tt.ok, err == nil, "%s: %v", tt.addr, err)
	}
}

func TestAuthValidate(t *testing.T) {
	t.Parallel()
	require.Error(t, dashboard.Auth{User: "ops"}.Validate(), "user without hash")
	require.Error(t, dashboard.Auth{User: "ops", PasswordHash: "plaintext"}.Validate(), "not bcrypt")
	require.Error(t, dashboard.Auth{Token: "short"}.Validate())
	require.Error(t, dashboard.Auth{Token: "CHANGE-ME-TO-A-LONG-RANDOM-TOKEN"}.Validate(), "the example Secret's token")
	require.Error(t, dashboard.Auth{Token: "replace_me_with_a_random_token"}.Validate())
	require.Error(t, dashboard.Auth{User: "ops", PasswordHash: "$2a$10$CHANGE.ME.CHANGE.ME.CHANGE.ME.CHANGE.ME.CHANGE.ME.CHA"}.Validate())
	require.NoError(t, dashboard.Auth{Token: "9f86d081884c7d659a2feaa0c55ad015"}.Validate())
	_, err := dashboard.HashPassword("short")
	require.Error(t, err)
	h, err := dashboard.HashPassword("a long enough password")
	require.NoError(t, err)
	require.NoError(t, dashboard.Auth{User: "ops", PasswordHash: h}.Validate())
}

func TestMaskPayloadHidesKeys(t *testing.T) {
	t.Parallel()
	out := dashboard.MaskPayload("liveness:verify", []byte(`{"run_id":"r1","bucket":"kyc","key":"users/jane-doe/selfie.jpg"}`))
	require.NotContains(t, out, "jane")
	var m map[string]string
	require.NoError(t, json.Unmarshal([]byte(out), &m))
	require.Equal(t, "r1", m["run_id"])
	require.Equal(t, "kyc", m["bucket"])
	require.Equal(t, "sha256:"+dashboard.KeyHash("kyc", "users/jane-doe/selfie.jpg"), m["key"])

	require.Equal(t, "(11 bytes, hidden)", dashboard.MaskPayload("x", []byte("jane-doe.jp")))
	require.NotContains(t, dashboard.MaskPayload("x", []byte(`{"prefix":"users/jane"}`)), "jane")
	require.NotContains(t, dashboard.MaskResult("x", []byte("jane")), "jane")
}
