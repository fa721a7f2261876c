package metrics_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
)

func get(_ context.Context, t *testing.T, url string) string {
	t.Helper()
	code, body := testenv.HTTPGet(t, url)
	require.Equal(t, http.StatusOK, code, body)
	return body
}
