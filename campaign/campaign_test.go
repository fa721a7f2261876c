package campaign_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/campaign"
	"reverify/internal/testenv"
	"reverify/report"
	"reverify/storage/objects"
	"reverify/storage/postgres"
	"reverify/tasks"
	"reverify/worker/fleet"
)

// bundle is one test's campaign service over its own database, queue and
// S3 server.
type bundle struct {
	svc   *campaign.Service
	store *postgres.Store
	s3    testenv.S3Server
	queue string
	redis asynq.RedisClientOpt
	insp  *asynq.Inspector
	deps  campaign.Deps
}

func setup(t *testing.T) *bundle {
	t.Helper()
	store := testenv.Ledger(t)
	srv := testenv.S3(t)
	redisOpt := asynq.RedisClientOpt{Addr: testenv.RedisAddr(t)}
	client := asynq.NewClient(redisOpt)
	t.Cleanup(func() { client.Close() })
	insp := asynq.NewInspector(redisOpt)
	t.Cleanup(func() { insp.Close() })
	objs, err := objects.Open(context.Background(), srv.Config())
	require.NoError(t, err)
	d := campaign.Deps{Ledger: store, Queue: client, Objects: objs, Archive: insp, Reports: report.NewWriter(store, nil)}
	return &bundle{svc: campaign.New(d), store: store, s3: srv, queue: testenv.Queue(t), redis: redisOpt, insp: insp, deps: d}
}

// lines is a manifest source of one key per line in bucket.
func lines(keys ...string) (reverify.Source, campaign.Input) {
	return reverify.Source{Kind: reverify.SourceManifest, Manifest: "-", Bucket: "b"},
		campaign.Input{Manifest: strings.NewReader(strings.Join(keys, "\n") + "\n"), Format: tasks.ManifestFormat("lines")}
}

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k/%03d.jpg", i)
	}
	return out
}

func (b *bundle) fill(t *testing.T, sp campaign.Spec, ks []string, o campaign.FillOptions) campaign.Filled {
	t.Helper()
	ctx := context.Background()
	src, in := lines(ks...)
	sp.Source, sp.Queue = src, b.queue
	run, err := b.svc.Create(ctx, sp)
	require.NoError(t, err)
	s, err := b.svc.Source(ctx, run.Source, in)
	require.NoError(t, err)
	f, err := b.svc.Fill(ctx, run, s, o)
	require.NoError(t, err)
	return f
}

func (b *bundle) pending(t *testing.T, queue string) int {
	t.Helper()
	qi, err := b.insp.GetQueueInfo(queue)
	if err != nil && strings.Contains(err.Error(), "does not exist") {
		return 0
	}
	require.NoError(t, err)
	return qi.Pending
}

func TestSpecValidation(t *testing.T) {
	t.Parallel()
	prefix := reverify.Source{Kind: reverify.SourcePrefix, Bucket: "b", Prefix: "p/"}
	tests := []struct {
		name string
		sp   campaign.Spec
		want string
	}{
		{"no bucket", campaign.Spec{Source: reverify.Source{Kind: reverify.SourcePrefix}}, "needs a bucket"},
		{"no manifest", campaign.Spec{Source: reverify.Source{Kind: reverify.SourceManifest}}, "needs a manifest"},
		{"manifest in fleet", campaign.Spec{Source: reverify.Source{Kind: reverify.SourceManifest, Manifest: "m"}, InFleet: true}, "only a bucket/prefix"},
		{"unknown kind", campaign.Spec{Source: reverify.Source{Kind: "ftp"}}, `unknown source kind "ftp"`},
		{"priority", campaign.Spec{Source: prefix, Priority: "urgent"}, `unknown priority "urgent"`},
		{"threshold", campaign.Spec{Source: prefix, Threshold: &reverify.Threshold{Percent: 120}}, "percent must be 0-100"},
		{"filters", campaign.Spec{Source: prefix, Filters: tasks.Filters{MinSize: 9, MaxSize: 3}}, "min size 9 is above max size 3"},
		{"gate", campaign.Spec{Source: prefix, Gate: campaign.Gate{Above: -1}}, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.sp.Validate()
			require.ErrorIs(t, err, campaign.ErrInvalidSpec)
			require.ErrorContains(t, err, tt.want)
		})
	}
	sp := campaign.Spec{Source: prefix}
	require.NoError(t, sp.Validate())
	require.Equal(t, "s3://b/p/", sp.Name)
	require.Equal(t, tasks.DefaultQueue, sp.Queue)
	require.Equal(t, reverify.PriorityNormal, sp.Priority)
	require.EqualValues(t, reverify.DefaultMaxObjectBytes, sp.MaxObjectBytes)
}

