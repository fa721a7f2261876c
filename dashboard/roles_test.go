package dashboard_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"reverify"
	"reverify/dashboard"
	"reverify/internal/testenv"
	"reverify/tasks"
)

// People of the role tests: a password each, and a token for the reviewer.
const (
	viewerName, viewerPassword     = "vera@example.com", "viewer password 123"
	reviewerName, reviewerPassword = "rita@example.com", "reviewer password 123"
	operatorName, operatorPassword = "otto@example.com", "operator password 123"
	reviewerToken                  = "rita-token-0123456789abcdef"
)

func basicAuth(name, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(name+":"+password))
}

// roleUsers are a viewer, a reviewer (password and token) and an operator.
func roleUsers(t *testing.T) []dashboard.User {
	t.Helper()
	hash := func(p string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		require.NoError(t, err)
		return string(h)
	}
	tok, err := dashboard.HashToken(reviewerToken)
	require.NoError(t, err)
	return []dashboard.User{
		{Name: viewerName, Role: reverify.RoleViewer, PasswordHash: hash(viewerPassword)},
		{Name: reviewerName, Role: reverify.RoleReviewer, PasswordHash: hash(reviewerPassword), TokenSHA256: tok},
		{Name: operatorName, Role: reverify.RoleOperator, PasswordHash: hash(operatorPassword)},
	}
}

// TestRolesGateRoutes: a viewer sees pages but neither images nor the
// decision form, and is refused both; a reviewer sees images and decides;
// ViewersSeeImages opens images (only) to viewers.
func TestRolesGateRoutes(t *testing.T) {
	t.Parallel()
	viewer, reviewer, operator := basicAuth(viewerName, viewerPassword), basicAuth(reviewerName, reviewerPassword),
		basicAuth(operatorName, operatorPassword)
	token := "Bearer " + reviewerToken
	for _, viewersSeeImages := range []bool{false, true} {
		b := setup(t, dashboard.Config{Auth: dashboard.Auth{Users: roleUsers(t)}, ViewersSeeImages: viewersSeeImages})
		run := "/runs/" + b.runID
		ref := plainRef(b.bucket, b.low)
		decide := url.Values{"o": {ref}, "decision": {"confirmed_live"}}
		imageForViewer := http.StatusForbidden
		if viewersSeeImages {
			imageForViewer = http.StatusOK
		}
		tests := []struct {
			name string
			c    call
			want int
		}{
			{"viewer runs", call{method: "GET", path: "/", auth: viewer}, http.StatusOK},
			{"viewer run", call{method: "GET", path: run, auth: viewer}, http.StatusOK},
			{"viewer object", call{method: "GET", path: run + "/object?o=" + ref, auth: viewer}, http.StatusOK},
			{"viewer image", call{method: "GET", path: run + "/image?o=" + ref, auth: viewer}, imageForViewer},
			{"viewer decides", call{method: "POST", path: run + "/reviews", auth: viewer, form: decide}, http.StatusForbidden},
			{"reviewer image", call{method: "GET", path: run + "/image?o=" + ref, auth: reviewer}, http.StatusOK},
			{"reviewer token image", call{method: "GET", path: run + "/image?o=" + ref, auth: token}, http.StatusOK},
			{"reviewer decides", call{method: "POST", path: run + "/reviews", auth: reviewer, form: decide}, http.StatusSeeOther},
			{"operator image", call{method: "GET", path: run + "/image?o=" + ref, auth: operator}, http.StatusOK},
			{"wrong password", call{method: "GET", path: "/", auth: basicAuth(viewerName, reviewerPassword)}, http.StatusUnauthorized},
		}
		for _, tt := range tests {
			res, body := b.do(t, tt.c)
			require.Equal(t, tt.want, res.StatusCode, "%s (viewers see images: %v): %s", tt.name, viewersSeeImages, body)
			if tt.want == http.StatusForbidden {
				require.Contains(t, body, "needs the")
			}
		}
		_, page := b.do(t, call{method: "GET", path: run + "/object?o=" + ref, auth: viewer})
		require.NotContains(t, page, `<form`, "no decision form for a viewer")
		require.Equal(t, viewersSeeImages, strings.Contains(page, `id="face"`), "the image on a viewer's page")
		_, page = b.do(t, call{method: "GET", path: run + "/object?o=" + ref, auth: reviewer})
		require.Contains(t, page, `<form`)
		require.Contains(t, page, `id="face"`)

		var who string
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT reviewer FROM reviews WHERE run_id = $1`, b.runID).Scan(&who))
		require.Equal(t, reviewerName, who, "the review is the authenticated person's")
		var views int
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE actor = $2)
			FROM audit_log WHERE run_id = $1 AND action = 'image.view'`, b.runID, reviewerName).Scan(&views))
		require.Equal(t, 2, views, "the reviewer's two image views (password and token) are audited under the reviewer's name")
	}
}

