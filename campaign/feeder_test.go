package campaign_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/campaign"
	"reverify/internal/testenv"
	"reverify/storage/postgres"
	"reverify/tasks"
	"reverify/worker/fleet"
)

// TestFeederKeepsAWindow: however large the run, the queue holds a window
// of its tasks, first in dispatch order, topped up as objects finish.
func TestFeederKeepsAWindow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	f := b.fill(t, campaign.Spec{}, keys(50), campaign.FillOptions{})
	client := asynq.NewClient(b.redis)
	t.Cleanup(func() { client.Close() })
	feeder := campaign.NewFeeder(b.store, client, nil, nil, campaign.FeederConfig{Window: 10})

	require.NoError(t, feeder.Cycle(ctx))
	require.EqualValues(t, 10, feeder.Stats().Dispatched)
	require.Equal(t, 10, b.pending(t, b.queue))
	queued := b.queuedKeys(t)
	require.ElementsMatch(t, keys(10), queued, "the first ten in dispatch order")

	require.NoError(t, feeder.Cycle(ctx))
	require.EqualValues(t, 10, feeder.Stats().Dispatched, "a full window gets nothing more")

	for _, k := range keys(4) {
		require.NoError(t, b.store.RecordResult(ctx, postgres.Result{RunID: f.Run.ID, Object: reverify.ObjectRef{Bucket: "b", Key: k},
			Status: reverify.StatusNotFound}))
	}
	require.NoError(t, feeder.Cycle(ctx))
	require.EqualValues(t, 14, feeder.Stats().Dispatched, "four finished, four more sent")
	require.Contains(t, b.queuedKeys(t), "k/013.jpg")
	require.NotContains(t, b.queuedKeys(t), "k/014.jpg")
}

// queuedKeys lists the keys of the verify tasks pending in the test's queue.
func (b *bundle) queuedKeys(t *testing.T) []string {
	t.Helper()
	infos, err := b.insp.ListPendingTasks(b.queue, asynq.PageSize(1000))
	require.NoError(t, err)
	var out []string
	for _, ti := range infos {
		p, err := tasks.ParseVerifyPayload(ti.Payload)
		require.NoError(t, err)
		out = append(out, p.Key)
	}
	return out
}

// TestFeederPriorityAcrossRuns: a high-priority run started behind a large
// low-priority one gets its tasks in the first round, on its own queue,
// and a running run's priority can change for its next tasks.
func TestFeederPriorityAcrossRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	bulk := b.fill(t, campaign.Spec{Priority: reverify.PriorityLow}, keys(2000), campaign.FillOptions{})
	urgent := b.fill(t, campaign.Spec{Priority: reverify.PriorityHigh}, keys(5), campaign.FillOptions{})
	client := asynq.NewClient(b.redis)
	t.Cleanup(func() { client.Close() })
	feeder := campaign.NewFeeder(b.store, client, nil, nil, campaign.FeederConfig{Window: 25, Refill: time.Hour})
	require.NoError(t, feeder.Cycle(ctx))
	require.EqualValues(t, 25+5, feeder.Stats().Dispatched)
	require.Equal(t, 5, b.pending(t, b.queue+"-high"))
	require.Equal(t, 25, b.pending(t, b.queue+"-low"))

	run, err := b.svc.SetPriority(ctx, bulk.Run.ID, reverify.PriorityNormal, reverify.Actor{Who: "tester", Why: "deadline"})
	require.NoError(t, err)
	require.Equal(t, b.queue, run.Queue)
	require.Equal(t, reverify.PriorityNormal, run.Priority)
	for _, k := range keys(3) {
		require.NoError(t, b.store.RecordResult(ctx, postgres.Result{RunID: bulk.Run.ID, Object: reverify.ObjectRef{Bucket: "b", Key: k},
			Status: reverify.StatusNotFound}))
	}
	require.NoError(t, feeder.Cycle(ctx))
	require.EqualValues(t, 25+5+3, feeder.Stats().Dispatched)
	require.Equal(t, 3, b.pending(t, b.queue), "the next tasks go to the new priority's queue")
	_, err = b.svc.SetPriority(ctx, urgent.Run.ID, "urgent", reverify.Actor{Who: "tester"})
	require.ErrorIs(t, err, campaign.ErrInvalidSpec)
}

