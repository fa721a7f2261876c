package dashboard_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"reverify/dashboard"
	"reverify/internal/testenv"
)

// TestGetPagesParseNoMultipartBody: a GET carrying a 40 MB multipart body
// leaves no temporary file behind (r.FormValue parsed it into one, which
// net/http never removed because the auth middleware passes a copy of the
// request), and asynqmon's share of requests is cleaned up alike. It sets
// TMPDIR, so it does not run in parallel.
func TestGetPagesParseNoMultipartBody(t *testing.T) {
	b := setup(t, dashboard.Config{})
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, err := mw.CreateFormFile("upload", "big.bin")
	require.NoError(t, err)
	_, err = part.Write(bytes.Repeat([]byte("x"), 40<<20))
	require.NoError(t, err)
	require.NoError(t, mw.WriteField("o", plainRef(b.bucket, "users/a.jpg")))
	require.NoError(t, mw.Close())

	for _, path := range []string{
		"/runs/" + b.runID + "/object?o=" + plainRef(b.bucket, "users/a.jpg"),
		"/runs/" + b.runID + "/image?o=" + plainRef(b.bucket, "users/a.jpg"),
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.srv.URL+path, bytes.NewReader(body.Bytes()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", b.basic())
		res, err := b.srv.Client().Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, path)
	}

	// A handler behind the middleware that does parse one (asynqmon could)
	// has its temporary files removed all the same.
	store, _ := testenv.LedgerWithPool(t)
	monitor := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseMultipartForm(1<<10))
		require.NotEmpty(t, r.MultipartForm.File["upload"])
	})
	d, err := dashboard.New(store, slowImages{}, monitor, nil, dashboard.Config{Auth: dashboard.Auth{Token: token}})
	require.NoError(t, err)
	srv := httptest.NewServer(d)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+dashboard.MonitorPath+"/api/upload", bytes.NewReader(body.Bytes()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	b.srv.Close() // every handler has returned
	srv.Close()
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	require.Empty(t, left, "temporary files left behind")
}

// TestBasicAuthTakesAsLongForAWrongUser: a wrong user name is answered
// no faster than a wrong password, so timing does not tell which user
// names exist (it took 1 ms against 70–100 ms).
func TestBasicAuthTakesAsLongForAWrongUser(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	require.NoError(t, err)
	b := setup(t, dashboard.Config{Auth: dashboard.Auth{User: user, PasswordHash: string(hash)}})
	took := func(u, p string) time.Duration {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.srv.URL+"/", nil)
		require.NoError(t, err)
		req.SetBasicAuth(u, p)
		start := time.Now()
		res, err := b.srv.Client().Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
		return time.Since(start)
	}
	var wrongUser, wrongPass []time.Duration
	for range 3 { // 6 failures: under the rate limit
		wrongUser = append(wrongUser, took("mallory", password))
		wrongPass = append(wrongPass, took(user, "not the password"))
	}
	slices.Sort(wrongUser)
	slices.Sort(wrongPass)
	require.Greater(t, wrongUser[1], wrongPass[1]*2/5, "a wrong user (%v) is answered much faster than a wrong password (%v)", wrongUser, wrongPass)
}

// TestFailedLoginsAreRateLimited: after 10 failed logins from one address
// every request from it waits (429 with Retry-After), which also bounds
// the bcrypt work a guesser can cause; a request without credentials (a
// browser's first) is no failure.
func TestFailedLoginsAreRateLimited(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Config{})
	wrong := "Basic " + "cmV2aWV3ZXItYW5uOndyb25n" // reviewer-ann:wrong
	for range 5 {
		res, _ := b.do(t, call{method: "GET", path: "/"})
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	}
	for i := range 10 {
		auth := wrong
		if i%2 == 1 {
			auth = "Bearer not-the-token-at-all"
		}
		res, _ := b.do(t, call{method: "GET", path: "/", auth: auth})
		require.Equal(t, http.StatusUnauthorized, res.StatusCode, "attempt %d", i+1)
	}
	res, body := b.do(t, call{method: "GET", path: "/", auth: wrong})
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	require.True(t, strings.Contains(body, "too many failed logins"), body)
	res, _ = b.do(t, call{method: "GET", path: "/", auth: b.basic()})
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode, "the address waits, whatever it sends")
	res, _ = b.do(t, call{method: "GET", path: "/healthz"})
	require.Equal(t, http.StatusOK, res.StatusCode, "probes are not limited")
}