// TestSSOHeaderTrustedOnlyFromProxies: the SSO proxy's identity header
// makes a request that person, with the role of their groups, only when
// the connection comes from a trusted proxy address. From anywhere else
// the header is ignored: alone it is refused, and with a password it is
// the password's owner who acts.
func TestSSOHeaderTrustedOnlyFromProxies(t *testing.T) {
	t.Parallel()
	sso := func(trusted string) dashboard.SSO {
		p, err := dashboard.ParsePrefixes(trusted)
		require.NoError(t, err)
		roles, err := dashboard.ParseGroupRoles("kyc-reviewers=reviewer, kyc-ops=operator")
		require.NoError(t, err)
		return dashboard.SSO{Header: "X-Auth-Request-Email", GroupsHeader: "X-Auth-Request-Groups", GroupRoles: roles, Trusted: p}
	}
	claim := func(email, groups string) http.Header {
		h := http.Header{}
		h.Set("X-Auth-Request-Email", email)
		h.Set("X-Auth-Request-Groups", groups)
		h.Set("X-Forwarded-For", "203.0.113.7")
		return h
	}

	t.Run("trusted proxy", func(t *testing.T) {
		t.Parallel()
		// The test's client connects from 127.0.0.1: the proxy.
		b := setup(t, dashboard.Config{Auth: dashboard.Auth{SSO: sso("127.0.0.0/8, ::1")}})
		run, ref := "/runs/"+b.runID, plainRef(b.bucket, b.low)
		decide := url.Values{"o": {ref}, "decision": {"needs_recheck"}}
		res, body := b.do(t, call{method: "GET", path: run + "/image?o=" + ref, header: claim("sam@example.com", "staff,kyc-reviewers")})
		require.Equal(t, http.StatusOK, res.StatusCode, body)
		res, body = b.do(t, call{method: "POST", path: run + "/reviews", form: decide, header: claim("sam@example.com", "staff,kyc-reviewers")})
		require.Equal(t, http.StatusSeeOther, res.StatusCode, body)
		res, body = b.do(t, call{method: "GET", path: run + "/image?o=" + ref, header: claim("nora@example.com", "staff")})
		require.Equal(t, http.StatusForbidden, res.StatusCode, "no mapped group, no default role")
		require.Contains(t, body, "has no dashboard role")
		res, _ = b.do(t, call{method: "GET", path: "/"})
		require.Equal(t, http.StatusUnauthorized, res.StatusCode, "no header, no credentials")

		var who, from string
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT actor, remote FROM audit_log WHERE run_id = $1 AND action = 'review.decide'`,
			b.runID).Scan(&who, &from))
		require.Equal(t, "sam@example.com", who)
		require.True(t, strings.HasPrefix(from, "203.0.113.7 via 127.0.0.1:"), "the client the proxy forwards, and the proxy: %s", from)
	})

	t.Run("untrusted peer", func(t *testing.T) {
		t.Parallel()
		hash, err := bcrypt.GenerateFromPassword([]byte(reviewerPassword), bcrypt.MinCost)
		require.NoError(t, err)
		users := []dashboard.User{{Name: reviewerName, Role: reverify.RoleReviewer, PasswordHash: string(hash)}}
		b := setup(t, dashboard.Config{Auth: dashboard.Auth{Users: users, SSO: sso("192.0.2.0/24")}})
		run, ref := "/runs/"+b.runID, plainRef(b.bucket, b.low)
		forged := claim("boss@example.com", "kyc-ops")

		res, _ := b.do(t, call{method: "GET", path: "/", header: forged})
		require.Equal(t, http.StatusUnauthorized, res.StatusCode, "a forged header alone authenticates nobody")
		res, _ = b.do(t, call{method: "GET", path: run + "/image?o=" + ref, header: forged})
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)

		res, body := b.do(t, call{method: "POST", path: run + "/reviews", auth: basicAuth(reviewerName, reviewerPassword), header: forged,
			form: url.Values{"o": {ref}, "decision": {"confirmed_live"}}})
		require.Equal(t, http.StatusSeeOther, res.StatusCode, body)
		var who, actor, from string
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT r.reviewer, a.actor, a.remote FROM reviews r, audit_log a
			WHERE r.run_id = $1 AND a.run_id = r.run_id AND a.action = 'review.decide'`, b.runID).Scan(&who, &actor, &from))
		require.Equal(t, reviewerName, who, "the password's owner decided, not the header's claim")
		require.Equal(t, reviewerName, actor)
		require.NotContains(t, from, "203.0.113.7", "an untrusted peer's X-Forwarded-For is not believed")
		var claimed int
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_log WHERE actor = 'boss@example.com'`).Scan(&claimed))
		require.Zero(t, claimed)
	})
}

// monitorBundle is a dashboard with asynqmon over a queue of its own
// holding one verify task of the run.
type monitorBundle struct {
	*bundle
	queue, taskID string
	insp          *asynq.Inspector
}

func setupMonitor(t *testing.T, cfg dashboard.Config) monitorBundle {
	t.Helper()
	redis := asynq.RedisClientOpt{Addr: testenv.RedisAddr(t)}
	mon := dashboard.NewMonitor(redis, dashboard.MonitorOptions{ReadOnly: cfg.ReadOnly, MaskKeys: true})
	t.Cleanup(func() { _ = mon.Close() })
	cfg.Auth = dashboard.Auth{Users: roleUsers(t)}
	b := setupWith(t, cfg, mon)
	m := monitorBundle{bundle: b, queue: "ident-" + testenv.Queue(t), insp: asynq.NewInspector(redis)}
	t.Cleanup(func() {
		_ = m.insp.DeleteQueue(m.queue, true)
		_ = m.insp.Close()
	})
	task, err := tasks.NewVerifyTask(tasks.VerifyPayload{RunID: b.runID, Bucket: b.bucket, Key: b.low, Seq: 1}, m.queue)
	require.NoError(t, err)
	client := asynq.NewClient(redis)
	t.Cleanup(func() { _ = client.Close() })
	info, err := client.EnqueueContext(context.Background(), task)
	require.NoError(t, err)
	m.taskID = info.ID
	return m
}

func (m monitorBundle) taskQueued(t *testing.T) bool {
	t.Helper()
	_, err := m.insp.GetTaskInfo(m.queue, m.taskID)
	if err != nil {
		require.ErrorIs(t, err, asynq.ErrTaskNotFound)
		return false
	}
	return true
}

// TestMonitorWritesNeedAnOperatorAndAreAudited: deleting a task in
// asynqmon needs the operator role and lands in the audit log with who,
// what (method and path, the task named by run and hash) and from where;
// a path with something key-like in it is recorded by hash.
func TestMonitorWritesNeedAnOperatorAndAreAudited(t *testing.T) {
	t.Parallel()
	m := setupMonitor(t, dashboard.Config{})
	del := dashboard.MonitorPath + "/api/queues/" + m.queue + "/pending_tasks/" + m.taskID

	res, body := m.do(t, call{method: "GET", path: dashboard.MonitorPath + "/api/queues/" + m.queue, auth: basicAuth(viewerName, viewerPassword)})
	require.Equal(t, http.StatusOK, res.StatusCode, "a viewer reads asynqmon: %s", body)
	res, body = m.do(t, call{method: "DELETE", path: del, auth: basicAuth(reviewerName, reviewerPassword)})
	require.Equal(t, http.StatusForbidden, res.StatusCode, body)
	require.Contains(t, body, "needs the operator role")
	require.True(t, m.taskQueued(t), "a reviewer's delete is not carried out")

	res, body = m.do(t, call{method: "DELETE", path: del, auth: basicAuth(operatorName, operatorPassword)})
	require.Less(t, res.StatusCode, 300, body)
	require.False(t, m.taskQueued(t), "the operator's delete is carried out")

	keyLike := dashboard.MonitorPath + "/api/queues/" + m.queue + "/pending_tasks/" + url.PathEscape(m.low) + ":archive"
	res, _ = m.do(t, call{method: "POST", path: keyLike, auth: basicAuth(operatorName, operatorPassword)})
	require.NotEqual(t, http.StatusForbidden, res.StatusCode)

	type entry struct {
		actor, source, method, path, runID, remote string
		at                                         time.Time
	}
	rows, err := m.pool.Query(t.Context(), `SELECT actor, source, detail->>'method', detail->>'path', coalesce(run_id::text, ''), remote, at
		FROM audit_log WHERE action = $1 ORDER BY id`, reverify.AuditMonitorWrite)
	require.NoError(t, err)
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (entry, error) {
		var e entry
		return e, r.Scan(&e.actor, &e.source, &e.method, &e.path, &e.runID, &e.remote, &e.at)
	})
	require.NoError(t, err)
	require.Len(t, entries, 2, "the operator's two writes, not the reviewer's refused one")
	deleted, archive := entries[0], entries[1]
	require.Equal(t, operatorName, deleted.actor)
	require.Equal(t, string(reverify.AuditFromDashboard), deleted.source)
	require.Equal(t, "DELETE", deleted.method)
	require.Equal(t, "/api/queues/"+m.queue+"/pending_tasks/"+m.taskID, deleted.path)
	require.Equal(t, m.runID, deleted.runID, "the task ID names its run")
	require.True(t, strings.HasPrefix(deleted.remote, "127.0.0.1:"), deleted.remote)
	require.False(t, deleted.at.IsZero())
	require.Equal(t, "POST", archive.method)
	require.Regexp(t, `/pending_tasks/sha256:[0-9a-f]{16}:archive$`, archive.path)
	var leaked int
	require.NoError(t, m.pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_log
		WHERE strpos(actor || remote || detail::text, 'jane') > 0`).Scan(&leaked))
	require.Zero(t, leaked, "no object key in the audit log")
}