// TestFillHoldsThenConfirmDispatches: a run over its confirmation size is
// recorded but sends nothing until it is confirmed; a run under it starts
// at once; both queue one task per object on the priority's queue.
func TestFillHoldsThenConfirmDispatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	me := reverify.Actor{Who: "tester"}

	held := b.fill(t, campaign.Spec{Gate: campaign.Gate{Above: 5}, Priority: reverify.PriorityHigh, Actor: me}, keys(8), campaign.FillOptions{Actor: me})
	require.True(t, held.Held)
	require.Equal(t, reverify.RunAwaitingConfirmation, held.Run.Status)
	require.EqualValues(t, 8, held.Run.Total)
	require.EqualValues(t, 8, held.Recorded)
	require.Equal(t, b.queue+"-high", held.Run.Queue)
	require.Zero(t, b.pending(t, held.Run.Queue), "nothing is sent before confirmation")

	run, stats, err := b.svc.Confirm(ctx, held.Run.ID, me, nil)
	require.NoError(t, err)
	require.Equal(t, reverify.RunRunning, run.Status)
	require.EqualValues(t, 8, stats.Enqueued)
	require.Equal(t, 8, b.pending(t, run.Queue))
	_, _, err = b.svc.Confirm(ctx, held.Run.ID, me, nil)
	require.ErrorIs(t, err, postgres.ErrInvalidTransition)

	small := b.fill(t, campaign.Spec{Gate: campaign.Gate{Above: 5}}, keys(3), campaign.FillOptions{})
	require.False(t, small.Held)
	require.Equal(t, reverify.RunRunning, small.Run.Status)
	require.EqualValues(t, 3, small.Enqueued)
	require.Equal(t, 3, b.pending(t, b.queue))
}

// TestFillResumeAddsOnlyWhatIsMissing: filling a run again with a longer
// source records only the new objects and puts back a lost task.
func TestFillResumeAddsOnlyWhatIsMissing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	first := b.fill(t, campaign.Spec{}, keys(5), campaign.FillOptions{})
	require.EqualValues(t, 5, first.Enqueued)
	require.Equal(t, reverify.RunRunning, first.Run.Status)

	// Redis loses one task.
	lost := tasks.VerifyPayload{RunID: first.Run.ID, Bucket: "b", Key: "k/000.jpg"}
	require.NoError(t, b.insp.DeleteTask(b.queue, lost.TaskID()))

	_, in := lines(keys(7)...)
	src, err := b.svc.Source(ctx, first.Run.Source, in)
	require.NoError(t, err)
	again, err := b.svc.Fill(ctx, first.Run, src, campaign.FillOptions{Resume: true})
	require.NoError(t, err)
	require.EqualValues(t, 2, again.Recorded)
	require.EqualValues(t, 7, again.Run.Total)
	require.EqualValues(t, 3, again.Enqueued, "two new objects and the lost task")
	require.Equal(t, 7, b.pending(t, b.queue))
}

// TestEstimateAppliesTheWorkersRule: the dry run counts as paid calls
// exactly the objects the worker would send.
func TestEstimateAppliesTheWorkersRule(t *testing.T) {
	t.Parallel()
	svc := campaign.New(campaign.Deps{})
	objs := []tasks.Object{
		{Key: "ok.jpg", Size: 100}, {Key: "empty.jpg", Size: 0}, {Key: "huge.jpg", Size: 2000},
		{Key: "manifest.jpg", Size: -1}, {Key: "edge.jpg", Size: 1000}, {Key: "note.txt", Size: 10},
	}
	src := func(_ context.Context, fn func(tasks.Object) error) error {
		for _, o := range objs {
			if err := fn(o); err != nil {
				return err
			}
		}
		return nil
	}
	sp := campaign.Spec{Source: reverify.Source{Kind: reverify.SourcePrefix, Bucket: "b"}, MaxObjectBytes: 1000,
		Filters: tasks.Filters{Suffixes: []string{".jpg"}}}
	e, err := svc.Estimate(context.Background(), sp, src)
	require.NoError(t, err)
	require.Equal(t, campaign.Estimate{Matched: 5, Send: 3, Empty: 1, Large: 1, Unknown: 1, Bytes: 1100, MaxObjectBytes: 1000}, e)
	for _, o := range objs[:5] {
		sent := e.Send > 0 && (o.Size < 0 || reverify.Unsendable(o.Size, 1000) == "")
		require.Equal(t, reverify.Unsendable(o.Size, 1000) == "" || o.Size < 0, sent, o.Key)
	}

	sp.Filters.NotVerifiedSince = reverify.Duration(3600e9)
	_, err = svc.Estimate(context.Background(), sp, src)
	require.ErrorIs(t, err, campaign.ErrNoLedger)
}

