package tasks_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"reverify"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/storage/objects"
	"reverify/storage/postgres"
	"reverify/tasks"
)

func collect(t *testing.T, src tasks.Source) []string {
	t.Helper()
	var keys []string
	require.NoError(t, src(context.Background(), func(o tasks.Object) error {
		keys = append(keys, o.Key)
		return nil
	}))
	return keys
}

func TestFilters(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	after, before := day, day.Add(24*time.Hour)
	objs := []tasks.Object{
		{Key: "old.jpg", Size: 100, LastModified: day.Add(-time.Hour)},
		{Key: "in.jpg", Size: 100, LastModified: day.Add(time.Hour)},
		{Key: "IN2.JPG", Size: 5000, LastModified: day.Add(2 * time.Hour)},
		{Key: "tiny.jpg", Size: 1, LastModified: day.Add(time.Hour)},
		{Key: "new.jpg", Size: 100, LastModified: before.Add(time.Hour)},
		{Key: "note.txt", Size: 100, LastModified: day.Add(time.Hour)},
		{Key: "manifest.jpg", Size: -1},
	}
	tests := []struct {
		name string
		f    tasks.Filters
		want []string
	}{
		{"none", tasks.Filters{}, []string{"old.jpg", "in.jpg", "IN2.JPG", "tiny.jpg", "new.jpg", "note.txt", "manifest.jpg"}},
		{"window", tasks.Filters{ModifiedAfter: &after, ModifiedBefore: &before},
			[]string{"in.jpg", "IN2.JPG", "tiny.jpg", "note.txt", "manifest.jpg"}},
		{"size", tasks.Filters{MinSize: 10, MaxSize: 1000}, []string{"old.jpg", "in.jpg", "new.jpg", "note.txt", "manifest.jpg"}},
		{"all", tasks.Filters{Suffixes: []string{".jpg"}, ModifiedAfter: &after, ModifiedBefore: &before, MinSize: 10, MaxSize: 1000},
			[]string{"in.jpg", "manifest.jpg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, tt.f.Validate())
			keep := tt.f.Keep()
			var got []string
			for _, o := range objs {
				if keep == nil || keep(o) {
					got = append(got, o.Key)
				}
			}
			require.Equal(t, tt.want, got)
		})
	}
	require.Error(t, tasks.Filters{MinSize: 10, MaxSize: 5}.Validate())
	require.Error(t, tasks.Filters{ModifiedAfter: &before, ModifiedBefore: &after}.Validate())
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, err := w.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return b.Bytes()
}

func TestInventorySource(t *testing.T) {
	t.Parallel()
	manifest := `{"sourceBucket":"kyc","destinationBucket":"arn:aws:s3:::inv","fileFormat":"CSV",
		"fileSchema":"Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate",
		"files":[{"key":"data/1.csv.gz"},{"key":"data/2.csv.gz"}]}`
	files := map[string][]byte{
		"inv/data/1.csv.gz": gz(t, `"kyc","selfies/Zo%C3%AB+1.jpg","v1","true","false","120","2026-11-24T10:00:00.000Z"
"kyc","selfies/old.jpg","v0","false","false","120","2026-01-01T10:00:00.000Z"
"kyc","selfies/gone.jpg","v2","true","true","","2026-11-24T10:00:00.000Z"
`),
		"inv/data/2.csv.gz": gz(t, `"kyc","selfies/a%2Bb.jpg","","true","false","99","2026-11-24T11:00:00.000Z"
"kyc","bad%zz","","true","false","1","2026-11-24T11:00:00.000Z"
`),
	}
	open := func(_ context.Context, bucket, key string) (io.ReadCloser, error) {
		b, ok := files[bucket+"/"+key]
		if !ok {
			return nil, errors.New("no such key")
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	m, err := tasks.ParseInventoryManifest(strings.NewReader(manifest))
	require.NoError(t, err)
	var bad []tasks.BadLine
	var got []tasks.Object
	require.NoError(t, tasks.InventorySource(m, open, func(b tasks.BadLine) { bad = append(bad, b) })(context.Background(),
		func(o tasks.Object) error { got = append(got, o); return nil }))
	require.Len(t, got, 2)
	require.Equal(t, "selfies/Zoë 1.jpg", got[0].Key)
	require.Equal(t, "v1", got[0].Version)
	require.EqualValues(t, 120, got[0].Size)
	require.Equal(t, time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), got[0].LastModified)
	require.Equal(t, "selfies/a+b.jpg", got[1].Key)
	require.Len(t, bad, 1)

	_, err = tasks.ParseInventoryManifest(strings.NewReader(`{"fileFormat":"ORC","fileSchema":"x","files":[{"key":"a"}]}`))
	require.ErrorIs(t, err, tasks.ErrInventory)
}

// crashingLister fails every call after the first n, as a killed planner would stop.
type crashingLister struct {
	objects.API
	n int
}

func (c *crashingLister) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	if c.n == 0 {
		return nil, errors.New("worker killed")
	}
	c.n--
	return c.API.ListObjectsV2(ctx, in, opts...)
}

