package notify_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/notify"
)

func TestParseHookAndRedact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec, url string
		format    reverify.WebhookFormat
		redacted  string
	}{
		{"https://ops.example.com/hooks/reverify?token=s3cret", "https://ops.example.com/hooks/reverify?token=s3cret", reverify.WebhookJSON, "https://ops.example.com/…"},
		{"json:http://10.0.0.1:8080/", "http://10.0.0.1:8080/", reverify.WebhookJSON, "json:http://10.0.0.1:8080"},
		{"slack:https://chat.example.com/T0/B0/xyz", "https://chat.example.com/T0/B0/xyz", reverify.WebhookSlack, "slack:https://chat.example.com/…"},
		{"https://hooks.slack.com/services/T0/B0/xyz", "https://hooks.slack.com/services/T0/B0/xyz", reverify.WebhookSlack, "https://hooks.slack.com/…"},
		{"https://user:pw@example.com/x", "https://user:pw@example.com/x", reverify.WebhookJSON, "https://example.com/…"},
	}
	for _, tt := range tests {
		h, err := notify.ParseHook(tt.spec)
		require.NoError(t, err, tt.spec)
		require.Equal(t, tt.url, h.URL)
		require.Equal(t, tt.format, h.Format, tt.spec)
		require.Equal(t, tt.redacted, notify.Redact(tt.spec))
	}
	for _, bad := range []string{"", "ftp://x/y", "slack:", "hooks.slack.com/services/x", "json:/relative/secret-path"} {
		_, err := notify.ParseHook(bad)
		require.Error(t, err, bad)
		if bad != "" {
			require.NotContains(t, err.Error(), "secret-path", "errors never repeat the URL")
		}
	}
}

func TestSignatureVerifies(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 0)
	body := []byte(`{"id":1,"type":"run.completed"}`)
	sig := notify.Sign("k", at, body)
	require.Regexp(t, `^t=1700000000,v1=[0-9a-f]{64}$`, sig)
	require.NoError(t, notify.Verify("k", sig, body, time.Minute, at.Add(30*time.Second)))
	require.NoError(t, notify.Verify("k", "t=1700000000,v1=00,"+sig[len("t=1700000000,"):], body, time.Minute, at), "any v1 may match")
	require.ErrorIs(t, notify.Verify("k", sig, body, time.Minute, at.Add(2*time.Minute)), notify.ErrBadSignature, "too old")
	require.ErrorIs(t, notify.Verify("other", sig, body, time.Minute, at), notify.ErrBadSignature)
	require.ErrorIs(t, notify.Verify("k", sig, append(body, '\n'), time.Minute, at), notify.ErrBadSignature)
	require.ErrorIs(t, notify.Verify("k", "v1=abc", body, time.Minute, at), notify.ErrBadSignature)
}
