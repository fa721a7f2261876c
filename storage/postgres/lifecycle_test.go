package postgres_test

import (
	"context"
	"fmt"
	"reverify"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

func newStore(t *testing.T) *postgres.Store { return testenv.Ledger(t) }

// seedRun creates a running run with n pending objects.
func seedRun(t *testing.T, s *postgres.Store, n int, nr postgres.NewRun) reverify.Run {
	t.Helper()
	ctx := context.Background()
	if nr.Name == "" {
		nr.Name = t.Name()
	}
	nr.Queue, nr.Source = "q", reverify.Source{Kind: reverify.SourceManifest, Manifest: "test"}
	run, err := s.CreateRun(ctx, nr)
	require.NoError(t, err)
	objs := make([]reverify.ObjectRef, n)
	for i := range objs {
		objs[i] = reverify.ObjectRef{Bucket: "b", Key: fmt.Sprintf("k%05d", i)}
	}
	_, err = s.AddObjects(ctx, run.ID, objs)
	require.NoError(t, err)
	require.NoError(t, s.StartRun(ctx, run.ID))
	run, err = s.Run(ctx, run.ID)
	require.NoError(t, err)
	return run
}

func finish(t *testing.T, s *postgres.Store, runID string, from, to int, status reverify.Status, score float64) {
	t.Helper()
	for i := from; i < to; i++ {
		r := postgres.Result{RunID: runID, Object: reverify.ObjectRef{Bucket: "b", Key: fmt.Sprintf("k%05d", i)}, Status: status}
		if status == reverify.StatusScored {
			sc := score
			r.Score = &sc
		}
		require.NoError(t, s.RecordResult(context.Background(), r))
	}
}

func TestRunLifecycle(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	me := reverify.Actor{Who: "alice@ops", Why: "wrong prefix"}

	run := seedRun(t, s, 10, postgres.NewRun{Labels: map[string]string{"team": "fraud"}, Priority: reverify.PriorityHigh})
	require.Equal(t, reverify.RunRunning, run.Status)
	require.Equal(t, map[string]string{"team": "fraud"}, run.Labels)
	require.Equal(t, reverify.PriorityHigh, run.Priority)
	require.Equal(t, reverify.DefaultThreshold(), run.Threshold)

	_, err := s.ResumeRun(ctx, run.ID, me)
	require.ErrorIs(t, err, postgres.ErrInvalidTransition)
	_, err = s.PauseRun(ctx, run.ID, me)
	require.NoError(t, err)
	st, err := s.RunState(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, reverify.RunPaused, st)
	_, err = s.ResumeRun(ctx, run.ID, me)
	require.NoError(t, err)

	finish(t, s, run.ID, 0, 3, reverify.StatusScored, 90)
	run, n, err := s.CancelRun(ctx, run.ID, me)
	require.NoError(t, err)
	require.EqualValues(t, 7, n)
	require.Equal(t, reverify.RunCancelled, run.Status)
	require.NotNil(t, run.FinishedAt)
	_, start, err := s.BeginCall(ctx, run.ID, reverify.ObjectRef{Bucket: "b", Key: "k00005"}, time.Minute)
	require.NoError(t, err)
	require.Equal(t, postgres.AlreadyDone, start, "a cancelled object never reaches the API")
	_, _, err = s.CancelRun(ctx, run.ID, me)
	require.ErrorIs(t, err, postgres.ErrInvalidTransition)

	run, n, err = s.RetryObjects(ctx, run.ID, []reverify.Status{reverify.StatusCancelled}, reverify.Actor{Who: "bob", Why: "try again"})
	require.NoError(t, err)
	require.EqualValues(t, 7, n)
	require.Equal(t, reverify.RunRunning, run.Status)
	require.Nil(t, run.FinishedAt)

	hist, err := s.History(ctx, run.ID)
	require.NoError(t, err)
	var steps []string
	for _, h := range hist {
		steps = append(steps, h.From+">"+h.To)
	}
	require.Equal(t, []string{">enqueuing", "enqueuing>running", "running>paused", "paused>running",
		"running>cancelled", "cancelled>running"}, steps)
	require.Equal(t, "alice@ops", hist[4].Actor)
	require.Equal(t, "wrong prefix", hist[4].Reason)
	require.Equal(t, "bob", hist[5].Actor)

	_, err = s.PauseRun(ctx, "00000000-0000-0000-0000-000000000000", me)
	require.ErrorIs(t, err, postgres.ErrRunNotFound)

	runs, err := s.Runs(ctx, postgres.RunFilter{Labels: map[string]string{"team": "fraud"}})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	runs, err = s.Runs(ctx, postgres.RunFilter{Labels: map[string]string{"team": "other"}})
	require.NoError(t, err)
	require.Empty(t, runs)
}

func TestConfirmationAndTriggerKey(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	a := reverify.Actor{Who: "scheduler:nightly"}
	run, err := s.CreateRun(ctx, postgres.NewRun{Name: "x", Queue: "q", TriggerKey: "fire-1", Actor: a})
	require.NoError(t, err)
	again, err := s.CreateRun(ctx, postgres.NewRun{Name: "x", Queue: "q", TriggerKey: "fire-1", Actor: a})
	require.NoError(t, err)
	require.Equal(t, run.ID, again.ID, "a retried firing does not create a second run")

	_, err = s.HoldForConfirmation(ctx, run.ID, reverify.Actor{Who: "cli", Why: "5000 paid calls"})
	require.NoError(t, err)
	st, _ := s.RunState(ctx, run.ID)
	require.Equal(t, reverify.RunAwaitingConfirmation, st)
	run, err = s.ConfirmRun(ctx, run.ID, reverify.Actor{Who: "carol"})
	require.NoError(t, err)
	require.Equal(t, reverify.RunEnqueuing, run.Status)
}

func TestFailureThreshold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		th            *reverify.Threshold
		failed, score int
		wantFail      bool
	}{
		{"default: 60% of 1000 failed", nil, 600, 400, true},
		{"default: exactly 50% is not more than half", nil, 500, 500, false},
		{"default: under 1000 done never fails", nil, 900, 0, false},
		{"count", &reverify.Threshold{Percent: 100, Count: 5}, 5, 0, true},
		{"percent with small minimum", &reverify.Threshold{Percent: 10, MinDone: 10}, 3, 7, true},
		{"percent 0: any failure once the minimum is done", &reverify.Threshold{Percent: 0, MinDone: 1}, 1, 10, true},
		{"default: few failures among many done", nil, 10, 1500, false},
	}
	s := newStore(t)
	ctx := context.Background()
	runs := make([]reverify.Run, len(tests))
	for i, tt := range tests {
		runs[i] = seedRun(t, s, tt.failed+tt.score+5, postgres.NewRun{Name: tt.name, Threshold: tt.th})
		finish(t, s, runs[i].ID, 0, tt.failed, reverify.StatusNotFound, 0)
		finish(t, s, runs[i].ID, tt.failed, tt.failed+tt.score, reverify.StatusScored, 50)
	}
	ids, err := s.FailRunsOverThreshold(ctx)
	require.NoError(t, err)
	for i, tt := range tests {
		p, err := s.Progress(ctx, runs[i].ID)
		require.NoError(t, err)
		if tt.wantFail {
			require.Contains(t, ids, runs[i].ID, tt.name)
			require.Equal(t, reverify.RunFailed, p.Run.Status, tt.name)
			require.EqualValues(t, 5, p.ByStatus[reverify.StatusCancelled], tt.name)
			h, err := s.History(ctx, runs[i].ID)
			require.NoError(t, err)
			require.Contains(t, h[len(h)-1].Reason, "failure threshold crossed")
		} else {
			require.NotContains(t, ids, runs[i].ID, tt.name)
			require.Equal(t, reverify.RunRunning, p.Run.Status, tt.name)
		}
	}
}

