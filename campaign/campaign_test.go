package campaign_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/campaign"
	"reverify/internal/testenv"
	"reverify/report"
	"reverify/storage/objects"
	"reverify/storage/postgres"
	"reverify/tasks"
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
	d := campaign.Deps{Ledger: store, Queue: client, Objects: objs, Reports: report.NewWriter(store, nil)}
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

// feed runs one round of a feeder over the test's ledger with the given
// window, and returns what it did.
func (b *bundle) feed(t *testing.T, window int) campaign.FeedStats {
	t.Helper()
	client := asynq.NewClient(b.redis)
	t.Cleanup(func() { client.Close() })
	f := campaign.NewFeeder(b.store, client, nil, nil, campaign.FeederConfig{Window: window})
	require.NoError(t, f.Cycle(context.Background()))
	return f.Stats()
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
		{"reuse without a window", campaign.Spec{Source: prefix, ReuseResults: true}, "needs not-verified-since"},
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
// recorded but sends nothing until it is confirmed, not even while it is
// counted; a run under it starts at once. The feeder then queues one task
// per object on the priority's queue.
func TestFillHoldsThenConfirmDispatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	me := reverify.Actor{Who: "tester"}

	sp := campaign.Spec{Gate: campaign.Gate{Above: 5}, Priority: reverify.PriorityHigh, Actor: me, Queue: b.queue}
	sp.Source, _ = lines()
	counting, err := b.svc.Create(ctx, sp)
	require.NoError(t, err)
	require.True(t, campaign.Gated(counting), "a run its gate must count is not dispatched while it is filled")

	held := b.fill(t, sp, keys(8), campaign.FillOptions{Actor: me})
	require.True(t, held.Held)
	require.Equal(t, reverify.RunAwaitingConfirmation, held.Run.Status)
	require.EqualValues(t, 8, held.Run.Total)
	require.EqualValues(t, 8, held.Recorded)
	require.Equal(t, b.queue+"-high", held.Run.Queue)
	require.Zero(t, b.feed(t, 100).Dispatched, "nothing is sent before confirmation")
	require.Zero(t, b.pending(t, held.Run.Queue))

	run, err := b.svc.Confirm(ctx, held.Run.ID, me)
	require.NoError(t, err)
	require.Equal(t, reverify.RunRunning, run.Status)
	_, err = b.svc.Confirm(ctx, held.Run.ID, me)
	require.ErrorIs(t, err, postgres.ErrInvalidTransition)

	small := b.fill(t, campaign.Spec{Gate: campaign.Gate{Above: 5}}, keys(3), campaign.FillOptions{})
	require.False(t, small.Held)
	require.Equal(t, reverify.RunRunning, small.Run.Status)
	require.EqualValues(t, 11, b.feed(t, 100).Dispatched)
	require.Equal(t, 8, b.pending(t, run.Queue))
	require.Equal(t, 3, b.pending(t, b.queue))
}

// TestFillAgainAddsOnlyWhatIsMissing: filling a run again with a longer
// source records only the new objects.
func TestFillAgainAddsOnlyWhatIsMissing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	first := b.fill(t, campaign.Spec{}, keys(5), campaign.FillOptions{})
	require.EqualValues(t, 5, first.Recorded)
	require.Equal(t, reverify.RunRunning, first.Run.Status)

	_, in := lines(keys(7)...)
	src, err := b.svc.Source(ctx, first.Run.Source, in)
	require.NoError(t, err)
	again, err := b.svc.Fill(ctx, first.Run, src, campaign.FillOptions{})
	require.NoError(t, err)
	require.EqualValues(t, 2, again.Recorded)
	require.EqualValues(t, 7, again.Seen)
	require.EqualValues(t, 7, again.Run.Total)
	require.EqualValues(t, 7, b.feed(t, 100).Dispatched)
}

