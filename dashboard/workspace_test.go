package dashboard_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify/dashboard"
)

// TestQueuePages: the run page shows the queue a page at a time, linked by
// a cursor that names no key when keys are masked.
func TestQueuePages(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Config{MaskKeys: true, QueuePage: 1})
	next := regexp.MustCompile(`id="queue-next" href="([^"]+)"`)
	rows := regexp.MustCompile(`class="key review-link"[^>]*>([^<]+)<`)
	path := "/runs/" + b.runID
	var seen []string
	for range 5 {
		res, body := b.do(t, call{method: "GET", path: path, auth: b.basic()})
		require.Equal(t, http.StatusOK, res.StatusCode)
		for _, m := range rows.FindAllStringSubmatch(body, -1) {
			seen = append(seen, m[1])
		}
		m := next.FindStringSubmatch(body)
		if m == nil {
			break
		}
		path = html.UnescapeString(m[1])
		require.NotContains(t, path, "jane")
	}
	require.Equal(t, []string{"sha256:" + dashboard.KeyHash(b.bucket, "users/c.jpg"), "sha256:" + dashboard.KeyHash(b.bucket, b.low)}, seen,
		"each queued object once, refusals first")
	res, _ := b.do(t, call{method: "GET", path: "/runs/" + b.runID + "?after=1~bm90LWEtcmVm", auth: b.basic()})
	require.Equal(t, http.StatusBadRequest, res.StatusCode, "a cursor that does not decode")
}

// TestClaimsOverHTTP: the reviewer who claims an item holds it; another
// cannot decide it or renew it; releasing gives it back.
func TestClaimsOverHTTP(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Config{})
	run := "/runs/" + b.runID
	bearer := "Bearer " + token

	res, _ := b.do(t, call{method: "POST", path: run + "/claims", auth: b.basic(), form: url.Values{}})
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	require.Equal(t, run+"/review", res.Header.Get("Location"))
	res, body := b.do(t, call{method: "GET", path: run + "/review", auth: b.basic()})
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, body, `id="ws-object">kyc/users/c.jpg<`)
	require.Contains(t, body, `<script src="`+dashboard.WorkspaceScriptPath+`">`)
	require.Contains(t, res.Header.Get("Content-Security-Policy"), "script-src 'self'")
	ref := regexp.MustCompile(`name="o" value="([^"]+)"`).FindStringSubmatch(body)[1]

	res, body = b.do(t, call{method: "POST", path: run + "/reviews", auth: bearer,
		form: url.Values{"o": {ref}, "decision": {"confirmed_live"}}})
	require.Equal(t, http.StatusConflict, res.StatusCode, "held by ann: %s", body)
	res, _ = b.do(t, call{method: "POST", path: run + "/claims/renew", auth: bearer, form: url.Values{"o": {ref}}})
	require.Equal(t, http.StatusConflict, res.StatusCode, "not the token holder's claim")
	res, _ = b.do(t, call{method: "POST", path: run + "/claims/renew", auth: b.basic(), form: url.Values{"o": {ref}}})
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	res, _ = b.do(t, call{method: "GET", path: dashboard.WorkspaceScriptPath, auth: b.basic()})
	require.Equal(t, http.StatusOK, res.StatusCode)

	res, _ = b.do(t, call{method: "POST", path: run + "/claims/release", auth: b.basic(), form: url.Values{"o": {ref}}})
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	res, _ = b.do(t, call{method: "POST", path: run + "/reviews", auth: bearer,
		form: url.Values{"o": {ref}, "decision": {"confirmed_live"}, "next": {"1"}}})
	require.Equal(t, http.StatusSeeOther, res.StatusCode, "released: anyone may decide")
	require.Contains(t, res.Header.Get("Location"), run+"/review")
	_, body = b.do(t, call{method: "GET", path: run + "/review", auth: bearer})
	require.Contains(t, body, `id="ws-object">kyc/users/jane doe&#43;1/selfie.jpg<`, "the decision claimed the next item")
}
