package scheduler_test

import (
	"context"
	"reverify"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify/campaign"
	"reverify/internal/testenv"
	"reverify/scheduler"
	"reverify/storage/postgres"
	"reverify/tasks"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	good := `{"schedules":[{"name":"nightly","cron":"0 2 * * *","timezone":"Europe/Berlin","bucket":"kyc","prefix":"s/",
		"modified_within":"24h","priority":"low","labels":{"team":"fraud"},"filters":{"suffixes":[".jpg"]},
		"max_rate":"TZ=Europe/Berlin Mon-Fri 08:00-20:00=5","max_in_flight":20}]}`
	f, err := scheduler.Load(strings.NewReader(good))
	require.NoError(t, err)
	require.Equal(t, "CRON_TZ=Europe/Berlin 0 2 * * *", f.Schedules[0].Spec())
	require.Equal(t, reverify.Duration(24*time.Hour), f.Schedules[0].ModifiedWithin)
	lim, err := f.Schedules[0].Limits()
	require.NoError(t, err)
	require.Equal(t, "TZ=Europe/Berlin Mon-Fri 08:00-20:00=5", lim.RateText())
	require.Equal(t, 20, lim.MaxInFlight)
	for name, bad := range map[string]string{
		"bad cron":      `{"schedules":[{"name":"x","cron":"61 * * * *","bucket":"b"}]}`,
		"bad tz":        `{"schedules":[{"name":"x","cron":"0 2 * * *","timezone":"Mars/Base","bucket":"b"}]}`,
		"no bucket":     `{"schedules":[{"name":"x","cron":"0 2 * * *"}]}`,
		"bad priority":  `{"schedules":[{"name":"x","cron":"0 2 * * *","bucket":"b","priority":"urgent"}]}`,
		"unknown key":   `{"schedules":[{"name":"x","cron":"0 2 * * *","bucket":"b","buckets":"c"}]}`,
		"empty":         `{"schedules":[]}`,
		"bad max rate":  `{"schedules":[{"name":"x","cron":"0 2 * * *","bucket":"b","max_rate":"fast"}]}`,
		"bad in flight": `{"schedules":[{"name":"x","cron":"0 2 * * *","bucket":"b","max_in_flight":-1}]}`,
	} {
		_, err := scheduler.Load(strings.NewReader(bad))
		require.Error(t, err, name)
	}
}

// TestOneLeader runs two schedulers on one lock key: one acts; when it
// stops, the other takes over within the lock's TTL.
func TestOneLeader(t *testing.T) {
	addr := testenv.RedisAddr(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	require.NoError(t, rdb.Del(ctx, scheduler.LockKey).Err())
	s := []scheduler.Schedule{{Name: "t", Cron: "0 0 1 1 *", Bucket: "b"}}
	var leading [2]atomic.Bool
	cancels := make([]context.CancelFunc, 2)
	dones := make([]chan struct{}, 2)
	for i := range 2 {
		r := scheduler.NewRunner(rdb, asynq.RedisClientOpt{Addr: addr}, s, "inst-"+string(rune('a'+i)), 600*time.Millisecond, nil)
		r.OnLead = func(on bool) { leading[i].Store(on) }
		c, cancel := context.WithCancel(ctx)
		cancels[i], dones[i] = cancel, make(chan struct{})
		go func() { defer close(dones[i]); _ = r.Run(c) }()
	}
	t.Cleanup(func() {
		for i := range 2 {
			cancels[i]()
			<-dones[i]
		}
	})
	require.Eventually(t, func() bool { return leading[0].Load() != leading[1].Load() }, 5*time.Second, 20*time.Millisecond)
	time.Sleep(time.Second)
	require.NotEqual(t, leading[0].Load(), leading[1].Load(), "exactly one leads")
	first := 0
	if leading[1].Load() {
		first = 1
	}
	cancels[first]()
	<-dones[first]
	require.Eventually(t, func() bool { return leading[1-first].Load() }, 5*time.Second, 20*time.Millisecond)
}

// TestFireCreatesOneRunPerFiring handles a firing twice (a retry): one run,
// named after the schedule, with its plan task queued.
func TestFireCreatesOneRunPerFiring(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := testenv.Ledger(t)
	redisOpt := asynq.RedisClientOpt{Addr: testenv.RedisAddr(t)}
	client := asynq.NewClient(redisOpt)
	t.Cleanup(func() { client.Close() })
	base := testenv.Queue(t)

	task, err := scheduler.NewFireTask(scheduler.Schedule{Name: "nightly", Cron: "0 2 * * *", TimeZone: "Europe/Berlin",
		Bucket: "kyc", Prefix: "s/", Priority: "low", Queue: base, ModifiedWithin: reverify.Duration(24 * time.Hour),
		MaxRate: "TZ=UTC 00:00-06:00=50", MaxInFlight: 8})
	require.NoError(t, err)
	f := scheduler.NewFirer(campaign.New(campaign.Deps{Ledger: store, Queue: client}))
	for range 2 { // a retried firing
		require.NoError(t, f.ProcessTask(ctx, task))
	}
	runs, err := store.Runs(ctx, postgres.RunFilter{Labels: map[string]string{"schedule": "nightly"}})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	require.Contains(t, runs[0].Name, "schedule nightly @ ")
	require.Equal(t, base+"-low", runs[0].Queue)
	require.Equal(t, "TZ=UTC 00:00-06:00=50", runs[0].Limits.RateText(), "the schedule's runs carry its caps")
	require.Equal(t, 8, runs[0].Limits.MaxInFlight)
	audit, err := store.AuditLog(ctx, postgres.AuditFilter{RunID: runs[0].ID})
	require.NoError(t, err)
	require.Len(t, audit, 1, "one run created, audited once")
	require.Equal(t, []any{"scheduler:nightly", reverify.AuditFromScheduler, reverify.AuditRunCreate},
		[]any{audit[0].Actor, audit[0].Source, audit[0].Action})
	insp := asynq.NewInspector(redisOpt)
	t.Cleanup(func() { insp.Close() })
	info, err := insp.GetTaskInfo(base+"-low", "plan:"+runs[0].ID)
	require.NoError(t, err)
	require.Equal(t, tasks.TypePlan, info.Type)
}