// TestFeederRefillsWhatRedisLost: when Redis loses every task (its marker
// is gone with them), the next round puts the window back at once.
func TestFeederRefillsWhatRedisLost(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.fill(t, campaign.Spec{}, keys(20), campaign.FillOptions{})
	rdb := redis.NewClient(&redis.Options{Addr: b.redis.Addr})
	t.Cleanup(func() { rdb.Close() })
	client := asynq.NewClient(b.redis)
	t.Cleanup(func() { client.Close() })
	markerKey := "reverify:test:" + testenv.Queue(t)
	feeder := campaign.NewFeeder(b.store, client, nil, fleet.NewMarker(rdb, markerKey), campaign.FeederConfig{Window: 20, Refill: time.Hour})
	require.NoError(t, feeder.Cycle(ctx))
	require.EqualValues(t, 20, feeder.Stats().Dispatched)
	require.NoError(t, feeder.Cycle(ctx))
	require.Zero(t, feeder.Stats().Refilled)

	_, err := b.insp.DeleteAllPendingTasks(b.queue)
	require.NoError(t, err)
	require.NoError(t, rdb.Del(ctx, markerKey).Err()) // as a restart without persistence does
	require.NoError(t, feeder.Cycle(ctx))
	require.EqualValues(t, 20, feeder.Stats().Refilled)
	require.Equal(t, 20, b.pending(t, b.queue))
}

// TestFeederOneLeader: of two feeders of one ledger, one feeds at a time;
// when it stops the other takes over within the lease's lifetime.
func TestFeederOneLeader(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fill(t, campaign.Spec{}, keys(30), campaign.FillOptions{})
	rdb := redis.NewClient(&redis.Options{Addr: b.redis.Addr})
	t.Cleanup(func() { rdb.Close() })
	leaseKey := "reverify:test:" + testenv.Queue(t)
	feeders := make([]*campaign.Feeder, 2)
	cancels := make([]context.CancelFunc, 2)
	var wg sync.WaitGroup
	for i := range feeders {
		client := asynq.NewClient(b.redis)
		t.Cleanup(func() { client.Close() })
		lease := fleet.NewLease(rdb, leaseKey, fmt.Sprintf("feeder-%d", i), time.Second)
		feeders[i] = campaign.NewFeeder(b.store, client, lease, nil, campaign.FeederConfig{Window: 30, Every: 20 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		wg.Go(func() { _ = feeders[i].Run(ctx) })
	}
	t.Cleanup(func() {
		for _, c := range cancels {
			c()
		}
		wg.Wait()
	})
	require.Eventually(t, func() bool { return b.pending(t, b.queue) == 30 }, 5*time.Second, 20*time.Millisecond)
	leader := -1
	for i, f := range feeders {
		if f.Leading() {
			require.Equal(t, -1, leader, "two feeders lead at once")
			leader = i
		}
	}
	require.NotEqual(t, -1, leader)
	require.Zero(t, feeders[1-leader].Stats().Cycles, "the other stands by")

	cancels[leader]() // a leader that stops gives the lease up
	require.Eventually(t, func() bool { return feeders[1-leader].Leading() && feeders[1-leader].Stats().Cycles > 0 },
		5*time.Second, 20*time.Millisecond)
}

// TestFeederSkipsHeldRunsAndCancelsInBackground: a paused run gets no
// tasks; a large cancelled run's pending objects are cancelled in batches
// after the command returned.
func TestFeederSkipsHeldRunsAndCancelsInBackground(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	me := reverify.Actor{Who: "tester"}
	paused := b.fill(t, campaign.Spec{}, keys(5), campaign.FillOptions{})
	_, err := b.svc.Pause(ctx, paused.Run.ID, me)
	require.NoError(t, err)
	require.Zero(t, b.feed(t, 100).Dispatched)

	many := postgres.SyncCancelLimit + 50
	big := b.fill(t, campaign.Spec{}, keys(many), campaign.FillOptions{})
	run, n, err := b.svc.Cancel(ctx, big.Run.ID, me)
	require.NoError(t, err)
	require.EqualValues(t, many, n)
	p, err := b.store.Progress(ctx, run.ID)
	require.NoError(t, err)
	require.EqualValues(t, many, p.Pending, "a large run's objects are cancelled after the command returns")
	converted, err := b.store.CancelPending(ctx, 4000)
	require.NoError(t, err)
	require.EqualValues(t, 4000, converted, "a batch at a time")
	for converted < int64(many) {
		k, err := b.store.CancelPending(ctx, 4000)
		require.NoError(t, err)
		require.Positive(t, k)
		converted += k
	}
	p, err = b.store.Progress(ctx, run.ID)
	require.NoError(t, err)
	require.Zero(t, p.Pending)
	require.EqualValues(t, many, p.ByStatus[reverify.StatusCancelled])
}

// fleetAt is a fleet governor over the test's own keys whose rate is
// rate calls/s, as the feeder reads it.
func (b *bundle) fleetAt(t *testing.T, rate int) *fleet.Governor {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: b.redis.Addr})
	t.Cleanup(func() { rdb.Close() })
	return fleet.New(rdb, fleet.Config{Prefix: "{fair-" + testenv.Queue(t) + "}:", RatePerSecond: rate})
}