// TestRetryReplacesArchivedTask: an object that failed for good left its
// task archived under the ID its retry must use; Retry replaces it.
func TestRetryReplacesArchivedTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	f := b.fill(t, campaign.Spec{}, keys(2), campaign.FillOptions{})
	obj := reverify.ObjectRef{Bucket: "b", Key: "k/001.jpg"}
	id := tasks.VerifyPayload{RunID: f.Run.ID, Bucket: obj.Bucket, Key: obj.Key}.TaskID()
	require.NoError(t, b.insp.ArchiveTask(b.queue, id))
	require.NoError(t, b.store.RecordResult(ctx, postgres.Result{RunID: f.Run.ID, Object: obj, Status: reverify.StatusFailed, Message: "retries exhausted"}))

	r, err := b.svc.Retry(ctx, f.Run.ID, []reverify.Status{reverify.StatusFailed}, reverify.Actor{Who: "tester", Why: "again"})
	require.NoError(t, err)
	require.EqualValues(t, 1, r.Reset)
	require.EqualValues(t, 2, r.Enqueued, "the archived task is replaced, as is the queued one")
	info, err := b.insp.GetTaskInfo(b.queue, id)
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStatePending, info.State)

	_, err = b.svc.Retry(ctx, f.Run.ID, []reverify.Status{reverify.StatusScored}, reverify.Actor{Who: "tester"})
	require.Error(t, err, "a score is not retried")
}

// TestCancelWritesReport: cancelling a run stops its pending objects and
// writes the completion report it asked for.
func TestCancelWritesReport(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dir := t.TempDir()
	f := b.fill(t, campaign.Spec{ReportTo: dir}, keys(4), campaign.FillOptions{})
	run, n, err := b.svc.Cancel(context.Background(), f.Run.ID, reverify.Actor{Who: "tester", Why: "wrong prefix"})
	require.NoError(t, err)
	require.EqualValues(t, 4, n)
	require.Equal(t, reverify.RunCancelled, run.Status)
	csv, err := os.ReadFile(filepath.Join(dir, run.ID, "results.csv"))
	require.NoError(t, err)
	require.Equal(t, 5, strings.Count(string(csv), "\n"), "header and four cancelled objects")
	require.Contains(t, string(csv), ",cancelled,")

	where, err := b.svc.WriteReport(context.Background(), run.ID, filepath.Join(dir, "again"))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "again", run.ID, "results.csv"), where)
}

// TestReconcileActiveOncePerPeriod: with a shared lock, one of several
// processes puts back lost tasks per period.
func TestReconcileActiveOncePerPeriod(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	f := b.fill(t, campaign.Spec{}, keys(3), campaign.FillOptions{})
	_, err := b.insp.DeleteAllPendingTasks(b.queue)
	require.NoError(t, err)

	rdb := redis.NewClient(&redis.Options{Addr: b.redis.Addr})
	t.Cleanup(func() { rdb.Close() })
	lockName := testenv.Queue(t) // a lock of this test's own
	svc := func(holder string) *campaign.Service {
		d := b.deps
		d.Lock = prefixedLocks{fleet.NewLocks(rdb, holder), lockName}
		return campaign.New(d)
	}
	one, err := svc("a").ReconcileActive(ctx, 0)
	require.NoError(t, err)
	two, err := svc("b").ReconcileActive(ctx, 0)
	require.NoError(t, err)
	require.EqualValues(t, 3, one.Enqueued+two.Enqueued, "the three lost tasks come back once")
	require.True(t, one.Enqueued == 0 || two.Enqueued == 0, "one process did the work")
	require.Equal(t, 3, b.pending(t, b.queue))

	n, err := b.svc.Reconcile(ctx, f.Run.ID)
	require.NoError(t, err)
	require.EqualValues(t, 3, n.Duplicate, "tasks the queue holds are not duplicated")
}

// prefixedLocks keeps a test's locks apart from others on the shared Redis.
type prefixedLocks struct {
	l      *fleet.Locks
	prefix string
}

func (p prefixedLocks) TryLock(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	return p.l.TryLock(ctx, p.prefix+":"+name, max(ttl, time.Minute))
}
