package worker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"reverify"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify/campaign"
	"reverify/internal/testenv"
	"reverify/liveness"
	"reverify/liveness/fakeapi"
	"reverify/storage/objects"
	"reverify/storage/postgres"
	"reverify/tasks"
	"reverify/worker"
	"reverify/worker/fleet"
)

const apiKey = "test-key-5f1e"

// bundle is one test's private pipeline: its own database, queue, S3
// server and fake API.
type bundle struct {
	store  *postgres.Store
	db     *pgxpool.Pool // the same database, for checks in SQL
	s3     testenv.S3Server
	objs   *objects.Store
	redis  asynq.RedisClientOpt
	queue  string
	fake   *fakeapi.Server
	apiURL string
	// What a test changes in the worker's dependencies before it starts.
	ledger   worker.Ledger  // what the handler writes to; store unless set
	runGate  worker.RunGate // none unless set
	limits   worker.RunLimiter
	observer worker.Observer // none unless set
}

func setup(t *testing.T, fakeOpts fakeapi.Options) *bundle {
	t.Helper()
	store, db := testenv.LedgerWithPool(t)
	store.GroupWrites(2) // as the worker command does
	s3 := testenv.S3(t)
	fakeOpts.APIKey = apiKey
	fake := fakeapi.New(fakeOpts)
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)
	objs, err := objects.Open(context.Background(), s3.Config()) // as the worker command does
	require.NoError(t, err)
	return &bundle{
		store: store, db: db, s3: s3, objs: objs,
		redis: asynq.RedisClientOpt{Addr: testenv.RedisAddr(t)}, queue: testenv.Queue(t),
		fake: fake, apiURL: api.URL,
	}
}

// startWorker runs a worker configured by cfg (and the test's own queue,
// fleet prefix, stash and quick timings) until the test ends, or until
// the returned stop is called.
func (b *bundle) startWorker(t *testing.T, key string, cfg worker.Config) (stop func()) {
	t.Helper()
	api, err := liveness.New(b.apiURL, key, liveness.NewHTTPClient(20, 5*time.Second))
	require.NoError(t, err)
	var ledger worker.Ledger = b.store
	if b.ledger != nil {
		ledger = b.ledger
	}
	cfg.Concurrency = 20
	cfg.Lanes = 3 // several fetch loops, as at production concurrency
	cfg.Queues = map[string]int{b.queue: 1}
	cfg.CloseRunsEvery = 100 * time.Millisecond
	cfg.RetryCheckEvery = 200 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Backoff = worker.Backoff{Base: 50 * time.Millisecond, Cap: 300 * time.Millisecond, Min: 10 * time.Millisecond}
	cfg.Fleet.Prefix = b.fleetPrefix()
	cfg.StashPrefix, cfg.StashTTL = b.stashPrefix(), time.Hour
	w, err := worker.New(worker.Deps{
		Objects: b.objs, API: api, Ledger: ledger, Redis: b.redis, Runs: b.store,
		RunGate: b.runGate, RunLimits: b.limits, Observer: b.observer,
	}, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return stop
}

// fleetPrefix keeps the test's fleet state apart in the shared Redis.
func (b *bundle) fleetPrefix() string { return "{" + b.queue + "}:" }

func (b *bundle) stashPrefix() string { return b.queue + ":outcome:" }

// enqueued is what bundle.enqueue did.
type enqueued struct {
	tasks.Stats
	Enqueued int64 // tasks the feeder added to the queue
}

// enqueue records src into run, starts it and runs one round of a feeder
// whose window holds every object, as the fleet's feeder would; opts are
// added to every task.
func (b *bundle) enqueue(t *testing.T, run reverify.Run, src tasks.Source, opts ...asynq.Option) enqueued {
	t.Helper()
	ctx := context.Background()
	stats, err := tasks.NewRecorder(b.store).Record(ctx, run.ID, src, nil)
	require.NoError(t, err)
	require.NoError(t, b.store.StartRun(ctx, run.ID))
	f := b.feeder(t, opts...)
	require.NoError(t, f.Cycle(ctx))
	return enqueued{Stats: stats, Enqueued: f.Stats().Dispatched}
}

// taskID is the ID of the task the feeder made for a pending object.
func (b *bundle) taskID(t *testing.T, runID string, obj reverify.ObjectRef) string {
	t.Helper()
	pending, err := b.store.NextPending(context.Background(), runID, 0, 1<<20)
	require.NoError(t, err)
	for _, p := range pending {
		if p.Object.Bucket == obj.Bucket && p.Object.Key == obj.Key {
			return tasks.VerifyPayload{RunID: runID, Bucket: obj.Bucket, Key: obj.Key, Seq: p.Seq}.TaskID()
		}
	}
	t.Fatalf("%s/%s is not pending", obj.Bucket, obj.Key)
	return ""
}

// feeder returns a feeder of the test's ledger with a window for every
// object; opts are added to every task it enqueues.
func (b *bundle) feeder(t *testing.T, opts ...asynq.Option) *campaign.Feeder {
	t.Helper()
	client := asynq.NewClient(b.redis)
	t.Cleanup(func() { client.Close() })
	return campaign.NewFeeder(b.store, taskOptions{client, opts}, nil, nil, campaign.FeederConfig{Window: 1 << 20})
}

// taskOptions adds options to every task it enqueues.
type taskOptions struct {
	*asynq.Client
	opts []asynq.Option
}

func (q taskOptions) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	return q.Client.EnqueueContext(ctx, t, append(opts, q.opts...)...)
}

