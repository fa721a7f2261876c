package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

// planRun is the size of the run whose hot queries TestHotQueriesUseIndexes
// plans: large enough that a table scan is the planner's choice only when
// no index serves.
const planRun = 1_000_000

// TestHotQueriesUseIndexes runs every query a campaign makes while it goes
// on (show, list, the dashboard's run page, the threshold and completion
// checks, the feeder's top-up, a report page, the result path, retry and
// cancel) against a run of a million objects beside another run, and
// fails when PostgreSQL would read any of verifications or api_calls
// whole: each statement the store sent is planned again with EXPLAIN and
// its arguments.
func TestHotQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	_, err := postgres.Migrate(ctx, dsn)
	require.NoError(t, err)
	var mu sync.Mutex
	type statement struct {
		sql  string
		args []any
	}
	var sent []statement
	store, err := postgres.OpenTraced(ctx, dsn, func(sql string, args []any) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, statement{sql, args})
	})
	require.NoError(t, err)
	t.Cleanup(store.Close)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })

	big, err := store.CreateRun(ctx, postgres.NewRun{Name: "big", Queue: "q"})
	require.NoError(t, err)
	other, err := store.CreateRun(ctx, postgres.NewRun{Name: "other", Queue: "q"})
	require.NoError(t, err)
	start := time.Now()
	seedPlanRun(t, conn, big.ID, planRun)
	seedPlanRun(t, conn, other.ID, 20_000)
	t.Logf("seeded %d rows in %s", planRun+20_000, time.Since(start).Round(time.Millisecond))

	// Each step is a user-visible operation; its statements are checked.
	pendingObj := reverify.ObjectRef{Bucket: "kyc", Key: fmt.Sprintf("subject-%08d/selfie.jpg", planRun)}
	errStop := errors.New("two pages are enough")
	steps := []struct {
		name string
		do   func() error
	}{
		{"runs show", func() error {
			if _, err := store.Progress(ctx, big.ID); err != nil {
				return err
			}
			_, err := store.History(ctx, big.ID)
			return err
		}},
		{"runs list", func() error { _, err := store.RunsWithCounts(ctx, postgres.RunFilter{Limit: 20}); return err }},
		{"dashboard run page", func() error {
			if _, err := store.RunWithCounts(ctx, big.ID); err != nil {
				return err
			}
			if _, err := store.ScoreHistogram(ctx, big.ID); err != nil {
				return err
			}
			if _, err := store.Failures(ctx, big.ID, 100); err != nil {
				return err
			}
			_, err := store.ReviewQueue(ctx, big.ID, 50, 200)
			return err
		}},
		{"review queue pages", func() error {
			page, err := store.ReviewQueuePage(ctx, postgres.QueueQuery{RunID: big.ID, Delta: 10, Limit: 50})
			if err != nil {
				return err
			}
			_, err = store.ReviewQueuePage(ctx, postgres.QueueQuery{RunID: big.ID, Delta: 10, After: page.Next, Limit: 50, All: true})
			return err
		}},
		{"review workspace", func() error {
			q := postgres.ClaimQuery{RunID: big.ID, Reviewer: "ann", Delta: 10, TTL: time.Minute}
			c, ok, err := store.ClaimNext(ctx, q)
			if err != nil || !ok {
				return fmt.Errorf("claim: %v %v", ok, err)
			}
			obj := reverify.ObjectRef{Bucket: c.Item.Bucket, Key: c.Item.Key}
			if _, err := store.ObjectHistory(ctx, obj, 20); err != nil {
				return err
			}
			if _, _, err := store.Item(ctx, big.ID, obj); err != nil {
				return err
			}
			if _, err := store.RenewClaim(ctx, big.ID, obj, "ann", time.Minute); err != nil {
				return err
			}
			_, err = store.Decide(ctx, postgres.Review{RunID: big.ID, Bucket: obj.Bucket, Key: obj.Key,
				Decision: reverify.DecisionSuspectedSpoof, Reviewer: "ann", FourEyes: true})
			if err != nil {
				return err
			}
			_, ok, err = store.ClaimNext(ctx, postgres.ClaimQuery{RunID: big.ID, Reviewer: "bob", Delta: 10, TTL: time.Minute})
			if err != nil || !ok {
				return fmt.Errorf("second claim: %v %v", ok, err)
			}
			return nil
		}},
		{"threshold check", func() error { _, err := store.FailRunsOverThreshold(ctx); return err }},
		{"completion check", func() error { _, err := store.CompleteFinishedRuns(ctx); return err }},
		{"rate sample", func() error { return store.SampleRates(ctx, 0) }},
		{"feeder top-up", func() error {
			runs, err := store.DispatchRuns(ctx)
			if err != nil {
				return err
			}
			for _, r := range runs {
				if _, err := store.InWindow(ctx, r.ID, r.DispatchedSeq); err != nil {
					return err
				}
				next, err := store.NextPending(ctx, r.ID, r.DispatchedSeq, 2000)
				if err != nil {
					return err
				}
				if _, err := store.Dispatched(ctx, r.ID, r.DispatchedSeq); err != nil {
					return err
				}
				if len(next) > 0 {
					if err := store.MarkDispatched(ctx, r.ID, next[len(next)-1].Seq); err != nil {
						return err
					}
				}
			}
			return nil
		}},
		{"completion report pages", func() error {
			n := 0
			err := store.ObjectResults(ctx, big.ID, func(postgres.ObjectResult) error {
				if n++; n > 2*postgres.KeysetPage {
					return errStop
				}
				return nil
			})
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}},
		{"result path", func() error {
			id, st, err := store.BeginCall(ctx, big.ID, pendingObj, time.Minute)
			if err != nil || st != postgres.CallRecorded {
				return fmt.Errorf("begin call: %v %v", st, err)
			}
			score := 77.0
			if err := store.FinishCall(ctx, postgres.Call{ID: id, Outcome: reverify.OutcomeScored, Score: &score},
				big.ID, pendingObj, &postgres.Result{RunID: big.ID, Object: pendingObj, Status: reverify.StatusScored, Score: &score}); err != nil {
				return err
			}
			return store.RecordResult(ctx, postgres.Result{RunID: big.ID, Object: reverify.ObjectRef{Bucket: "kyc",
				Key: fmt.Sprintf("subject-%08d/selfie.jpg", planRun-1)}, Status: reverify.StatusNotFound})
		}},
		{"retry", func() error {
			_, _, err := store.RetryObjects(ctx, big.ID, []reverify.Status{reverify.StatusFailed}, reverify.Actor{Who: "t"})
			return err
		}},
		{"cancel", func() error {
			if _, _, err := store.CancelRun(ctx, big.ID, reverify.Actor{Who: "t"}); err != nil {
				return err
			}
			_, err := store.CancelPending(ctx, 1000)
			return err
		}},
	}
	// The check itself: a query no index serves is caught.
	var raw []byte
	require.NoError(t, conn.QueryRow(ctx, `EXPLAIN (FORMAT JSON) SELECT count(*) FROM verifications
		WHERE run_id = $1::uuid AND message IS NULL`, big.ID).Scan(&raw))
	var control []struct{ Plan planNode }
	require.NoError(t, json.Unmarshal(raw, &control))
	require.NotEmpty(t, control[0].Plan.seqScans(), "a scan of the whole run is seen")

	for _, st := range steps {
		mu.Lock()
		sent = sent[:0]
		mu.Unlock()
		require.NoError(t, st.do(), st.name)
		mu.Lock()
		stmts := append([]statement(nil), sent...)
		mu.Unlock()
		require.NotEmpty(t, stmts, st.name)
		for _, s := range stmts {
			if !plannable(s.sql) {
				continue
			}
			var plan []struct{ Plan planNode }
			var raw []byte
			require.NoError(t, conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+s.sql, s.args...).Scan(&raw), "%s: %s", st.name, s.sql)
			require.NoError(t, json.Unmarshal(raw, &plan))
			for _, scan := range plan[0].Plan.seqScans() {
				t.Errorf("%s reads %s whole:\n%s", st.name, scan, strings.TrimSpace(s.sql))
			}
		}
	}
}