// finish records a result for the first n keys of run.
func (b *bundle) finish(t *testing.T, runID string, n int) {
	t.Helper()
	for _, k := range keys(n) {
		require.NoError(t, b.store.RecordResult(context.Background(), postgres.Result{RunID: runID,
			Object: reverify.ObjectRef{Bucket: "b", Key: k}, Status: reverify.StatusNotFound}))
	}
}

// TestFeederSharesTheFleetByWeight: with the fleet's rate known, the
// windows of all runs hold two seconds of it together, split by priority
// weight, so a run started beside a large one waits behind two seconds of
// the fleet's calls, not behind a whole window.
func TestFeederSharesTheFleetByWeight(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	bulk := b.fill(t, campaign.Spec{}, keys(2000), campaign.FillOptions{})
	client := asynq.NewClient(b.redis)
	t.Cleanup(func() { client.Close() })
	feeder := campaign.NewFeeder(b.store, client, nil, nil, campaign.FeederConfig{Window: 1000, Refill: time.Hour,
		Fleet: b.fleetAt(t, 50)})

	require.NoError(t, feeder.Cycle(ctx))
	require.EqualValues(t, 100, feeder.Stats().Total, "2 s at 50 calls/s")
	require.Equal(t, 100, b.pending(t, b.queue), "a run alone has the whole share")

	small := b.fill(t, campaign.Spec{}, keys(300), campaign.FillOptions{})
	require.NoError(t, feeder.Cycle(ctx))
	require.Equal(t, 150, b.pending(t, b.queue), "the new run gets its half; the bulk run's window is over its share")

	b.finish(t, bulk.Run.ID, 60)
	require.NoError(t, feeder.Cycle(ctx))
	require.EqualValues(t, 100+50+10, feeder.Stats().Dispatched, "the bulk run is topped up to its half only")

	b.fill(t, campaign.Spec{Priority: reverify.PriorityHigh}, keys(300), campaign.FillOptions{})
	b.finish(t, bulk.Run.ID, 100)
	b.finish(t, small.Run.ID, 50)
	require.NoError(t, feeder.Cycle(ctx))
	require.Equal(t, 50, b.pending(t, b.queue+"-high"), "high weighs 6 against 3 and 3: half of 100")
	// The normal runs a quarter each: the bulk run had 10 left in its
	// window (15 more), the small one none (25 more).
	require.EqualValues(t, 100+50+10+50+15+25, feeder.Stats().Dispatched)
}