// TestPlannerResumesFromToken lists a prefix as a run:plan task that dies
// after two pages; the retry resumes from the stored token and every object
// is recorded and queued exactly once.
func TestPlannerResumesFromToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := testenv.Ledger(t)
	srv := testenv.S3(t)
	srv.CreateBucket(t, "plan")
	for i := range 11 {
		srv.PutObject(t, "plan", fmt.Sprintf("p/%02d.jpg", i), []byte{0xFF, 0xD8, 0xFF})
	}
	srv.PutObject(t, "plan", "p/skip.txt", []byte("x"))
	redis := asynq.RedisClientOpt{Addr: testenv.RedisAddr(t)}
	queue := testenv.Queue(t)
	client := asynq.NewClient(redis)
	t.Cleanup(func() { client.Close() })

	run, err := store.CreateRun(ctx, postgres.NewRun{Name: "plan", Queue: queue,
		Source:  reverify.Source{Kind: "prefix", Bucket: "plan", Prefix: "p/"},
		Options: tasks.RunOptions{Filters: tasks.Filters{Suffixes: []string{".jpg"}}}})
	require.NoError(t, err)
	task, err := tasks.NewPlanTask(run.ID, queue)
	require.NoError(t, err)

	lister := &crashingLister{API: srv.Client, n: 2}
	planner := tasks.NewPlanner(store, objects.New(lister, objects.WithPageSize(3)), client, nil)
	require.Error(t, planner.ProcessTask(ctx, task))
	run, err = store.Run(ctx, run.ID)
	require.NoError(t, err)
	require.NotEmpty(t, run.PlanToken, "the token of the third page is kept")
	require.EqualValues(t, 6, run.Total)
	require.Equal(t, reverify.RunEnqueuing, run.Status)

	lister.n = 100
	require.NoError(t, planner.ProcessTask(ctx, task))
	run, err = store.Run(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, reverify.RunRunning, run.Status)
	require.EqualValues(t, 11, run.Total)
	require.Empty(t, run.PlanToken)
	require.NotNil(t, run.PlannedAt)

	insp := asynq.NewInspector(redis)
	t.Cleanup(func() { insp.Close() })
	q, err := insp.GetQueueInfo(queue)
	require.NoError(t, err)
	require.Equal(t, 11, q.Pending, "one task per object")
	require.NoError(t, planner.ProcessTask(ctx, task), "a planned run is not listed again")
}

// TestPlannerFailsRunOfMissingBucket: a source bucket that does not exist
// fails the run (with the reason in its history) and the plan task is not
// retried, instead of retrying for hours.
func TestPlannerFailsRunOfMissingBucket(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := testenv.Ledger(t)
	srv := testenv.S3(t)
	queue := testenv.Queue(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { client.Close() })

	run, err := store.CreateRun(ctx, postgres.NewRun{Name: "gone", Queue: queue,
		Source: reverify.Source{Kind: "prefix", Bucket: "no-such-bucket", Prefix: "p/"}, Options: tasks.RunOptions{}})
	require.NoError(t, err)
	task, err := tasks.NewPlanTask(run.ID, queue)
	require.NoError(t, err)

	err = tasks.NewPlanner(store, objects.New(srv.Client), client, nil).ProcessTask(ctx, task)
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorIs(t, err, objects.ErrBucketNotFound)
	run, err = store.Run(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, reverify.RunFailed, run.Status)
	h, err := store.History(ctx, run.ID)
	require.NoError(t, err)
	require.Contains(t, h[len(h)-1].Reason, `source bucket "no-such-bucket" not found`)
}
