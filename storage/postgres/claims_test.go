package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

// outcome is one object's result in a run of TestDecisionsOutliveTheRun.
type outcome struct {
	key   string
	etag  string
	score *float64 // nil: rejected
}

func pts(f float64) *float64 { return &f }

// runOf creates a run of objs and records each one's outcome.
func runOf(t *testing.T, s *postgres.Store, name string, objs []outcome) reverify.Run {
	t.Helper()
	ctx := context.Background()
	run, err := s.CreateRun(ctx, postgres.NewRun{Name: name, Queue: "q",
		Source: reverify.Source{Kind: reverify.SourceManifest, Manifest: "test"}})
	require.NoError(t, err)
	refs := make([]reverify.ObjectRef, len(objs))
	for i, o := range objs {
		refs[i] = reverify.ObjectRef{Bucket: "b", Key: o.key}
	}
	_, err = s.AddObjects(ctx, run.ID, refs)
	require.NoError(t, err)
	require.NoError(t, s.StartRun(ctx, run.ID))
	for i, o := range objs {
		r := postgres.Result{RunID: run.ID, Object: refs[i], Status: reverify.StatusScored, Score: o.score, ETag: o.etag}
		if o.score == nil {
			r.Status, r.ErrorCode = reverify.StatusRejected, 1017
		}
		require.NoError(t, s.RecordResult(ctx, r))
	}
	return run
}

func queueStates(t *testing.T, s *postgres.Store, q postgres.QueueQuery) map[string]postgres.ReviewItem {
	t.Helper()
	q.All, q.Limit = true, 100
	page, err := s.ReviewQueuePage(context.Background(), q)
	require.NoError(t, err)
	out := map[string]postgres.ReviewItem{}
	for _, it := range page.Items {
		out[it.Key] = it
	}
	return out
}

// TestDecisionsOutliveTheRun: a decision is bound to the object's ETag and
// score; the next run's queue leaves out what was decided about the same
// bytes, unless the score moved by more than the delta, and brings back a
// new image.
func TestDecisionsOutliveTheRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := testenv.LedgerWithPool(t)
	first := runOf(t, s, "night 1", []outcome{
		{"same", "e-same", pts(20)}, {"moved", "e-moved", pts(20)}, {"newimage", "e-old", pts(20)},
		{"refused", "e-ref", nil}, {"undecided", "e-u", pts(30)},
	})
	for _, k := range []string{"same", "moved", "newimage", "refused"} {
		rev, err := s.Decide(ctx, postgres.Review{RunID: first.ID, Bucket: "b", Key: k, Decision: reverify.DecisionConfirmedLive,
			Reviewer: "ann", Source: reverify.AuditFromDashboard})
		require.NoError(t, err)
		require.Equal(t, reverify.ReviewFinal, rev.State)
	}
	it, reviews, err := s.Item(ctx, first.ID, reverify.ObjectRef{Bucket: "b", Key: "same"})
	require.NoError(t, err)
	require.Equal(t, "e-same", it.ETag)
	require.Equal(t, "e-same", reviews[0].ETag, "the decision names the verified ETag")
	require.InDelta(t, 20, *reviews[0].Score, 0.001, "and the score the reviewer saw")

	second := runOf(t, s, "night 2", []outcome{
		{"same", "e-same", pts(27.5)}, {"moved", "e-moved", pts(35)}, {"newimage", "e-new", pts(20)},
		{"refused", "e-ref", nil}, {"undecided", "e-u", pts(30)},
	})
	got := queueStates(t, s, postgres.QueueQuery{RunID: second.ID, Delta: 10})
	want := map[string]reverify.QueueState{"same": reverify.QueueDecided, "moved": reverify.QueueToReview,
		"newimage": reverify.QueueToReview, "refused": reverify.QueueDecided, "undecided": reverify.QueueToReview}
	for k, st := range want {
		require.Equal(t, st, got[k].QueueState, k)
	}
	require.Equal(t, reverify.DecisionConfirmedLive, got["same"].Decision, "the first run's decision applies")
	require.Empty(t, got["moved"].Decision)

	page, err := s.ReviewQueuePage(ctx, postgres.QueueQuery{RunID: second.ID, Delta: 10, Limit: 10})
	require.NoError(t, err)
	var todo []string
	for _, it := range page.Items {
		todo = append(todo, it.Key)
	}
	require.Equal(t, []string{"newimage", "undecided", "moved"}, todo, "only what is still to do, lowest scores first")

	got = queueStates(t, s, postgres.QueueQuery{RunID: second.ID, Delta: 20})
	require.Equal(t, reverify.QueueDecided, got["moved"].QueueState, "the delta is the caller's")
	require.Equal(t, reverify.QueueToReview, got["newimage"].QueueState, "a new image comes back whatever the delta")

	// psql reads the same with the view's settings.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SET LOCAL reverify.review_rescore_delta = 20`)
	require.NoError(t, err)
	var state, requeued string
	require.NoError(t, tx.QueryRow(ctx, `SELECT queue_state, coalesce(requeued, '') FROM review_queue
		WHERE run_id = $1 AND object_key = 'newimage'`, second.ID).Scan(&state, &requeued))
	require.Equal(t, "to_review", state)
	require.Equal(t, "new_image", requeued)
	require.NoError(t, tx.QueryRow(ctx, `SELECT queue_state FROM review_queue
		WHERE run_id = $1 AND object_key = 'moved'`, second.ID).Scan(&state))
	require.Equal(t, "decided", state)

	tbl, err := s.View(ctx, "reviews", first.ID, 0)
	require.NoError(t, err)
	require.Len(t, tbl.Rows, 4, "the reviews view lists the decisions of the run")
}

