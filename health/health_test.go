package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify/health"
)

func TestProbes(t *testing.T) {
	t.Parallel()
	secret := errors.New("dial tcp db.internal:5432 user=admin: refused")
	tests := []struct {
		name   string
		checks []health.Check
		code   int
		want   map[string]string
	}{
		{"all pass", []health.Check{{"redis", ok}, {"postgres", ok}}, 200, map[string]string{"redis": "ok", "postgres": "ok"}},
		{"one fails", []health.Check{{"redis", ok}, {"postgres", fail(secret)}}, 503, map[string]string{"redis": "ok", "postgres": "fail"}},
		{"slow check times out", []health.Check{{"redis", hang}}, 503, map[string]string{"redis": "fail"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mux := http.NewServeMux()
			health.New(nil, 50*time.Millisecond, tt.checks...).Register(mux)

			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
			require.Equal(t, 200, rec.Code, "healthz checks nothing")

			rec = httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			require.Equal(t, tt.code, rec.Code)
			require.NotContains(t, rec.Body.String(), "db.internal", "errors are logged, not served")
			var body struct{ Checks map[string]string }
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			require.Equal(t, tt.want, body.Checks)
		})
	}
}

func ok(context.Context) error { return nil }

func fail(err error) func(context.Context) error {
	return func(context.Context) error { return err }
}

func hang(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}
