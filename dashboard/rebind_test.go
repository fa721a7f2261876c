package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify/dashboard"
	"reverify/internal/testenv"
)

// TestNoCredentialsAnswersOnlyToLoopbackHosts: without credentials the
// dashboard trusts its loopback port, so a page on another site that
// rebinds its own name to 127.0.0.1 must not get the run pages, an image
// or asynqmon (where it paused a queue): a Host that is not localhost or a
// loopback address is refused. With credentials, auth decides as before.
func TestNoCredentialsAnswersOnlyToLoopbackHosts(t *testing.T) {
	t.Parallel()
	store, _ := testenv.LedgerWithPool(t)
	var monitorCalls atomic.Int32
	monitor := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		monitorCalls.Add(1)
		_, _ = io.WriteString(w, "paused")
	})
	d, err := dashboard.New(store, slowImages{chunks: 1}, monitor, nil, dashboard.Config{})
	require.NoError(t, err)
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]

	send := func(method, path, host string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
		require.NoError(t, err)
		req.Host = host
		if method == http.MethodPost {
			req.Header.Set("Origin", "http://"+host) // the rebinding page's origin matches its Host
		}
		res, err := srv.Client().Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	image := "/runs/" + streamRun + "/image?o=" + plainRef("kyc", "users/a.jpg")
	for _, host := range []string{"rebind.attacker.example" + port, "rebind.attacker.example", "10.0.0.7" + port, "localhost.attacker.example" + port} {
		for _, c := range []struct{ method, path string }{
			{"GET", "/"}, {"GET", "/runs/" + streamRun}, {"GET", image},
			{"POST", dashboard.MonitorPath + "/api/queues/liveness:pause"},
		} {
			require.Equal(t, http.StatusMisdirectedRequest, send(c.method, c.path, host), "%s %s Host %s", c.method, c.path, host)
		}
	}
	require.Zero(t, monitorCalls.Load(), "asynqmon was reached through a foreign Host")

	for _, host := range []string{"localhost" + port, "LOCALHOST" + port, "127.0.0.1" + port, "127.0.0.2" + port, "[::1]" + port, "localhost"} {
		require.Equal(t, http.StatusOK, send("GET", "/", host), host)
	}
	require.Equal(t, http.StatusOK, send("POST", dashboard.MonitorPath+"/api/queues/liveness:pause", "localhost"+port))
	require.EqualValues(t, 1, monitorCalls.Load())

	// With credentials, any Host may ask; auth answers.
	b := setup(t, dashboard.Config{})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.srv.URL+"/", nil)
	require.NoError(t, err)
	req.Host = "dashboard.example.com"
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
}