// TestFeederGivesSpareShareToBusyRuns: what a run short of work leaves of
// its share goes to the runs that can use it, so the fleet is not starved
// by a nearly finished run.
func TestFeederGivesSpareShareToBusyRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.fill(t, campaign.Spec{}, keys(2000), campaign.FillOptions{})
	b.fill(t, campaign.Spec{Priority: reverify.PriorityLow}, keys(1000), campaign.FillOptions{})
	b.fill(t, campaign.Spec{}, keys(5), campaign.FillOptions{})
	client := asynq.NewClient(b.redis)
	t.Cleanup(func() { client.Close() })
	feeder := campaign.NewFeeder(b.store, client, nil, nil, campaign.FeederConfig{Window: 1000, Refill: time.Hour,
		Fleet: b.fleetAt(t, 35), Horizon: 2 * time.Second})
	require.NoError(t, feeder.Cycle(ctx))
	// Shares of 70 by 3:3:1 are 30, 30, 10; the small run takes 5 and
	// its 25 left over go 3:1 to the others (19 and 6).
	require.Equal(t, 30+19+5, b.pending(t, b.queue))
	require.Equal(t, 10+6, b.pending(t, b.queue+"-low"))
}

// TestFeederWithoutAFleetRate: a fleet with no rate limit gives each run
// a whole window, as before shares.
func TestFeederWithoutAFleetRate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.fill(t, campaign.Spec{}, keys(200), campaign.FillOptions{})
	b.fill(t, campaign.Spec{}, keys(200), campaign.FillOptions{})
	client := asynq.NewClient(b.redis)
	t.Cleanup(func() { client.Close() })
	feeder := campaign.NewFeeder(b.store, client, nil, nil, campaign.FeederConfig{Window: 40, Refill: time.Hour,
		Fleet: b.fleetAt(t, 0)})
	require.NoError(t, feeder.Cycle(ctx))
	require.Equal(t, 80, b.pending(t, b.queue))
	require.Zero(t, feeder.Stats().Total)
}

// TestRunWindowOfCappedRuns: a capped run's window is a few times its
// in-flight cap or two seconds of its rate now, so few of its tasks churn
// through the workers waiting for their turn.
func TestRunWindowOfCappedRuns(t *testing.T) {
	t.Parallel()
	night, err := reverify.ParseRateSchedule("TZ=UTC 20:00-08:00=50, 08:00-20:00=0")
	require.NoError(t, err)
	noon := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	midnight := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		lim    reverify.RunLimits
		window int
		at     time.Time
		want   int
	}{
		{"uncapped", reverify.RunLimits{}, 1000, noon, 1000},
		{"in flight", reverify.RunLimits{MaxInFlight: 10}, 1000, noon, 40},
		{"rate", reverify.RunLimits{MaxRate: 20}, 1000, noon, 40},
		{"both: the smaller", reverify.RunLimits{MaxRate: 100, MaxInFlight: 5}, 1000, noon, 20},
		{"schedule by night", reverify.RunLimits{Schedule: night}, 1000, midnight, 100},
		{"schedule at 0: a few", reverify.RunLimits{Schedule: night}, 1000, noon, 4},
		{"never above the window", reverify.RunLimits{MaxRate: 1000}, 50, noon, 50},
		{"a small window stays", reverify.RunLimits{MaxRate: 0.5}, 2, noon, 2},
	}
	for _, tt := range tests {
		got := campaign.RunWindow(reverify.Run{Limits: tt.lim}, tt.window, tt.at)
		require.Equal(t, tt.want, got, tt.name)
	}
}