// TestMonitorWriteRefusedUnlessAudited: an asynqmon write that cannot be
// recorded in the audit log is not carried out; --read-only refuses it
// even to an operator.
func TestMonitorWriteRefusedUnlessAudited(t *testing.T) {
	t.Parallel()
	t.Run("audit log unavailable", func(t *testing.T) {
		t.Parallel()
		m := setupMonitor(t, dashboard.Config{})
		_, err := m.pool.Exec(t.Context(), `
			CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$;
			CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION test_refuse_audit();`)
		require.NoError(t, err)
		res, body := m.do(t, call{method: "DELETE", path: dashboard.MonitorPath + "/api/queues/" + m.queue + "/pending_tasks/" + m.taskID,
			auth: basicAuth(operatorName, operatorPassword)})
		require.Equal(t, http.StatusServiceUnavailable, res.StatusCode, body)
		require.Contains(t, body, "could not be recorded in the audit log")
		require.True(t, m.taskQueued(t), "the task is still there")
	})
	t.Run("read-only", func(t *testing.T) {
		t.Parallel()
		m := setupMonitor(t, dashboard.Config{ReadOnly: true})
		res, _ := m.do(t, call{method: "DELETE", path: dashboard.MonitorPath + "/api/queues/" + m.queue + "/pending_tasks/" + m.taskID,
			auth: basicAuth(operatorName, operatorPassword)})
		require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
		require.True(t, m.taskQueued(t))
		var n int
		require.NoError(t, m.pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_log`).Scan(&n))
		require.Zero(t, n, "nothing done, nothing recorded")
	})
}

func TestUsersFile(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("a long enough password"), bcrypt.MinCost)
	require.NoError(t, err)
	sum, err := dashboard.HashToken("a-token-of-enough-length")
	require.NoError(t, err)
	good := "users:\n  - {name: ann, role: viewer, password_hash: '" + string(hash) + "'}\n  - {name: ci, role: operator, token_sha256: " + sum + "}\n"
	users, err := dashboard.LoadUsers([]byte(good))
	require.NoError(t, err)
	require.Equal(t, []dashboard.User{{Name: "ann", Role: reverify.RoleViewer, PasswordHash: string(hash)},
		{Name: "ci", Role: reverify.RoleOperator, TokenSHA256: sum}}, users)
	users, err = dashboard.LoadUsers([]byte(`{"users":[{"name":"ci","role":"reviewer","token_sha256":"` + sum + `"}]}`))
	require.NoError(t, err, "JSON is accepted too")
	require.Len(t, users, 1)

	for name, src := range map[string]string{
		"empty":           "users: []",
		"unknown field":   "users:\n  - {name: ann, role: viewer, passwd: x}",
		"unknown role":    "users:\n  - {name: ann, role: admin, token_sha256: " + sum + "}",
		"no role":         "users:\n  - {name: ann, token_sha256: " + sum + "}",
		"no credential":   "users:\n  - {name: ann, role: viewer}",
		"plain password":  "users:\n  - {name: ann, role: viewer, password_hash: hunter2hunter2}",
		"short token sum": "users:\n  - {name: ann, role: viewer, token_sha256: abc}",
		"same name":       "users:\n  - {name: ann, role: viewer, token_sha256: " + sum + "}\n  - {name: ann, role: viewer, password_hash: '" + string(hash) + "'}",
		"same token":      "users:\n  - {name: ann, role: viewer, token_sha256: " + sum + "}\n  - {name: bo, role: operator, token_sha256: " + sum + "}",
		"placeholder":     "users:\n  - {name: ann, role: viewer, token_sha256: CHANGE-ME}",
		"no name":         "users:\n  - {role: viewer, token_sha256: " + sum + "}",
	} {
		_, err := dashboard.LoadUsers([]byte(src))
		require.Error(t, err, name)
	}

	_, err = dashboard.ParseGroupRoles("admins=root")
	require.ErrorContains(t, err, "viewer, reviewer, operator")
	_, err = dashboard.ParsePrefixes("10.0.0.0/33")
	require.Error(t, err)
	p, err := dashboard.ParsePrefixes("10.1.2.3, 10.0.0.0/8")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("10.0.0.0/8")}, p)
	require.Error(t, dashboard.Auth{SSO: dashboard.SSO{Trusted: p}}.Validate(), "proxies trusted for no header")
	require.False(t, dashboard.Auth{SSO: dashboard.SSO{Header: "X-Auth-Request-Email"}}.Configured(), "a header trusted from nowhere is no credential")
}
