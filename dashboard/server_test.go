package dashboard_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify/dashboard"
)

type call struct {
	method, path, auth, origin string
	form                       url.Values
	header                     http.Header
}

func (b *bundle) do(t *testing.T, c call) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if c.form != nil {
		body = strings.NewReader(c.form.Encode())
	}
	req, err := http.NewRequestWithContext(testContext(t, 10e9), c.method, b.srv.URL+c.path, body)
	require.NoError(t, err)
	if c.form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	if c.origin != "" {
		req.Header.Set("Origin", c.origin)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b2, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(b2)
}

func TestUnauthenticatedRequestsAreRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Config{})
	wrong := "Basic " + "cmV2aWV3ZXItYW5uOndyb25n" // reviewer-ann:wrong
	for _, c := range []call{
		{method: "GET", path: "/"},
		{method: "GET", path: "/runs/" + b.runID},
		{method: "GET", path: "/runs/" + b.runID + "/image?o=" + plainRef("kyc", "users/a.jpg")},
		{method: "GET", path: "/monitoring/"},
		{method: "POST", path: "/runs/" + b.runID + "/reviews", form: url.Values{"o": {plainRef("kyc", "users/a.jpg")}, "decision": {"confirmed_live"}}},
		{method: "GET", path: "/", auth: wrong},
		{method: "GET", path: "/", auth: "Bearer not-the-token-at-all"},
	} {
		res, body := b.do(t, c)
		require.Equal(t, http.StatusUnauthorized, res.StatusCode, "%s %s", c.method, c.path)
		require.NotContains(t, body, "nightly", "no data before authentication")
	}
	var n int
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM reviews`).Scan(&n))
	require.Zero(t, n)

	res, _ := b.do(t, call{method: "GET", path: "/healthz"})
	require.Equal(t, http.StatusOK, res.StatusCode, "probes need no credentials")
	res, body := b.do(t, call{method: "GET", path: "/", auth: "Bearer " + token})
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, body, "nightly 2026-11-25")
	res, _ = b.do(t, call{method: "GET", path: "/", auth: b.basic()})
	require.Equal(t, http.StatusOK, res.StatusCode)
}

func TestReviewsAndImages(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Config{MaskKeys: true})
	run := "/runs/" + b.runID

	res, body := b.do(t, call{method: "GET", path: run, auth: b.basic()})
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.NotContains(t, body, "jane", "keys are masked, in text and in links")
	require.Contains(t, body, dashboard.KeyHash(b.bucket, b.low))
	require.Equal(t, "no-referrer", res.Header.Get("Referrer-Policy"))
	// The low score is listed (after the refusal); its link carries a
	// sealed reference.
	m := regexp.MustCompile(`class="key review-link" href="/runs/[^/]+/object\?o=([^"]+)">sha256:` +
		dashboard.KeyHash(b.bucket, b.low) + `<`).FindStringSubmatch(body)
	require.NotNil(t, m)
	ref := m[1]
	require.Equal(t, http.StatusBadRequest, must(b.do(t, call{method: "GET", path: run + "/object?o=" + plainRef(b.bucket, b.low), auth: b.basic()})).StatusCode,
		"unsealed references are refused when keys are masked")

	review := url.Values{"o": {ref}, "decision": {"confirmed_live"}, "note": {"ok"}}
	res, _ = b.do(t, call{method: "POST", path: run + "/reviews", auth: b.basic(), form: review, origin: "https://evil.example"})
	require.Equal(t, http.StatusForbidden, res.StatusCode, "cross-origin posts are refused")

	bad := url.Values{"o": {ref}, "decision": {"delete_everything"}}
	res, _ = b.do(t, call{method: "POST", path: run + "/reviews", auth: b.basic(), form: bad})
	require.Equal(t, http.StatusBadRequest, res.StatusCode)

	res, _ = b.do(t, call{method: "POST", path: run + "/reviews", auth: "Bearer " + token, form: review})
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	require.NotContains(t, res.Header.Get("Location"), "jane")
	var who string
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT reviewer FROM reviews`).Scan(&who))
	require.Equal(t, "token", who)

	res, body = b.do(t, call{method: "GET", path: run + "/image?o=" + ref, auth: b.basic()})
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "image/jpeg", res.Header.Get("Content-Type"))
	require.Equal(t, "no-store", res.Header.Get("Cache-Control"))
	require.True(t, strings.HasPrefix(body, "\xff\xd8"), "JPEG bytes")

	// The decision and the image view are in the audit log, with the
	// authenticated identity and the client's address, by key hash.
	rows, err := b.pool.Query(t.Context(), `SELECT actor, source, action, bucket, key_hash, remote, detail::text
		FROM audit_log WHERE run_id = $1 ORDER BY id`, b.runID)
	require.NoError(t, err)
	var got [][]string
	for rows.Next() {
		var actor, source, action, bucket, hash, remote, detail string
		require.NoError(t, rows.Scan(&actor, &source, &action, &bucket, &hash, &remote, &detail))
		require.Regexp(t, `^127\.0\.0\.1:\d+$`, remote)
		require.NotContains(t, detail, "jane")
		got = append(got, []string{actor, source, action, bucket, hash})
	}
	require.NoError(t, rows.Err())
	hash := dashboard.KeyHash(b.bucket, b.low)
	require.Equal(t, [][]string{
		{"token", "dashboard", "review.decide", b.bucket, hash},
		{user, "dashboard", "image.view", b.bucket, hash},
	}, got)
}

func TestOnlyObjectsOfTheRun(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Config{})
	run := "/runs/" + b.runID
	other := plainRef(b.bucket, "users/not-in-run.jpg")
	res, _ := b.do(t, call{method: "GET", path: run + "/image?o=" + other, auth: b.basic()})
	require.Equal(t, http.StatusNotFound, res.StatusCode, "the dashboard is no general S3 reader")
	res, _ = b.do(t, call{method: "POST", path: run + "/reviews", auth: b.basic(),
		form: url.Values{"o": {other}, "decision": {"confirmed_live"}}})
	require.Equal(t, http.StatusNotFound, res.StatusCode)
	res, _ = b.do(t, call{method: "GET", path: "/runs/not-a-uuid", auth: b.basic()})
	require.Equal(t, http.StatusNotFound, res.StatusCode)
	res, _ = b.do(t, call{method: "GET", path: "/runs/00000000-0000-0000-0000-000000000000", auth: b.basic()})
	require.Equal(t, http.StatusNotFound, res.StatusCode)
}

func TestReadOnlyRefusesWrites(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Config{ReadOnly: true})
	run := "/runs/" + b.runID
	review := url.Values{"o": {plainRef(b.bucket, b.low)}, "decision": {"confirmed_live"}}
	res, _ := b.do(t, call{method: "POST", path: run + "/reviews", auth: b.basic(), form: review})
	require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
	res, body := b.do(t, call{method: "GET", path: run + "/object?o=" + plainRef(b.bucket, b.low), auth: b.basic()})
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.NotContains(t, body, `<form`, "no review form in read-only mode")
	require.Contains(t, body, "read-only")
}

// plainRef is the object reference of a dashboard that does not mask keys.
func plainRef(bucket, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(bucket + "\x00" + key))
}

func must(res *http.Response, _ string) *http.Response { return res }

// TestImageNotShownUnlessAudited: an image whose view cannot be recorded
// in the audit log is not sent.
func TestImageNotShownUnlessAudited(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Config{})
	_, err := b.pool.Exec(t.Context(), `
		CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$;
		CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION test_refuse_audit();`)
	require.NoError(t, err)
	res, body := b.do(t, call{method: "GET", path: "/runs/" + b.runID + "/image?o=" + plainRef(b.bucket, "users/a.jpg"), auth: b.basic()})
	require.Equal(t, http.StatusInternalServerError, res.StatusCode)
	require.False(t, strings.HasPrefix(body, "\xff\xd8"), "no image bytes")
}