// TestReviewQueuePages: keyset pages cover the queue once, in order.
func TestReviewQueuePages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	var objs []outcome
	for i := range 11 {
		var sc *float64
		if i%4 != 0 {
			sc = pts(float64(40 - i)) // some share a score: the key breaks the tie
			if i%3 == 0 {
				sc = pts(10)
			}
		}
		objs = append(objs, outcome{fmt.Sprintf("o%02d", i), "e", sc})
	}
	objs = append(objs, outcome{"high", "e", pts(80)})
	run := runOf(t, s, "paged", objs)

	var keys []string
	var after postgres.QueueCursor
	pages := 0
	for {
		page, err := s.ReviewQueuePage(ctx, postgres.QueueQuery{RunID: run.ID, After: after, Limit: 4})
		require.NoError(t, err)
		pages++
		for _, it := range page.Items {
			keys = append(keys, it.Key)
		}
		if page.Next == (postgres.QueueCursor{}) {
			break
		}
		after = page.Next
	}
	require.Equal(t, []string{"o00", "o04", "o08", "o03", "o06", "o09", "o10", "o07", "o05", "o02", "o01"}, keys,
		"refusals first, then by score and key; none twice, none missed")
	require.Equal(t, 3, pages)
}

// TestClaims: concurrent claimers never share an object; a claim is
// renewed, expires when abandoned, and is released by the decision.
func TestClaims(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := testenv.LedgerWithPool(t)
	var objs []outcome
	for i := range 8 {
		objs = append(objs, outcome{fmt.Sprintf("c%02d", i), "e", pts(float64(i))})
	}
	run := runOf(t, s, "claims", objs)
	q := func(who string) postgres.ClaimQuery {
		return postgres.ClaimQuery{RunID: run.ID, Reviewer: who, Delta: -1, TTL: 10 * time.Minute}
	}

	const claimers = 20
	var wg sync.WaitGroup
	results := make([]postgres.Claim, claimers)
	oks := make([]bool, claimers)
	errs := make([]error, claimers)
	start := make(chan struct{})
	for i := range claimers {
		wg.Go(func() {
			<-start
			results[i], oks[i], errs[i] = s.ClaimNext(ctx, q(fmt.Sprintf("reviewer-%02d", i)))
		})
	}
	close(start)
	wg.Wait()
	seen := map[string]string{}
	for i := range claimers {
		require.NoError(t, errs[i])
		if !oks[i] {
			continue
		}
		who := fmt.Sprintf("reviewer-%02d", i)
		require.NotContains(t, seen, results[i].Item.Key, "%s and %s got the same object", seen[results[i].Item.Key], who)
		seen[results[i].Item.Key] = who
	}
	require.Len(t, seen, len(objs), "every object claimed once; the others got nothing")

	// The same reviewer asking again keeps (and renews) their object.
	holder := seen["c03"]
	again, ok, err := s.ClaimNext(ctx, q(holder))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "c03", again.Item.Key)
	renewed, err := s.RenewClaim(ctx, run.ID, reverify.ObjectRef{Bucket: "b", Key: "c03"}, holder, time.Hour)
	require.NoError(t, err)
	require.True(t, renewed.After(again.ExpiresAt), "renewing moves the expiry")
	_, err = s.RenewClaim(ctx, run.ID, reverify.ObjectRef{Bucket: "b", Key: "c03"}, "someone-else", time.Hour)
	require.ErrorIs(t, err, postgres.ErrClaimLost)

	// Another reviewer cannot decide an object held by someone else.
	_, err = s.Decide(ctx, postgres.Review{RunID: run.ID, Bucket: "b", Key: "c03", Decision: reverify.DecisionConfirmedLive, Reviewer: "zed"})
	require.ErrorIs(t, err, postgres.ErrClaimed)

	// An abandoned claim expires: the object goes to the next who asks.
	_, err = pool.Exec(ctx, `UPDATE review_claims SET expires_at = now() - interval '1 second' WHERE object_key = 'c05'`)
	require.NoError(t, err)
	taken, ok, err := s.ClaimNext(ctx, q("late"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "c05", taken.Item.Key)
	_, err = s.RenewClaim(ctx, run.ID, reverify.ObjectRef{Bucket: "b", Key: "c05"}, seen["c05"], time.Hour)
	require.ErrorIs(t, err, postgres.ErrClaimLost, "the first holder lost it")

	// The decision releases the claim, and the object is no one's to claim.
	_, err = s.Decide(ctx, postgres.Review{RunID: run.ID, Bucket: "b", Key: "c03", Decision: reverify.DecisionConfirmedLive, Reviewer: holder})
	require.NoError(t, err)
	var claims int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM review_claims WHERE object_key = 'c03'`).Scan(&claims))
	require.Zero(t, claims)
	require.NoError(t, s.ReleaseClaim(ctx, reverify.ObjectRef{Bucket: "b", Key: "c04"}, seen["c04"]))
	next, ok, err := s.ClaimNext(ctx, q(holder))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "c04", next.Item.Key, "the released object, not the decided one")
	_, ok, err = s.ClaimNext(ctx, q("nobody-left"))
	require.NoError(t, err)
	require.False(t, ok, "everything else is held")
}

// TestFourEyes: a suspected spoof waits for a second, different reviewer,
// who confirms or overturns it; both decisions are in reviews and the
// audit log.
func TestFourEyes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := testenv.LedgerWithPool(t)
	run := runOf(t, s, "four eyes", []outcome{{"spoof", "e1", pts(3)}, {"other", "e2", pts(4)}})
	dash := func(r postgres.Review) postgres.Review {
		r.RunID, r.Bucket, r.Source, r.FourEyes = run.ID, "b", reverify.AuditFromDashboard, true
		return r
	}
	claim := func(who string) (postgres.Claim, bool) {
		c, ok, err := s.ClaimNext(ctx, postgres.ClaimQuery{RunID: run.ID, Reviewer: who, Delta: -1, TTL: time.Minute})
		require.NoError(t, err)
		return c, ok
	}

	for _, k := range []string{"spoof", "other"} {
		c, ok := claim("ann")
		require.True(t, ok)
		require.Equal(t, k, c.Item.Key)
		first, err := s.Decide(ctx, dash(postgres.Review{Key: k, Decision: reverify.DecisionSuspectedSpoof, Reviewer: "ann"}))
		require.NoError(t, err)
		require.Equal(t, reverify.ReviewAwaitingSecond, first.State)
	}
	got := queueStates(t, s, postgres.QueueQuery{RunID: run.ID, Delta: -1})
	require.Equal(t, reverify.QueueNeedsSecondReview, got["spoof"].QueueState)
	_, ok := claim("ann")
	require.False(t, ok, "ann is not offered her own decisions")
	_, err := s.Decide(ctx, dash(postgres.Review{Key: "spoof", Decision: reverify.DecisionSuspectedSpoof, Reviewer: "ann"}))
	require.ErrorIs(t, err, postgres.ErrSecondReviewer, "ann cannot confirm her own")

	c, ok := claim("bob")
	require.True(t, ok)
	require.Equal(t, "spoof", c.Item.Key)
	require.Equal(t, reverify.QueueNeedsSecondReview, c.Item.QueueState)
	confirm, err := s.Decide(ctx, dash(postgres.Review{Key: "spoof", Decision: reverify.DecisionSuspectedSpoof, Reviewer: "bob"}))
	require.NoError(t, err)
	require.Equal(t, reverify.ReviewFinal, confirm.State)
	require.NotNil(t, confirm.SecondOf)
	c, ok = claim("carl")
	require.True(t, ok)
	require.Equal(t, "other", c.Item.Key)
	overturn, err := s.Decide(ctx, dash(postgres.Review{Key: "other", Decision: reverify.DecisionConfirmedLive, Reviewer: "carl"}))
	require.NoError(t, err)
	require.Equal(t, reverify.ReviewFinal, overturn.State)

	got = queueStates(t, s, postgres.QueueQuery{RunID: run.ID, Delta: -1})
	require.Equal(t, reverify.QueueDecided, got["spoof"].QueueState)
	require.Equal(t, reverify.DecisionSuspectedSpoof, got["spoof"].Decision)
	require.Equal(t, reverify.DecisionConfirmedLive, got["other"].Decision, "overturned")

	rows, err := pool.Query(ctx, `SELECT actor, detail->>'decision', detail->>'state', coalesce(detail->>'first_reviewer', '')
		FROM audit_log WHERE action = 'review.decide' AND key_hash = $1 ORDER BY id`, reverify.KeyHash("b", "spoof"))
	require.NoError(t, err)
	var trail []string
	for rows.Next() {
		var a, d, st, f string
		require.NoError(t, rows.Scan(&a, &d, &st, &f))
		trail = append(trail, a+" "+d+" "+st+" "+f)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"ann suspected_spoof awaiting_second ", "bob suspected_spoof final ann"}, trail)

	tbl, err := s.View(ctx, "reviews", run.ID, 0)
	require.NoError(t, err)
	require.Len(t, tbl.Rows, 4, "both decisions of both objects")
}
