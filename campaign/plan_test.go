package campaign_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/campaign"
	"reverify/storage/objects"
	"reverify/tasks"
)

// TestPlanResumesFromToken lists a prefix as a run:plan task that dies
// after two pages; the retry resumes from the stored token and every object
// is recorded and queued exactly once.
func TestPlanResumesFromToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	store, srv, queue := b.store, b.s3, b.queue
	srv.CreateBucket(t, "plan")
	for i := range 11 {
		srv.PutObject(t, "plan", fmt.Sprintf("p/%02d.jpg", i), []byte{0xFF, 0xD8, 0xFF})
	}
	srv.PutObject(t, "plan", "p/skip.txt", []byte("x"))
	lister := &crashingLister{API: srv.Client, n: 2}
	d := b.deps
	d.Objects = objects.New(lister, objects.WithPageSize(3))
	planner := campaign.NewPlanHandler(campaign.New(d))
	run, err := campaign.New(d).Create(ctx, campaign.Spec{Name: "plan", Queue: queue, InFleet: true,
		Source:  reverify.Source{Kind: reverify.SourcePrefix, Bucket: "plan", Prefix: "p/"},
		Filters: tasks.Filters{Suffixes: []string{".jpg"}}})
	require.NoError(t, err)
	task, err := tasks.NewPlanTask(run.ID, queue)
	require.NoError(t, err)
	require.Equal(t, 1, b.pending(t, queue), "Create queued the run:plan task")
	require.Error(t, planner.ProcessTask(ctx, task))
	run, err = store.Run(ctx, run.ID)
	require.NoError(t, err)
	require.NotEmpty(t, run.PlanToken, "the token of the third page is kept")
	require.EqualValues(t, 6, run.Total)
	require.Equal(t, reverify.RunEnqueuing, run.Status)
	require.EqualValues(t, 6, b.feed(t, 100).Dispatched, "objects listed so far are dispatched while the listing goes on")

	lister.n = 100
	require.NoError(t, planner.ProcessTask(ctx, task))
	run, err = store.Run(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, reverify.RunRunning, run.Status)
	require.EqualValues(t, 11, run.Total)
	require.Empty(t, run.PlanToken)
	require.NotNil(t, run.PlannedAt)

	require.EqualValues(t, 5, b.feed(t, 100).Dispatched, "the rest, once")
	require.Equal(t, 12, b.pending(t, queue), "one task per object, and the plan task")
	require.NoError(t, planner.ProcessTask(ctx, task), "a planned run is not listed again")
}

// TestPlanFailsRunOfMissingBucket: a source bucket that does not exist
// fails the run (with the reason in its history) and the plan task is not
// retried, instead of retrying for hours.
func TestPlanFailsRunOfMissingBucket(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	store := b.store
	run, err := b.svc.Create(ctx, campaign.Spec{Name: "gone", Queue: b.queue, InFleet: true,
		Source: reverify.Source{Kind: reverify.SourcePrefix, Bucket: "no-such-bucket", Prefix: "p/"}})
	require.NoError(t, err)
	task, err := tasks.NewPlanTask(run.ID, b.queue)
	require.NoError(t, err)

	err = campaign.NewPlanHandler(b.svc).ProcessTask(ctx, task)
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorIs(t, err, objects.ErrBucketNotFound)
	run, err = store.Run(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, reverify.RunFailed, run.Status)
	h, err := store.History(ctx, run.ID)
	require.NoError(t, err)
	require.Contains(t, h[len(h)-1].Reason, `source bucket "no-such-bucket" not found`)
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