// seedPlanRun gives a run n objects: 38% scored, 1% rejected, 0.5%
// failed, 0.5% not found, the rest pending (2,000 of them dispatched), and
// a call per finished object, then updates the planner's statistics. The
// run's partitions are filled before they are attached, so their indexes
// are built once, not row by row; the counters are filled to match.
func seedPlanRun(t *testing.T, conn *pgx.Conn, runID string, n int) {
	t.Helper()
	ctx := context.Background()
	suffix := strings.ReplaceAll(runID, "-", "")
	v, c := pgx.Identifier{"verifications_" + suffix}.Sanitize(), pgx.Identifier{"api_calls_" + suffix}.Sanitize()
	done := int64(n * 40 / 100)
	for _, sql := range []string{
		`SET maintenance_work_mem = '256MB'`,
		`ALTER TABLE verifications DETACH PARTITION ` + v,
		`ALTER TABLE api_calls DETACH PARTITION ` + c,
	} {
		_, err := conn.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	_, err := conn.Exec(ctx, `
		INSERT INTO `+v+` (run_id, bucket, object_key, status, liveness_score, completed_at, attempts)
		SELECT $1::uuid, 'kyc', 'subject-' || lpad(g::text, 8, '0') || '/selfie.jpg',
		       CASE WHEN g <= $3::bigint * 95 / 100 THEN 'scored' WHEN g <= $3::bigint * 975 / 1000 THEN 'rejected'
		            WHEN g <= $3::bigint * 9875 / 10000 THEN 'failed' WHEN g <= $3::bigint THEN 'not_found' ELSE 'pending' END,
		       CASE WHEN g <= $3::bigint * 95 / 100 THEN (g::bigint * 7919 % 10000) / 100.0 END,
		       CASE WHEN g <= $3::bigint THEN now() END,
		       CASE WHEN g <= $3::bigint THEN 1 ELSE 0 END
		FROM generate_series(1, $2::int) g`, runID, n, done)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `
		INSERT INTO `+c+` (run_id, bucket, object_key, attempt, outcome, transaction_id, answered_at)
		SELECT run_id, bucket, object_key, 1, 'scored', 'tx-' || object_key, now()
		FROM `+v+` WHERE status <> 'pending'`)
	require.NoError(t, err)
	for _, sql := range []string{
		`ALTER TABLE verifications ATTACH PARTITION ` + v + ` FOR VALUES IN ('` + runID + `')`,
		`ALTER TABLE api_calls ATTACH PARTITION ` + c + ` FOR VALUES IN ('` + runID + `')`,
		`INSERT INTO run_counts (run_id, status, band, shard, objects, score_sum, score_min, score_max)
		 SELECT run_id, status, reverify_score_band(status, liveness_score), 0, count(*), coalesce(sum(liveness_score), 0),
		        min(liveness_score), max(liveness_score) FROM ` + v + ` GROUP BY 1, 2, 3`,
		`INSERT INTO run_calls (run_id, shard, calls) SELECT run_id, 0, count(*) FROM ` + c + ` GROUP BY 1`,
	} {
		_, err := conn.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	_, err = conn.Exec(ctx, `UPDATE runs SET status = 'running', started_at = now(), total = $2,
		dispatched_seq = (SELECT min(seq) + 2000 FROM verifications WHERE run_id = $1::uuid AND status = 'pending')
		WHERE id = $1::uuid`, runID, n)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `ANALYZE verifications, api_calls, runs, run_counts, run_calls`)
	require.NoError(t, err)
}

// plannable reports whether EXPLAIN takes the statement.
func plannable(sql string) bool {
	s := strings.ToUpper(strings.TrimSpace(sql))
	for _, p := range []string{"SELECT", "WITH", "INSERT", "UPDATE", "DELETE"} {
		if strings.HasPrefix(s, p) {
			return !strings.Contains(s, "SET_CONFIG(") && !strings.Contains(s, "REVERIFY_ADD_RUN_PARTITIONS") &&
				!strings.Contains(s, "REVERIFY_DROP_RUN_PARTITIONS")
		}
	}
	return false
}

// planNode is a node of EXPLAIN (FORMAT JSON)'s plan.
type planNode struct {
	NodeType     string     `json:"Node Type"`
	RelationName string     `json:"Relation Name"`
	Plans        []planNode `json:"Plans"`
}

// seqScans lists the ledger tables (or their partitions) a plan reads
// whole.
func (n planNode) seqScans() []string {
	var out []string
	if n.NodeType == "Seq Scan" && (strings.HasPrefix(n.RelationName, "verifications") || strings.HasPrefix(n.RelationName, "api_calls")) {
		out = append(out, n.RelationName)
	}
	for _, c := range n.Plans {
		out = append(out, c.seqScans()...)
	}
	return out
}