// waitDrained waits until the queue holds no task and at least processed
// tasks have been done.
func (b *bundle) waitDrained(t *testing.T, processed int) {
	t.Helper()
	insp := asynq.NewInspector(b.redis)
	t.Cleanup(func() { insp.Close() })
	require.Eventually(t, func() bool {
		qi, err := insp.GetQueueInfo(b.queue)
		return err == nil && qi.Pending+qi.Active+qi.Retry+qi.Scheduled == 0 && qi.Processed >= processed
	}, 20*time.Second, 20*time.Millisecond)
}

// images creates bucket with a distinct face-sized JPEG under each key.
func (b *bundle) images(t *testing.T, bucket string, keys ...string) []string {
	t.Helper()
	b.s3.CreateBucket(t, bucket)
	for i, k := range keys {
		b.s3.PutObject(t, bucket, k, fakeapi.GenerateJPEG(int64(i), 80, 80))
	}
	return keys
}

func (b *bundle) newRun(t *testing.T) reverify.Run {
	t.Helper()
	run, err := b.store.CreateRun(context.Background(), postgres.NewRun{Name: t.Name(), Queue: b.queue, Source: reverify.Source{Kind: reverify.SourceManifest, Manifest: "test"}})
	require.NoError(t, err)
	return run
}

func (b *bundle) waitForStatus(t *testing.T, runID string, status reverify.RunStatus, within time.Duration) postgres.Progress {
	t.Helper()
	var p postgres.Progress
	require.Eventually(t, func() bool {
		var err error
		p, err = b.store.Progress(context.Background(), runID)
		require.NoError(t, err)
		return p.Run.Status == status
	}, within, 50*time.Millisecond, "run %s never became %s (last: %+v)", runID, status, p.ByStatus)
	return p
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func withMissing(src tasks.Source, bucket string, keys ...string) tasks.Source {
	return func(ctx context.Context, fn func(tasks.Object) error) error {
		if err := src(ctx, fn); err != nil {
			return err
		}
		for _, k := range keys {
			if err := fn(tasks.Object{Bucket: bucket, Key: k, Size: -1}); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestPipelineEndToEnd sends a prefix of good and bad objects through real
// S3, Redis, PostgreSQL and the fake API (with 429s and 5xx switched on) and
// checks every object's terminal row against what the API answered.
func TestPipelineEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, fakeapi.Options{RateLimitRate: 0.15, RetryAfter: time.Second, ErrorRate: 0.1, Seed: 42})
	ctx := context.Background()
	const bucket = "kyc-images"
	b.s3.CreateBucket(t, bucket)

	type want struct {
		status reverify.Status
		code   int
		body   []byte
	}
	objectsWant := map[string]want{}
	put := func(key string, body []byte, status reverify.Status, code int) {
		b.s3.PutObject(t, bucket, key, body)
		objectsWant[key] = want{status: status, code: code, body: body}
	}
	for i := range 24 {
		put("selfies/jpeg-"+string(rune('a'+i))+".jpg", fakeapi.GenerateJPEG(int64(i), 96+i, 120), reverify.StatusScored, 0)
	}
	for i := range 6 {
		put("selfies/png-"+string(rune('a'+i))+".png", fakeapi.GeneratePNG(int64(100+i), 100, 90+i), reverify.StatusScored, 0)
	}
	put("selfies/Zoë Ångström/ü 1.jpg", fakeapi.GenerateJPEG(500, 80, 80), reverify.StatusScored, 0)
	put("selfies/a+b%20c&d=e.jpg", fakeapi.GenerateJPEG(501, 80, 80), reverify.StatusScored, 0)
	long := "selfies/" + strings.Repeat(strings.Repeat("L", 250)+"/", 4)
	long += strings.Repeat("z", 1024-len(long)-4) + ".jpg"
	require.Len(t, long, 1024)
	put(long, fakeapi.GenerateJPEG(502, 80, 80), reverify.StatusScored, 0)
	put("selfies/tiny.jpg", fakeapi.GenerateJPEG(503, 32, 32), reverify.StatusRejected, liveness.ErrCodeAnalyzeFailed)
	put("selfies/empty.jpg", nil, reverify.StatusInvalidImage, 0)
	put("selfies/note.jpg", []byte("this upload is a note, not a photo"), reverify.StatusInvalidImage, 0)
	huge := append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, bytes.Repeat([]byte{7}, 300<<10)...)
	put("selfies/huge.jpg", huge, reverify.StatusInvalidImage, 0)
	b.s3.PutObject(t, bucket, "elsewhere/ignored.jpg", fakeapi.GenerateJPEG(1, 80, 80)) // outside the prefix
	objectsWant["selfies/missing.jpg"] = want{status: reverify.StatusNotFound}
	const noBucket = "no-such-bucket"

	run := b.newRun(t)
	src := withMissing(withMissing(tasks.ListingSource(b.objs, bucket, "selfies/"), bucket, "selfies/missing.jpg"), noBucket, "x.jpg")
	stats := b.enqueue(t, run, src)
	require.EqualValues(t, len(objectsWant)+1, stats.Recorded)
	require.EqualValues(t, len(objectsWant)+1, stats.Enqueued)

	// A payload that does not decode is archived without harming the rest.
	client := asynq.NewClient(b.redis)
	t.Cleanup(func() { client.Close() })
	_, err := client.Enqueue(asynq.NewTask(tasks.TypeVerify, []byte("{not json")), asynq.Queue(b.queue))
	require.NoError(t, err)

	b.startWorker(t, apiKey, worker.Config{MaxObjectBytes: 256 << 10, Fleet: fleet.Config{MaxInFlight: 4, RatePerSecond: 200}})
	p := b.waitForStatus(t, run.ID, reverify.RunCompleted, 90*time.Second)
	require.Zero(t, p.Pending)
	require.EqualValues(t, len(objectsWant)+1, p.Done)
	require.NotNil(t, p.Run.FinishedAt)
	r, err := b.store.ResultOf(ctx, run.ID, reverify.ObjectRef{Bucket: noBucket, Key: "x.jpg"})
	require.NoError(t, err)
	require.Equal(t, reverify.StatusNotFound, r.Status, "an unknown bucket is a not_found object, not a crash")
	insp := asynq.NewInspector(b.redis)
	t.Cleanup(func() { insp.Close() })
	archived, err := insp.ListArchivedTasks(b.queue)
	require.NoError(t, err)
	require.Len(t, archived, 1, "the undecodable task is archived, visible to the on-call")

	// What the fake API answered, by image.
	ledger := b.fake.Ledger()
	scoreBySHA := map[string]float64{}
	issued := map[string]bool{}
	for _, c := range ledger {
		if c.HTTPStatus == 200 {
			scoreBySHA[c.ImageSHA256] = c.Score
		}
		if c.TransactionID != "" {
			issued[c.TransactionID] = true
		}
	}
	require.Less(t, len(issued), len(ledger), "faults were injected, so some answers had no transaction ID")
	require.LessOrEqual(t, b.fake.Stats().MaxInFlight, 4, "the fleet's in-flight cap holds at the API")

	for key, w := range objectsWant {
		r, err := b.store.ResultOf(ctx, run.ID, reverify.ObjectRef{Bucket: bucket, Key: key})
		require.NoError(t, err, key)
		require.Equal(t, w.status, r.Status, "status of %q (%s)", key, r.Message)
		switch w.status {
		case reverify.StatusScored:
			require.NotNil(t, r.Score, key)
			require.InDelta(t, scoreBySHA[sha(w.body)], *r.Score, 0.005, "score of %q is the API's", key)
			require.True(t, issued[r.TransactionID], "transaction ID of %q was issued by the API", key)
			require.Equal(t, int64(len(w.body)), r.Size)
			require.NotEmpty(t, r.ETag)
		case reverify.StatusRejected:
			require.Equal(t, w.code, r.ErrorCode, key)
			require.True(t, issued[r.TransactionID], key)
		default:
			require.Empty(t, r.TransactionID, key)
			require.NotEmpty(t, r.Message, key)
		}
	}

	// Every call the API answered is on record, and nothing else.
	var calls, inFlight, recordedTx int
	require.NoError(t, b.db.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE outcome = 'in_flight'), count(transaction_id)
		FROM api_calls WHERE run_id = $1`, run.ID).Scan(&calls, &inFlight, &recordedTx))
	require.Equal(t, len(ledger), calls, "one api_calls row per answered call")
	require.Zero(t, inFlight)
	require.Equal(t, len(issued), recordedTx)
	rows, err := b.db.Query(ctx, `SELECT transaction_id FROM api_calls WHERE run_id = $1 AND transaction_id IS NOT NULL`, run.ID)
	require.NoError(t, err)
	for rows.Next() {
		var tx string
		require.NoError(t, rows.Scan(&tx))
		require.True(t, issued[tx], "recorded transaction %s was issued", tx)
	}
	require.NoError(t, rows.Err())
	var noCallKeys int
	require.NoError(t, b.db.QueryRow(ctx, `
		SELECT count(*) FROM api_calls WHERE run_id = $1
		AND object_key IN ('selfies/empty.jpg', 'selfies/note.jpg', 'selfies/huge.jpg', 'selfies/missing.jpg')`, run.ID).Scan(&noCallKeys))
	require.Zero(t, noCallKeys, "bad input never reaches the paid API")

	// Enqueuing the same source into the same run again adds nothing.
	again := b.enqueue(t, run, src)
	require.Zero(t, again.Recorded)
	require.Zero(t, again.Enqueued)
	require.EqualValues(t, len(objectsWant)+1, again.Seen)
	time.Sleep(500 * time.Millisecond)
	require.Len(t, b.fake.Ledger(), len(ledger), "no further paid calls")
	p, err = b.store.Progress(ctx, run.ID)
	require.NoError(t, err)
	require.EqualValues(t, len(objectsWant)+1, p.Run.Total)
}

// TestRequeueDoesNotDuplicateQueuedTasks refills a run's window while its
// tasks are still in Redis: task IDs collide, nothing is added.
func TestRequeueDoesNotDuplicateQueuedTasks(t *testing.T) {
	t.Parallel()
	b := setup(t, fakeapi.Options{})
	const bucket = "requeue"
	run := b.newRun(t)
	src := func(ctx context.Context, fn func(tasks.Object) error) error {
		for _, k := range []string{"a.jpg", "b.jpg", "c.jpg"} {
			if err := fn(tasks.Object{Bucket: bucket, Key: k, Size: -1}); err != nil {
				return err
			}
		}
		return nil
	}
	first := b.enqueue(t, run, src)
	require.EqualValues(t, 3, first.Enqueued)
	client := asynq.NewClient(b.redis)
	t.Cleanup(func() { client.Close() })
	again := b.feeder(t)
	require.NoError(t, again.Cycle(context.Background()), "a new feeder refills every window first")
	require.Zero(t, again.Stats().Refilled)
	require.Zero(t, again.Stats().Dispatched)

	insp := asynq.NewInspector(b.redis)
	t.Cleanup(func() { insp.Close() })
	q, err := insp.GetQueueInfo(b.queue)
	require.NoError(t, err)
	require.Equal(t, 3, q.Pending)
}

// TestRetriesExhaustedRecordFailure makes every call fail: each object ends
// failed, with each API call made on record.
func TestRetriesExhaustedRecordFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, fakeapi.Options{ErrorRate: 1})
	const bucket = "down"
	b.s3.CreateBucket(t, bucket)
	for i := range 3 {
		b.s3.PutObject(t, bucket, "f"+string(rune('0'+i))+".jpg", fakeapi.GenerateJPEG(int64(i), 80, 80))
	}
	run := b.newRun(t)
	b.enqueue(t, run, tasks.ListingSource(b.objs, bucket, ""), tasks.Retries(2))
	// A high outage threshold keeps the circuit out of this test.
	b.startWorker(t, apiKey, worker.Config{Fleet: fleet.Config{OutageMinFails: 1000}})
	p := b.waitForStatus(t, run.ID, reverify.RunCompleted, 60*time.Second)
	require.EqualValues(t, 3, p.ByStatus[reverify.StatusFailed])
	require.EqualValues(t, 9, p.APICalls, "1 call + 2 retries per object")
	r, err := b.store.ResultOf(context.Background(), run.ID, reverify.ObjectRef{Bucket: bucket, Key: "f0.jpg"})
	require.NoError(t, err)
	require.Contains(t, r.Message, "retries exhausted")
}

// TestAuthFailureKeepsTasks sends a wrong key: nothing is marked failed,
// calls stop during the cool-down, and the run finishes once the key works.
func TestAuthFailureKeepsTasks(t *testing.T) {
	t.Parallel()
	b := setup(t, fakeapi.Options{})
	const bucket = "auth"
	b.s3.CreateBucket(t, bucket)
	for i := range 10 {
		b.s3.PutObject(t, bucket, "a"+string(rune('0'+i))+".jpg", fakeapi.GenerateJPEG(int64(i), 80, 80))
	}
	run := b.newRun(t)
	b.enqueue(t, run, tasks.ListingSource(b.objs, bucket, ""), tasks.Retries(1))
	// The fleet is given a key the API does not accept yet.
	const rotated = "rotated-key"
	b.startWorker(t, rotated, worker.Config{Fleet: fleet.Config{AuthCooldown: 2 * time.Second}})
	require.Eventually(t, func() bool { return b.fake.Stats().ByStatus[401] > 0 }, 20*time.Second, 20*time.Millisecond)
	time.Sleep(time.Second)
	p, err := b.store.Progress(context.Background(), run.ID)
	require.NoError(t, err)
	require.EqualValues(t, 10, p.Pending, "auth failures are not terminal")
	require.LessOrEqual(t, b.fake.Stats().ByStatus[401], 20, "the circuit stops the flood of calls with a bad key")

	// The API starts accepting the rotated key.
	opts := b.fake.Options()
	opts.APIKey = rotated
	b.fake.SetOptions(opts)
	p = b.waitForStatus(t, run.ID, reverify.RunCompleted, 60*time.Second)
	require.EqualValues(t, 10, p.ByStatus[reverify.StatusScored])
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBucketAccessDeniedIsReportedOnce: credentials the bucket refuses are
// a configuration problem: one error in the log, no image failed, no call
// made, and the run finishes once the credentials work.
func TestBucketAccessDeniedIsReportedOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, fakeapi.Options{})
	const bucket = "denied"
	b.s3.CreateBucket(t, bucket)
	for i := range 8 {
		b.s3.PutObject(t, bucket, fmt.Sprintf("d%d.jpg", i), fakeapi.GenerateJPEG(int64(i), 80, 80))
	}
	run := b.newRun(t)
	b.enqueue(t, run, tasks.ListingSource(b.objs, bucket, ""), tasks.Retries(1))

	cfg := b.s3.Config()
	cfg.SecretKey = "not-the-secret"
	wrong, err := objects.Open(context.Background(), cfg)
	require.NoError(t, err)
	logs := &syncBuffer{}
	good := b.objs
	b.objs = wrong
	stop := b.startWorker(t, apiKey, worker.Config{Logger: slog.New(slog.NewJSONHandler(logs, nil)), DeniedWait: time.Second})
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "access to the bucket is denied") },
		20*time.Second, 20*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, 1, strings.Count(logs.String(), "access to the bucket is denied"), "reported once, not per image")
	p, err := b.store.Progress(context.Background(), run.ID)
	require.NoError(t, err)
	require.EqualValues(t, 8, p.Pending, "no image is failed for a configuration problem")
	require.Empty(t, b.fake.Ledger(), "nothing reached the paid API")

	// The fixed credentials, in a new worker, finish the run.
	stop()
	b.objs = good
	b.startWorker(t, apiKey, worker.Config{})
	p = b.waitForStatus(t, run.ID, reverify.RunCompleted, 30*time.Second)
	require.EqualValues(t, 8, p.ByStatus[reverify.StatusScored])
}

// fetchCounter counts S3 gets; the rest of Observer is ignored.
type fetchCounter struct{ n atomic.Int64 }

func (c *fetchCounter) ObjectFetched(time.Duration, int64, error)                   { c.n.Add(1) }
func (*fetchCounter) APICalled(reverify.CallOutcome, time.Duration, *float64, bool) {}
func (*fetchCounter) ResultRecorded(reverify.Status)                                {}
func (*fetchCounter) Waited(reverify.WaitReason, time.Duration)                     {}

// TestCancelledRunIsSkipped: the tasks of a cancelled run are done without
// fetching their image or calling the API.
func TestCancelledRunIsSkipped(t *testing.T) {
	t.Parallel()
	b := setup(t, fakeapi.Options{})
	ctx := context.Background()
	const bucket = "cancelled"
	b.s3.CreateBucket(t, bucket)
	for i := range 6 {
		b.s3.PutObject(t, bucket, fmt.Sprintf("c%d.jpg", i), fakeapi.GenerateJPEG(int64(i), 80, 80))
	}
	run := b.newRun(t)
	b.enqueue(t, run, tasks.ListingSource(b.objs, bucket, ""))
	_, _, err := b.store.CancelRun(ctx, run.ID, reverify.Actor{Who: "test"})
	require.NoError(t, err)

	fetches := &fetchCounter{}
	b.observer, b.runGate = fetches, b.store
	b.startWorker(t, apiKey, worker.Config{})
	b.waitDrained(t, 6)
	require.Zero(t, fetches.n.Load(), "no image of a cancelled run is fetched")
	require.Empty(t, b.fake.Ledger(), "nothing reached the paid API")
}

// TestDuplicateTaskSpendsNoBudget runs a second task (another task ID) for
// objects that already have their result: the ledger refuses the call, and
// the admission it took is given back, so the day's budget counts only the
// calls made.
func TestDuplicateTaskSpendsNoBudget(t *testing.T) {
	t.Parallel()
	b := setup(t, fakeapi.Options{})
	ctx := context.Background()
	const bucket = "dup"
	keys := b.images(t, bucket, "d0.jpg", "d1.jpg", "d2.jpg")
	run := b.newRun(t)
	b.enqueue(t, run, tasks.ListingSource(b.objs, bucket, ""))
	fc := fleet.Config{DailyBudget: 1000}
	b.startWorker(t, apiKey, worker.Config{Fleet: fc})
	b.waitForStatus(t, run.ID, reverify.RunCompleted, 30*time.Second)

	client := asynq.NewClient(b.redis)
	t.Cleanup(func() { client.Close() })
	for _, k := range keys {
		payload, err := json.Marshal(tasks.VerifyPayload{RunID: run.ID, Bucket: bucket, Key: k})
		require.NoError(t, err)
		_, err = client.EnqueueContext(ctx, asynq.NewTask(tasks.TypeVerify, payload), asynq.Queue(b.queue), asynq.TaskID("dup-"+k))
		require.NoError(t, err)
	}
	b.waitDrained(t, 2*len(keys))

	require.Len(t, b.fake.Ledger(), len(keys), "one paid call per object")
	rdb := redis.NewClient(&redis.Options{Addr: b.redis.Addr})
	t.Cleanup(func() { rdb.Close() })
	fc.Prefix = b.fleetPrefix()
	st, err := fleet.New(rdb, fc).Status(ctx)
	require.NoError(t, err)
	require.EqualValues(t, len(keys), st.BudgetUsed, "the duplicates' admissions were given back")
}

// outageLedger is the real ledger whose FinishCall fails, while down is
// set, as it does when PostgreSQL cannot be reached.
type outageLedger struct {
	*postgres.Store
	down atomic.Bool
}

func (l *outageLedger) FinishCall(ctx context.Context, c postgres.Call, runID string, obj reverify.ObjectRef, final *postgres.Result) error {
	if l.down.Load() {
		return fmt.Errorf("record api call outcome: %w", postgres.ErrUnavailable)
	}
	return l.Store.FinishCall(ctx, c, runID, obj, final)
}

// TestStashedAnswerIsRecordedNotPaidAgain: the ledger fails after two paid
// calls were answered, so their answers wait in the stash. Once it is
// back, the next attempt records each answer without calling again: one
// whose image is still there, and one whose image was deleted meanwhile
// (its answer, not "not found", is the result). That holds whether the
// unanswered calls on record may still be in flight or are long past the
// time they are taken as lost.
func TestStashedAnswerIsRecordedNotPaidAgain(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		callTimeout time.Duration // a call unanswered for twice this is lost
		lost        bool          // the ledger comes back only after that
	}{
		{name: "call in flight", callTimeout: time.Minute},
		{name: "call lost", callTimeout: 2 * time.Second, lost: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, fakeapi.Options{})
			ctx := context.Background()
			const bucket = "stash"
			keys := b.images(t, bucket, "kept.jpg", "deleted.jpg")
			outage := &outageLedger{Store: b.store}
			outage.down.Store(true)
			b.ledger = outage
			run := b.newRun(t)
			b.enqueue(t, run, tasks.ListingSource(b.objs, bucket, ""))
			fc := fleet.Config{DailyBudget: 1000}
			b.startWorker(t, apiKey, worker.Config{LedgerRetryFor: 50 * time.Millisecond, CallTimeout: tt.callTimeout, Fleet: fc})

			rdb := redis.NewClient(&redis.Options{Addr: b.redis.Addr})
			t.Cleanup(func() { rdb.Close() })
			stashKeys := make([]string, len(keys))
			for i, k := range keys {
				stashKeys[i] = b.stashPrefix() + b.taskID(t, run.ID, reverify.ObjectRef{Bucket: bucket, Key: k})
			}
			require.Eventually(t, func() bool {
				n, err := rdb.Exists(ctx, stashKeys...).Result()
				return err == nil && n == int64(len(keys))
			}, 20*time.Second, 20*time.Millisecond, "both answers stashed")
			_, err := b.s3.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("deleted.jpg")})
			require.NoError(t, err)
			if tt.lost {
				require.Eventually(t, func() bool {
					var lost bool
					err := b.db.QueryRow(ctx, `SELECT max(called_at) < now() - make_interval(secs => $2)
						FROM api_calls WHERE run_id = $1 AND outcome = 'in_flight'`, run.ID, (2 * tt.callTimeout).Seconds()).Scan(&lost)
					return err == nil && lost
				}, 20*time.Second, 100*time.Millisecond, "the unanswered calls are taken as lost")
			}
			outage.down.Store(false)

			p := b.waitForStatus(t, run.ID, reverify.RunCompleted, 30*time.Second)
			require.EqualValues(t, len(keys), p.ByStatus[reverify.StatusScored], "both answers recorded, none as not found")
			calls := b.fake.Ledger()
			require.Len(t, calls, len(keys), "no call paid twice")
			rows, err := b.db.Query(ctx, `SELECT transaction_id FROM api_calls WHERE run_id = $1 AND outcome = 'scored'`, run.ID)
			require.NoError(t, err)
			recorded, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			var paid []string
			for _, c := range calls {
				paid = append(paid, c.TransactionID)
			}
			require.ElementsMatch(t, paid, recorded, "every paid call on record, with its transaction ID")
			n, err := rdb.Exists(ctx, stashKeys...).Result()
			require.NoError(t, err)
			require.Zero(t, n, "the stash is emptied once the ledger has the answers")
			fc.Prefix = b.fleetPrefix()
			st, err := fleet.New(rdb, fc).Status(ctx)
			require.NoError(t, err)
			require.EqualValues(t, len(keys), st.BudgetUsed, "the admissions of attempts that made no call were given back")
		})
	}
}

// waitCounter counts waits by reason; the rest of Observer is ignored.
type waitCounter struct {
	mu sync.Mutex
	n  map[reverify.WaitReason]int
}

func (*waitCounter) ObjectFetched(time.Duration, int64, error)                     {}
func (*waitCounter) APICalled(reverify.CallOutcome, time.Duration, *float64, bool) {}
func (*waitCounter) ResultRecorded(reverify.Status)                                {}
func (c *waitCounter) Waited(r reverify.WaitReason, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[reverify.WaitReason]int{}
	}
	c.n[r]++
}

func (c *waitCounter) count(r reverify.WaitReason) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[r]
}

// TestUnansweredCallWaitsThenIsReplaced: a call on record without an
// answer (its worker died mid-call) holds its object back while it may
// still be in flight, without failing the task or spending budget; once
// it must be over, it is taken as lost and a new call is made. The lost
// call stays on record, unanswered.
func TestUnansweredCallWaitsThenIsReplaced(t *testing.T) {
	t.Parallel()
	b := setup(t, fakeapi.Options{})
	ctx := context.Background()
	const bucket = "lost"
	b.images(t, bucket, "l0.jpg")
	run := b.newRun(t)
	b.enqueue(t, run, tasks.ListingSource(b.objs, bucket, ""), tasks.Retries(1))
	lostID, st, err := b.store.BeginCall(ctx, run.ID, reverify.ObjectRef{Bucket: bucket, Key: "l0.jpg"}, time.Minute)
	require.NoError(t, err)
	require.Equal(t, postgres.CallRecorded, st)
	var calledAt time.Time
	require.NoError(t, b.db.QueryRow(ctx, `SELECT called_at FROM api_calls WHERE run_id = $1 AND id = $2`, run.ID, lostID).Scan(&calledAt))

	waits := &waitCounter{}
	b.observer = waits
	const callTimeout = 2 * time.Second
	fc := fleet.Config{DailyBudget: 1000}
	b.startWorker(t, apiKey, worker.Config{CallTimeout: callTimeout, Fleet: fc})
	p := b.waitForStatus(t, run.ID, reverify.RunCompleted, 30*time.Second)
	require.EqualValues(t, 1, p.ByStatus[reverify.StatusScored], "waiting uses up no retries")

	require.Positive(t, waits.count(reverify.WaitCallInFlight), "the task waited for the earlier call")
	calls := b.fake.Ledger()
	require.Len(t, calls, 1)
	require.GreaterOrEqual(t, calls[0].At.Sub(calledAt), 2*callTimeout, "no new call while the earlier one may be in flight")
	var outcomes []string
	rows, err := b.db.Query(ctx, `SELECT outcome FROM api_calls WHERE run_id = $1 ORDER BY id`, run.ID)
	require.NoError(t, err)
	outcomes, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{string(reverify.OutcomeInFlight), string(reverify.OutcomeScored)}, outcomes)

	rdb := redis.NewClient(&redis.Options{Addr: b.redis.Addr})
	t.Cleanup(func() { rdb.Close() })
	fc.Prefix = b.fleetPrefix()
	fs, err := fleet.New(rdb, fc).Status(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, fs.BudgetUsed, "the waits' admissions were given back")
}