func TestViews(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	first := seedRun(t, s, 4, postgres.NewRun{Name: "v6"})
	finish(t, s, first.ID, 0, 4, reverify.StatusScored, 80)
	time.Sleep(10 * time.Millisecond)
	second := seedRun(t, s, 4, postgres.NewRun{Name: "v7"})
	finish(t, s, second.ID, 0, 3, reverify.StatusScored, 35)
	finish(t, s, second.ID, 3, 4, reverify.StatusNotFound, 0)

	for _, v := range postgres.Views {
		tab, err := s.View(ctx, v, "", 0)
		require.NoError(t, err, v)
		require.NotEmpty(t, tab.Columns, v)
	}
	sum, err := s.View(ctx, "run_summary", second.ID, 0)
	require.NoError(t, err)
	require.Len(t, sum.Rows, 1)
	row := map[string]any{}
	for i, c := range sum.Columns {
		row[c] = sum.Rows[0][i]
	}
	require.EqualValues(t, 3, row["scored"])
	require.EqualValues(t, 1, row["not_found"])

	drift, err := s.View(ctx, "score_drift", second.ID, 0)
	require.NoError(t, err)
	require.Len(t, drift.Rows, 3, "three objects scored in both runs")

	latest, err := s.View(ctx, "latest_verification", "", 0)
	require.NoError(t, err)
	require.Len(t, latest.Rows, 4)

	_, err = s.View(ctx, "runs; DROP TABLE runs", "", 0)
	require.ErrorIs(t, err, postgres.ErrUnknownView)

	recent, err := s.RecentlyScored(ctx, []reverify.ObjectRef{{Bucket: "b", Key: "k00000"}, {Bucket: "b", Key: "k00003"},
		{Bucket: "b", Key: "nope"}}, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, map[reverify.ObjectRef]bool{{Bucket: "b", Key: "k00000"}: true, {Bucket: "b", Key: "k00003"}: true}, recent)
}