// TestEstimateAppliesTheWorkersRule: the dry run counts as objects to send
// exactly the objects the worker would send.
func TestEstimateAppliesTheWorkersRule(t *testing.T) {
	t.Parallel()
	svc := campaign.New(campaign.Deps{})
	objs := []tasks.Object{
		{Key: "ok.jpg", Size: 100}, {Key: "empty.jpg", Size: 0}, {Key: "huge.jpg", Size: 2000},
		{Key: "manifest.jpg", Size: -1}, {Key: "edge.jpg", Size: 1000}, {Key: "note.txt", Size: 10},
		// The same bytes as ok.jpg by ETag and size: one distinct image.
		{Key: "copy.jpg", Size: 100},
	}
	objs[0].ETag, objs[6].ETag = "0cc175b9c0f1b6a831c399e269772661", "0cc175b9c0f1b6a831c399e269772661"
	objs[4].ETag = objs[0].ETag // same MD5, another size: another image
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
	require.Equal(t, campaign.Estimate{Matched: 6, Send: 4, Distinct: 3, Empty: 1, Large: 1, Unknown: 1, Bytes: 1200, MaxObjectBytes: 1000}, e)
	for _, o := range objs[:5] {
		sent := e.Send > 0 && (o.Size < 0 || reverify.Unsendable(o.Size, 1000) == "")
		require.Equal(t, reverify.Unsendable(o.Size, 1000) == "" || o.Size < 0, sent, o.Key)
	}

	sp.Filters.NotVerifiedSince = reverify.Duration(3600e9)
	_, err = svc.Estimate(context.Background(), sp, src)
	require.ErrorIs(t, err, campaign.ErrNoLedger)
}

// TestRetryGetsTasksOfItsOwn: an object that failed for good left its
// task archived; its retry goes to the back of the run's dispatch order
// with a task of its own, which the feeder queues beside the archived one.
func TestRetryGetsTasksOfItsOwn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	f := b.fill(t, campaign.Spec{}, keys(2), campaign.FillOptions{})
	require.EqualValues(t, 2, b.feed(t, 100).Dispatched)
	obj := reverify.ObjectRef{Bucket: "b", Key: "k/001.jpg"}
	archived := b.taskID(t, f.Run.ID, obj.Key)
	require.NoError(t, b.insp.ArchiveTask(b.queue, archived))
	require.NoError(t, b.store.RecordResult(ctx, postgres.Result{RunID: f.Run.ID, Object: obj, Status: reverify.StatusFailed, Message: "retries exhausted"}))

	run, n, err := b.svc.Retry(ctx, f.Run.ID, []reverify.Status{reverify.StatusFailed}, reverify.Actor{Who: "tester", Why: "again"})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Equal(t, reverify.RunRunning, run.Status)
	require.EqualValues(t, 1, b.feed(t, 100).Dispatched, "the retried object only")
	retried := b.taskID(t, f.Run.ID, obj.Key)
	require.NotEqual(t, archived, retried)
	info, err := b.insp.GetTaskInfo(b.queue, retried)
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStatePending, info.State)

	_, _, err = b.svc.Retry(ctx, f.Run.ID, []reverify.Status{reverify.StatusScored}, reverify.Actor{Who: "tester"})
	require.Error(t, err, "a score is not retried")
}

// taskID is the ID of the task the feeder makes for a pending object of
// bucket b: it carries the object's place in the run's dispatch order.
func (b *bundle) taskID(t *testing.T, runID, key string) string {
	t.Helper()
	next, err := b.store.NextPending(context.Background(), runID, 0, 1000)
	require.NoError(t, err)
	for _, p := range next {
		if p.Object.Key == key {
			return tasks.VerifyPayload{RunID: runID, Bucket: p.Object.Bucket, Key: key, Seq: p.Seq}.TaskID()
		}
	}
	t.Fatalf("%s is not pending", key)
	return ""
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

	where, err := b.svc.WriteReport(context.Background(), run.ID, filepath.Join(dir, "again"), reverify.Actor{})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "again", run.ID, "results.csv"), where)
}

// TestReconcilePutsBackLostTasks: the tasks of a run's dispatched objects
// that Redis lost come back; those it kept are not duplicated.
func TestReconcilePutsBackLostTasks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	f := b.fill(t, campaign.Spec{}, keys(5), campaign.FillOptions{})
	require.EqualValues(t, 3, b.feed(t, 3).Dispatched)
	require.NoError(t, b.insp.DeleteTask(b.queue, b.taskID(t, f.Run.ID, "k/001.jpg")))
	r, err := b.svc.Reconcile(ctx, f.Run.ID)
	require.NoError(t, err)
	require.Equal(t, campaign.Reconciled{Dispatched: 3, Enqueued: 1, Duplicate: 2}, r)
	require.Equal(t, 3, b.pending(t, b.queue), "the window, not the run")
}
