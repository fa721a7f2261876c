package campaign_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/campaign"
	"reverify/internal/testenv"
	"reverify/report"
	"reverify/storage/postgres"
)

// redisHolding returns the Redis keys of the test's queues whose name or
// value holds needle.
func redisHolding(t *testing.T, addr, queue, needle string) []string {
	t.Helper()
	ctx := context.Background()
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	var out []string
	iter := rdb.Scan(ctx, 0, "asynq:{"+queue+"*", 500).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		var vals []string
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				vals = append(vals, f, v)
			}
		case "list":
			vals = rdb.LRange(ctx, k, 0, -1).Val()
		case "zset":
			vals = rdb.ZRange(ctx, k, 0, -1).Val()
		case "set":
			vals = rdb.SMembers(ctx, k).Val()
		case "string":
			vals = []string{rdb.Get(ctx, k).Val()}
		}
		if strings.Contains(k, needle) || strings.Contains(strings.Join(vals, "\x00"), needle) {
			out = append(out, k)
		}
	}
	require.NoError(t, iter.Err())
	return out
}

// TestEraseAndPruneEndToEnd: two runs name a data subject; one has its
// result, API call, review and a completion report, the other still has
// the subject's task in Redis. Erasing the subject leaves nothing of its
// key in any table or in Redis but the hashed invoice evidence, keeps the
// counters equal to the rows, lists the report and is audited. Pruning the
// ended runs then does the same for every object of them.
func TestEraseAndPruneEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, db := testenv.LedgerWithPool(t)
	addr := testenv.RedisAddr(t)
	redisOpt := asynq.RedisClientOpt{Addr: addr}
	client := asynq.NewClient(redisOpt)
	t.Cleanup(func() { client.Close() })
	insp := asynq.NewInspector(redisOpt)
	t.Cleanup(func() { insp.Close() })
	svc := campaign.New(campaign.Deps{Ledger: store, Queue: client, Reports: report.NewWriter(store, nil), Tasks: insp})
	b := &bundle{svc: svc, store: store, queue: testenv.Queue(t), redis: redisOpt, insp: insp}
	dpo := reverify.Actor{Who: "dpo@example", Why: "GDPR Art. 17 request 4711", Source: reverify.AuditFromCLI, From: "laptop"}

	subject := reverify.ObjectRef{Bucket: "b", Key: "people/Zoë Example/selfie-2024.jpg"}
	others := []string{"people/Ann Other/selfie.jpg", "people/Bo Third/selfie.jpg"}
	ks := append([]string{subject.Key}, others...)

	// Run A: every object scored (a paid call each), the subject reviewed,
	// a completion report written.
	a := b.fill(t, campaign.Spec{Actor: dpo}, ks, campaign.FillOptions{})
	for i, k := range ks {
		o := reverify.ObjectRef{Bucket: "b", Key: k}
		id, st, err := store.BeginCall(ctx, a.Run.ID, o, 0)
		require.NoError(t, err)
		require.Equal(t, postgres.CallRecorded, st)
		score := 20 + float64(i)
		tx := fmt.Sprintf("vendor-tx-%d", i)
		require.NoError(t, store.FinishCall(ctx, postgres.Call{ID: id, Outcome: reverify.OutcomeScored, Score: &score, TransactionID: tx},
			a.Run.ID, o, &postgres.Result{RunID: a.Run.ID, Object: o, Status: reverify.StatusScored, Score: &score, TransactionID: tx}))
	}
	require.NoError(t, store.RecordReview(ctx, postgres.Review{RunID: a.Run.ID, Bucket: "b", Key: subject.Key,
		Decision: reverify.DecisionSuspectedSpoof, Note: "printed photo", Reviewer: "rita", Source: reverify.AuditFromDashboard, From: "10.1.2.3:4444"}))
	dir := t.TempDir()
	where, err := svc.WriteReport(ctx, a.Run.ID, dir, dpo)
	require.NoError(t, err)
	csv, err := os.ReadFile(where)
	require.NoError(t, err)
	require.Contains(t, string(csv), subject.Key)

	// Run B: nothing done yet, every task in the queue.
	bRun := b.fill(t, campaign.Spec{}, ks, campaign.FillOptions{})
	require.EqualValues(t, 3, b.feed(t, 100).Dispatched)
	require.NotEmpty(t, redisHolding(t, addr, b.queue, subject.Key), "the subject's task is queued")
	// One task of another subject is archived, as a task that failed for
	// good is: erasure and pruning look there too.
	pending, err := insp.ListPendingTasks(b.queue)
	require.NoError(t, err)
	for _, ti := range pending {
		if strings.Contains(string(ti.Payload), others[1]) {
			require.NoError(t, insp.ArchiveTask(b.queue, ti.ID))
		}
	}
	// In run B the subject's image was read first: it owns the content,
	// and another subject's copy of the same bytes waits for it.
	selfie := sha256.Sum256([]byte("the subject's selfie"))
	claim := func(key string) postgres.ContentClaim {
		t.Helper()
		c, err := store.ClaimContent(ctx, postgres.Content{RunID: bRun.Run.ID, Object: reverify.ObjectRef{Bucket: "b", Key: key}, SHA256: selfie})
		require.NoError(t, err)
		return c.Claim
	}
	require.Equal(t, postgres.ContentOwned, claim(subject.Key))
	require.Equal(t, postgres.ContentOwnerBusy, claim(others[0]))
	require.NotEmpty(t, testenv.TextHolding(t, db, subject.Key))

	e, err := svc.Erase(ctx, []reverify.ObjectRef{subject}, dpo)
	require.NoError(t, err)
	require.Equal(t, 1, e.Subjects)
	require.Equal(t, []int64{2, 1, 1, 1, 1}, []int64{e.Verifications, e.Reviews, e.APICallsHashed, e.TasksDeleted, e.ContentClaims})
	require.Len(t, e.Runs, 2)
	require.Equal(t, []campaign.ReportRef{{RunID: a.Run.ID, Location: where, Subjects: 1}}, e.Reports)

	require.Empty(t, testenv.TextHolding(t, db, subject.Key), "no table holds the key")
	require.Empty(t, redisHolding(t, addr, b.queue, subject.Key), "no task holds the key")
	require.Len(t, redisHolding(t, addr, b.queue, "people/"), 2, "the other subjects' tasks stay")
	require.Empty(t, testenv.RunsWithCountersOff(t, db))
	require.Equal(t, postgres.ContentOwned, claim(others[0]), "the copy takes the erased owner's claim over")
	var evidence int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM api_calls WHERE key_hashed AND object_key = $1
		AND transaction_id = 'vendor-tx-0'`, reverify.KeyHash(subject.Bucket, subject.Key)).Scan(&evidence))
	require.Equal(t, 1, evidence, "the invoice evidence stays, by key hash")
	p, err := svc.Run(ctx, bRun.Run.ID)
	require.NoError(t, err)
	require.EqualValues(t, 2, p.Total)

	audit, err := store.AuditLog(ctx, postgres.AuditFilter{Actor: dpo.Who})
	require.NoError(t, err)
	var actions []reverify.AuditAction
	for _, en := range audit {
		actions = append(actions, en.Action)
	}
	require.Equal(t, []reverify.AuditAction{reverify.AuditErase, reverify.AuditReportWrite, reverify.AuditRunCreate}, actions)
	require.Equal(t, reverify.KeyHash(subject.Bucket, subject.Key), audit[0].KeyHash)
	require.Equal(t, dpo.Why, audit[0].Detail["reason"])

	_, err = svc.Erase(ctx, []reverify.ObjectRef{{Bucket: "b"}}, dpo)
	require.ErrorIs(t, err, campaign.ErrInvalidSpec)

	// Prune: a run not ended stays; the dry run changes nothing.
	pr, err := svc.Prune(ctx, time.Nanosecond, true, dpo)
	require.NoError(t, err)
	require.Empty(t, pr.Runs)
	done, err := store.CompleteFinishedRuns(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{a.Run.ID}, done)
	_, _, err = svc.Cancel(ctx, bRun.Run.ID, dpo)
	require.NoError(t, err)
	before := testenv.TextHolding(t, db, others[0])
	pr, err = svc.Prune(ctx, time.Nanosecond, true, dpo)
	require.NoError(t, err)
	require.Len(t, pr.Runs, 2)
	require.Equal(t, []campaign.ReportRef{{RunID: a.Run.ID, Location: where}}, pr.Reports)
	require.Equal(t, before, testenv.TextHolding(t, db, others[0]), "a dry run changes nothing")

	_, err = svc.Prune(ctx, 0, false, dpo)
	require.ErrorIs(t, err, campaign.ErrInvalidSpec)
	pr, err = svc.Prune(ctx, time.Nanosecond, false, dpo)
	require.NoError(t, err)
	require.Len(t, pr.Runs, 2)
	require.EqualValues(t, 2, pr.TasksDeleted, "run B's tasks leave the queue, the archived one too")
	for _, k := range others {
		require.Empty(t, testenv.TextHolding(t, db, k), k)
		require.Empty(t, redisHolding(t, addr, b.queue, k), k)
	}
	require.Empty(t, testenv.RunsWithCountersOff(t, db))
	var hashed int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM api_calls WHERE key_hashed AND transaction_id IS NOT NULL`).Scan(&hashed))
	require.Equal(t, 3, hashed, "every paid call stays as evidence")
	pr, err = svc.Prune(ctx, time.Nanosecond, false, dpo)
	require.NoError(t, err)
	require.Empty(t, pr.Runs, "pruned once")
	pruned, err := store.AuditLog(ctx, postgres.AuditFilter{Action: reverify.AuditPrune})
	require.NoError(t, err)
	require.Len(t, pruned, 2)
}
