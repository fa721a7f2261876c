package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"reverify/dashboard"
)

// TestReviewInBrowser drives the dashboard in headless Chromium: the runs
// page, a run with its histogram, an object's image, and a review decision
// that must land in PostgreSQL with the reviewer's name.
func TestReviewInBrowser(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Config{ReviewThreshold: 50})
	ctx := browser(t)
	require.NoError(t, setAuth(ctx, b.basic()))

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(b.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`a.run-link`)),
		chromedp.Click(chromedp.CSS(`a.run-link`)),
		chromedp.WaitVisible(chromedp.CSS(`svg.histogram`)),
	))
	bars := evaluate[int](t, ctx, `document.querySelectorAll('svg.histogram rect.bar').length`)
	lowBand := evaluate[int](t, ctx, `Number(document.querySelector('svg.histogram rect[data-band="10"]').dataset.count)`)
	reviewLinks := evaluate[int](t, ctx, `document.querySelectorAll('a.review-link').length`)

	require.Equal(t, "users/c.jpg", evaluate[string](t, ctx, `document.querySelector('a.review-link').textContent.slice(4)`),
		"refusals first")
	evaluate[bool](t, ctx, `[...document.querySelectorAll('a.review-link')].find(a => a.textContent.includes('selfie')).click() === undefined`)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`#review`)),
	))
	imgWidth, err := chromedp.Run(ctx, chromedp.Poll[int](
		`document.getElementById('face').complete && document.getElementById('face').naturalWidth`,
		chromedp.WithPollingTimeout(10*time.Second)))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#decision-suspected_spoof`)),
		chromedp.SendKeys(chromedp.CSS(`#note`), "printed photo held to the camera"),
		chromedp.Click(chromedp.CSS(`#submit`)),
		chromedp.WaitVisible(chromedp.CSS(`#saved`)),
	))
	require.Equal(t, 10, bars, "ten score bands are drawn")
	require.Equal(t, 1, lowBand, "one score in [10,20)")
	require.Equal(t, 2, reviewLinks, "the low score and the rejection are queued")
	require.Equal(t, 96, imgWidth, "the image streamed from S3 decoded in the browser")

	var decision, note, reviewer string
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT decision, note, reviewer FROM reviews WHERE run_id = $1 AND bucket = $2 AND object_key = $3`,
		b.runID, b.bucket, b.low).Scan(&decision, &note, &reviewer))
	require.Equal(t, "suspected_spoof", decision)
	require.Equal(t, "printed photo held to the camera", note)
	require.Equal(t, user, reviewer)

	var queued string
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT coalesce(decision, '') FROM review_queue WHERE run_id = $1 AND object_key = $2`, b.runID, b.low).Scan(&queued))
	require.Equal(t, "suspected_spoof", queued, "the review_queue view shows the decision")

	var views, decisions int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT
			count(*) FILTER (WHERE action = 'image.view' AND actor = $2),
			count(*) FILTER (WHERE action = 'review.decide' AND actor = $2 AND detail->>'decision' = 'suspected_spoof')
		FROM audit_log WHERE run_id = $1 AND key_hash = $3`, b.runID, user, dashboard.KeyHash(b.bucket, b.low)).Scan(&views, &decisions))
	require.GreaterOrEqual(t, views, 1, "the image shown is in the audit log")
	require.Equal(t, 1, decisions, "the decision is in the audit log")
}

// TestRolesInBrowser: in headless Chromium, a viewer's object page has no
// image and no decision form, and the image and a decision are refused to
// it; a reviewer sees the image and records a decision under their name;
// an operator deletes a task through asynqmon, and the audit log names
// the operator for it.
func TestRolesInBrowser(t *testing.T) {
	t.Parallel()
	m := setupMonitor(t, dashboard.Config{ReviewThreshold: 50})
	ctx := browser(t)
	object := m.srv.URL + "/runs/" + m.runID + "/object?o=" + plainRef(m.bucket, m.low)
	image := "/runs/" + m.runID + "/image?o=" + plainRef(m.bucket, m.low)
	decide := `fetch('/runs/` + m.runID + `/reviews', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
		body: 'o=` + plainRef(m.bucket, m.low) + `&decision=confirmed_live', redirect: 'manual'}).then(r => r.status)`

	// The viewer.
	require.NoError(t, setAuth(ctx, basicAuth(viewerName, viewerPassword)))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(object), chromedp.WaitVisible(chromedp.CSS(`#no-image`))))
	viewerFace := evaluate[int](t, ctx, `document.querySelectorAll('#face').length`)
	viewerForm := evaluate[int](t, ctx, `document.querySelectorAll('#review').length`)
	// The pages allow no script requests (CSP), asynqmon's page does: the
	// viewer opens the image itself, and posts a decision from there.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(m.srv.URL+image), chromedp.WaitReady(chromedp.CSS(`body`))))
	viewerImage := evaluate[string](t, ctx, `document.body.innerText`)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(m.srv.URL+dashboard.MonitorPath+"/"), chromedp.WaitReady(chromedp.CSS(`body`))))
	viewerDecide := evaluate[int](t, ctx, decide, chromedp.EvalAwaitPromise)
	require.Zero(t, viewerFace, "no image on a viewer's page")
	require.Zero(t, viewerForm, "no decision form on a viewer's page")
	require.Contains(t, viewerImage, "needs the reviewer role")
	require.Equal(t, http.StatusForbidden, viewerDecide)

	// The reviewer.
	require.NoError(t, setAuth(ctx, basicAuth(reviewerName, reviewerPassword)))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(object), chromedp.WaitVisible(chromedp.CSS(`#review`))))
	imgWidth, err := chromedp.Run(ctx, chromedp.Poll[int](
		`document.getElementById('face').complete && document.getElementById('face').naturalWidth`,
		chromedp.WithPollingTimeout(10*time.Second)))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#decision-needs_recheck`)),
		chromedp.Click(chromedp.CSS(`#submit`)),
		chromedp.WaitVisible(chromedp.CSS(`#saved`)),
	))
	require.Equal(t, 96, imgWidth, "the reviewer sees the image")

	// The operator, from asynqmon's own page.
	require.NoError(t, setAuth(ctx, basicAuth(operatorName, operatorPassword)))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(m.srv.URL+dashboard.MonitorPath+"/"), chromedp.WaitReady(chromedp.CSS(`body`))))
	deleted := evaluate[int](t, ctx, `fetch('`+dashboard.MonitorPath+`/api/queues/`+m.queue+`/pending_tasks/`+m.taskID+`', {method: 'DELETE'}).then(r => r.status)`,
		chromedp.EvalAwaitPromise)
	require.Less(t, deleted, 300, "the operator's delete through asynqmon")
	require.False(t, m.taskQueued(t), "the task is gone")

	var reviewer string
	require.NoError(t, m.pool.QueryRow(context.Background(), `SELECT reviewer FROM reviews WHERE run_id = $1`, m.runID).Scan(&reviewer))
	require.Equal(t, reviewerName, reviewer, "only the reviewer's decision is recorded")
	var actor, method, path string
	require.NoError(t, m.pool.QueryRow(context.Background(), `SELECT actor, detail->>'method', detail->>'path' FROM audit_log
		WHERE action = 'monitor.write'`).Scan(&actor, &method, &path))
	require.Equal(t, operatorName, actor)
	require.Equal(t, "DELETE", method)
	require.Equal(t, "/api/queues/"+m.queue+"/pending_tasks/"+m.taskID, path)
	var views int
	require.NoError(t, m.pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE action = 'image.view' AND actor <> $1`,
		reviewerName).Scan(&views))
	require.Zero(t, views, "only the reviewer saw the image")
}

// browser starts headless Chromium for one test.
func browser(t *testing.T) context.Context {
	t.Helper()
	exec := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exec),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(testContext(t, 4*time.Minute), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
	require.NoError(t, err)
	return ctx
}

// setAuth makes the browser send authorization with every request.
func setAuth(ctx context.Context, authorization string) error {
	_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": authorization},
	})
	return err
}

// TestFourEyesInBrowser: under the four-eyes rule reviewer A works the
// queue in the workspace with keyboard shortcuts and marks the low score a
// suspected spoof; it stays pending and is not offered to A again;
// reviewer B takes it as "needs second review" and confirms it; reviews
// and the audit log hold both decisions with both names.
func TestFourEyesInBrowser(t *testing.T) {
	t.Parallel()
	const bob = "reviewer-bob"
	b := setup(t, dashboard.Config{ReviewThreshold: 50, FourEyes: true, Auth: dashboard.Auth{TokenName: bob}})
	ctx := browser(t)
	run := b.srv.URL + "/runs/" + b.runID
	faceShown := func() int {
		t.Helper()
		w, err := chromedp.Run(ctx, chromedp.Poll[int](
			`document.getElementById('face') && document.getElementById('face').complete && document.getElementById('face').naturalWidth`,
			chromedp.WithPollingTimeout(10*time.Second)))
		require.NoError(t, err)
		return w
	}

	// Reviewer A (ann): from the run page into the workspace.
	require.NoError(t, setAuth(ctx, b.basic()))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(run),
		chromedp.WaitVisible(chromedp.CSS(`#open-workspace`)),
	))
	loads(t, ctx, chromedp.Click(chromedp.CSS(`#open-workspace`)), `#ws-next`)
	loads(t, ctx, chromedp.Click(chromedp.CSS(`#ws-next`)), `#decide[data-keys]`)
	first := evaluate[string](t, ctx, `document.getElementById('ws-object').textContent`)
	shortcuts := evaluate[string](t, ctx, `document.getElementById('decide').innerText`)
	require.Equal(t, 96, faceShown(), "the image beside its score")
	// The refusal first: confirmed live with the keyboard; the next
	// claimed item loads.
	loads(t, ctx, chromedp.KeyEvent("l"), `#notice`)
	loads(t, ctx, nil, `#decide[data-keys]`)
	second := evaluate[string](t, ctx, `document.getElementById('ws-object').textContent`)
	score := evaluate[string](t, ctx, `document.getElementById('ws-score').textContent`)
	require.Equal(t, 96, faceShown())
	loads(t, ctx, chromedp.KeyEvent("s"), `#ws-empty`)
	notice := evaluate[string](t, ctx, `document.getElementById('notice').textContent`)
	require.Equal(t, "kyc/users/c.jpg", first, "refusals first")
	require.Contains(t, shortcuts, "Suspected spoof s", "the shortcuts are on the page")
	require.Equal(t, "kyc/"+b.low, second, "the next item loaded after the decision")
	require.Equal(t, "12.50", score)
	require.Contains(t, notice, "awaits a second reviewer")

	var state string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT queue_state FROM review_queue
		WHERE run_id = $1 AND object_key = $2`, b.runID, b.low).Scan(&state))
	require.Equal(t, "needs_second_review", state, "pending, not decided")
	// Ann asking again gets nothing: her own pending decision is not hers
	// to confirm.
	loads(t, ctx, chromedp.Click(chromedp.CSS(`#ws-next`)), `#ws-empty`)
	var annClaims int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM review_claims WHERE reviewer = $1`, user).Scan(&annClaims))
	require.Zero(t, annClaims, "ann holds nothing")

	// Reviewer B (bob) takes it as a second review and confirms it.
	require.NoError(t, setAuth(ctx, "Bearer "+token))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(run+"/review"),
		chromedp.WaitVisible(chromedp.CSS(`#ws-next`)),
	))
	loads(t, ctx, chromedp.Click(chromedp.CSS(`#ws-next`)), `#decide`)
	me := evaluate[string](t, ctx, `document.getElementById('me').textContent`)
	pending := evaluate[string](t, ctx, `document.getElementById('ws-state').dataset.state + ' ' + document.getElementById('ws-state').textContent`)
	history := evaluate[int](t, ctx, `document.querySelectorAll('#ws-reviews tbody tr').length`)
	require.Equal(t, 96, faceShown())
	loads(t, ctx, chromedp.Click(chromedp.CSS(`#ws-suspected_spoof`)), `#ws-empty`)
	require.Equal(t, bob, me)
	require.Contains(t, pending, "needs_second_review")
	require.Contains(t, pending, user+" decided Suspected spoof")
	require.Equal(t, 1, history, "ann's decision is in the item's history")

	rows, err := b.pool.Query(context.Background(), `SELECT reviewer, decision, state, second_of IS NOT NULL
		FROM reviews WHERE bucket = $1 AND object_key = $2 ORDER BY id`, b.bucket, b.low)
	require.NoError(t, err)
	var reviews []string
	for rows.Next() {
		var who, decision, st string
		var second bool
		require.NoError(t, rows.Scan(&who, &decision, &st, &second))
		reviews = append(reviews, fmt.Sprint(who, " ", decision, " ", st, " ", second))
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{user + " suspected_spoof awaiting_second false", bob + " suspected_spoof final true"}, reviews)

	rows, err = b.pool.Query(context.Background(), `SELECT actor, detail->>'decision', detail->>'state',
			coalesce(detail->>'first_reviewer', '')
		FROM audit_log WHERE action = 'review.decide' AND run_id = $1 AND key_hash = $2 ORDER BY id`,
		b.runID, dashboard.KeyHash(b.bucket, b.low))
	require.NoError(t, err)
	var trail []string
	for rows.Next() {
		var actor, decision, st, firstReviewer string
		require.NoError(t, rows.Scan(&actor, &decision, &st, &firstReviewer))
		trail = append(trail, fmt.Sprint(actor, " ", decision, " ", st, " ", firstReviewer))
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{user + " suspected_spoof awaiting_second ", bob + " suspected_spoof final " + user}, trail,
		"both decisions, with both names, in the audit log")
	var viewers []string
	require.NoError(t, pgxscan(b, `SELECT DISTINCT actor FROM audit_log WHERE action = 'image.view' AND key_hash = $1 ORDER BY 1`,
		&viewers, dashboard.KeyHash(b.bucket, b.low)))
	require.Equal(t, []string{user, bob}, viewers, "both image views are audited")
}

// pgxscan collects one text column.
func pgxscan(b *bundle, sql string, out *[]string, args ...any) error {
	rows, err := b.pool.Query(context.Background(), sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		*out = append(*out, s)
	}
	return rows.Err()
}

// loads runs act (nil: none), which loads a new page, and waits until a
// page act did not start on shows sel. Without the mark on the old page a
// wait could be met by it under load, and the next step would cut the new
// page's load short (net::ERR_ABORTED) or send keys before its script ran.
func loads(t *testing.T, ctx context.Context, act chromedp.Action[chromedp.Void], sel string) {
	t.Helper()
	steps := []chromedp.Action[chromedp.Void]{chromedp.WaitVisible(chromedp.CSS(`html:not([data-old]) ` + sel))}
	if act != nil {
		evaluate[bool](t, ctx, `document.documentElement.dataset.old = "1"; true`)
		steps = append([]chromedp.Action[chromedp.Void]{act}, steps...)
	}
	require.NoError(t, chromedp.Do(ctx, steps...), sel)
}

func evaluate[T any](t *testing.T, ctx context.Context, expr string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	require.NoError(t, err, expr)
	return v
}
