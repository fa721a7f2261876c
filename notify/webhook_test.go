package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/internal/testenv"
	"reverify/notify"
	"reverify/storage/postgres"
	"reverify/worker/fleet"
)

const secret = "whsec_test_5f2c"

// receiver is a webhook endpoint that checks signatures, fails the first
// attempt of every json delivery (so each is retried), and keeps what it
// accepted.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	attempts map[string]int           // delivery ID -> attempts seen
	bodies   map[string][]notify.Body // path -> accepted json bodies
	slack    []string                 // accepted Slack texts
	refused  int                      // requests of /gone
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, attempts: map[string]int{}, bodies: map[string][]notify.Body{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		r.t.Errorf("read request: %v", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case req.URL.Path == "/gone":
		r.refused++
		http.Error(w, "no such hook", http.StatusGone)
		return
	case strings.HasPrefix(req.URL.Path, "/slack"):
		var m struct{ Text string }
		if req.Header.Get(notify.SignatureHeader) != "" || json.Unmarshal(body, &m) != nil || m.Text == "" {
			r.t.Errorf("not a Slack message: %s", body)
		}
		r.slack = append(r.slack, m.Text)
		fmt.Fprint(w, "ok")
		return
	}
	sig := req.Header.Get(notify.SignatureHeader)
	if err := notify.Verify(secret, sig, body, 5*time.Minute, time.Now()); err != nil {
		r.t.Errorf("%s: %v", req.URL.Path, err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if notify.Verify("another secret", sig, body, 5*time.Minute, time.Now()) == nil ||
		notify.Verify(secret, sig, append(body, ' '), 5*time.Minute, time.Now()) == nil ||
		notify.Verify(secret, sig, body, 5*time.Minute, time.Now().Add(10*time.Minute)) == nil {
		r.t.Errorf("%s: a signature that should not verify did", req.URL.Path)
	}
	if req.Header.Get("Content-Type") != "application/json" {
		r.t.Errorf("%s: Content-Type %q", req.URL.Path, req.Header.Get("Content-Type"))
	}
	id := req.Header.Get(notify.DeliveryHeader)
	if r.attempts[id]++; r.attempts[id] == 1 {
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	var b notify.Body
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || string(b.Type) != req.Header.Get(notify.EventHeader) {
		r.t.Errorf("%s: body %s (%v) for event %s", req.URL.Path, body, err, req.Header.Get(notify.EventHeader))
	}
	r.bodies[req.URL.Path] = append(r.bodies[req.URL.Path], b)
	w.WriteHeader(http.StatusNoContent)
}

// got returns the bodies path accepted, by event.
func (r *receiver) got(path string) map[reverify.Event][]notify.Body {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[reverify.Event][]notify.Body{}
	for _, b := range r.bodies[path] {
		out[b.Type] = append(out[b.Type], b)
	}
	return out
}

// one returns the only body of ev path accepted.
func (r *receiver) one(path string, ev reverify.Event) notify.Body {
	r.t.Helper()
	bs := r.got(path)[ev]
	require.Len(r.t, bs, 1, "%s: %s", path, ev)
	return bs[0]
}

func (r *receiver) count(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies[path])
}

// TestWebhooksForEveryEvent drives runs through every lifecycle event
// and the fleet through its circuits and budget, with the events recorded
// before any sender runs (as after a restart), then checks what the
// webhooks received: a signed document per event, retried after a 503,
// Slack messages, a refusing webhook given up, and every attempt recorded.
func TestWebhooksForEveryEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := testenv.Ledger(t)
	rx := newReceiver(t)
	who := reverify.Actor{Who: "alice@ops", Why: "wrong prefix"}

	newRun := func(name string, th *reverify.Threshold, hooks ...string) reverify.Run {
		t.Helper()
		r, err := store.CreateRun(ctx, postgres.NewRun{Name: name, Queue: "q", Threshold: th, Notify: hooks,
			Source: reverify.Source{Kind: reverify.SourcePrefix, Bucket: "kyc", Prefix: name + "/"}, Labels: map[string]string{"team": "fraud"}})
		require.NoError(t, err)
		var objs []reverify.ObjectRef
		for i := range 3 {
			objs = append(objs, reverify.ObjectRef{Bucket: "kyc", Key: fmt.Sprintf("%s/%d.jpg", name, i)})
		}
		_, err = store.AddObjects(ctx, r.ID, objs)
		require.NoError(t, err)
		return r
	}
	finish := func(r reverify.Run, st reverify.Status) {
		t.Helper()
		for i := range 3 {
			require.NoError(t, store.RecordResult(ctx, postgres.Result{RunID: r.ID, Status: st,
				Object: reverify.ObjectRef{Bucket: "kyc", Key: fmt.Sprintf("%s/%d.jpg", r.Name, i)}}))
		}
	}

	// A run that waits for confirmation, starts and completes, told to a
	// json webhook, a Slack one and one that refuses everything.
	done := newRun("done", nil, rx.srv.URL+"/run", "slack:"+rx.srv.URL+"/slack", rx.srv.URL+"/gone")
	_, err := store.HoldForConfirmation(ctx, done.ID, reverify.Actor{Who: "enqueue", Why: "3 objects"})
	require.NoError(t, err)
	_, err = store.ConfirmRun(ctx, done.ID, reverify.Actor{Who: "bob@ops"})
	require.NoError(t, err)
	require.NoError(t, store.StartRun(ctx, done.ID))
	finish(done, reverify.StatusScored)
	ids, err := store.CompleteFinishedRuns(ctx)
	require.NoError(t, err)
	require.Contains(t, ids, done.ID)

	// One that fails its threshold, one that is cancelled.
	failing := newRun("failing", &reverify.Threshold{Percent: 50, MinDone: 1, Count: 2})
	require.NoError(t, store.StartRun(ctx, failing.ID))
	finish(failing, reverify.StatusNotFound)
	ids, err = store.FailRunsOverThreshold(ctx)
	require.NoError(t, err)
	require.Contains(t, ids, failing.ID)
	doomed := newRun("doomed", nil)
	_, _, err = store.CancelRun(ctx, doomed.ID, who)
	require.NoError(t, err)

	// One still running, whose webhook hears of the fleet's events too.
	busy := newRun("busy", nil, rx.srv.URL+"/busy")
	require.NoError(t, store.StartRun(ctx, busy.ID))

	// The fleet spends its budget and opens both circuits, each told once.
	rec := notify.NewRecorder(store, nil)
	rdb := goredis.NewClient(&goredis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { rdb.Close() })
	gov := fleet.New(rdb, fleet.Config{Prefix: "{" + testenv.Queue(t) + "}:", DailyBudget: 2, OutageMinFails: 2, Events: rec})
	for range 2 {
		p, err := gov.Admit(ctx, "h")
		require.NoError(t, err)
		gov.Release(ctx, p)
	}
	_, err = gov.Admit(ctx, "h")
	require.ErrorAs(t, err, new(*fleet.Denied), "the budget is spent")
	for range 3 {
		_, err = gov.Report(ctx, fleet.Transient, "")
		require.NoError(t, err)
		_, err = gov.Report(ctx, fleet.AuthError, "HTTP 401")
		require.NoError(t, err)
	}
	rec.Close()

	// Only now does a sender start, as after a restart.
	sender, err := notify.NewSender(store, nil, notify.Config{
		Hooks: []string{rx.srv.URL + "/fleet"}, Secret: secret,
		Every: 20 * time.Millisecond, RetryBase: 20 * time.Millisecond, RetryCap: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	sctx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- sender.Run(sctx) }()
	t.Cleanup(func() { stop(); <-stopped })

	// Every event reaches the fleet's webhook; three runs started and two
	// circuits opened.
	want := map[reverify.Event]int{reverify.EventConfirmationNeeded: 1, reverify.EventRunStarted: 3, reverify.EventRunCompleted: 1,
		reverify.EventRunFailed: 1, reverify.EventRunCancelled: 1, reverify.EventCircuitOpened: 2, reverify.EventBudgetSpent: 1}
	require.Len(t, want, len(reverify.Events()), "the test covers every event")
	require.Eventually(t, func() bool {
		return rx.count("/fleet") == 10 && rx.count("/run") == 3 && rx.count("/busy") == 4
	}, 30*time.Second, 50*time.Millisecond, "fleet %d, run %d, busy %d", rx.count("/fleet"), rx.count("/run"), rx.count("/busy"))
	got := rx.got("/fleet")
	for ev, n := range want {
		require.Len(t, got[ev], n, "%s", ev)
		for _, b := range got[ev] {
			require.NotZero(t, b.ID)
			require.WithinDuration(t, time.Now(), b.CreatedAt, time.Minute)
			require.Equal(t, ev.RunEvent(), b.Run != nil, "%s", ev)
			require.Equal(t, !ev.RunEvent(), b.Fleet != nil, "%s", ev)
		}
	}

	c := rx.one("/fleet", reverify.EventConfirmationNeeded)
	require.Equal(t, done.ID, c.Run.ID)
	require.Equal(t, "done", c.Run.Name)
	require.Equal(t, reverify.RunAwaitingConfirmation, c.Run.Status)
	require.EqualValues(t, 3, c.Run.Total)
	require.Equal(t, map[reverify.Status]int64{reverify.StatusPending: 3}, c.Run.ByStatus)
	require.Equal(t, map[string]string{"team": "fraud"}, c.Run.Labels)
	require.Equal(t, "s3://kyc/done/", c.Run.Source.String())
	require.Equal(t, "enqueue", c.Actor)
	var started []string
	for _, b := range got[reverify.EventRunStarted] {
		require.Equal(t, reverify.RunRunning, b.Run.Status)
		started = append(started, b.Run.ID)
	}
	require.ElementsMatch(t, []string{done.ID, failing.ID, busy.ID}, started)
	completed := rx.one("/fleet", reverify.EventRunCompleted)
	require.Equal(t, done.ID, completed.Run.ID)
	require.Equal(t, reverify.RunCompleted, completed.Run.Status)
	require.Equal(t, map[reverify.Status]int64{reverify.StatusScored: 3}, completed.Run.ByStatus)
	failed := rx.one("/fleet", reverify.EventRunFailed)
	require.Equal(t, failing.ID, failed.Run.ID)
	require.Contains(t, failed.Reason, "failure threshold crossed")
	require.Equal(t, "reverify-worker", failed.Actor)
	require.EqualValues(t, 3, failed.Run.ByStatus[reverify.StatusNotFound])
	cancelled := rx.one("/fleet", reverify.EventRunCancelled)
	require.Equal(t, doomed.ID, cancelled.Run.ID)
	require.Equal(t, "alice@ops", cancelled.Actor)
	require.Equal(t, "wrong prefix", cancelled.Reason)
	require.Equal(t, map[reverify.Status]int64{reverify.StatusPending: 3}, cancelled.Run.ByStatus,
		"counts as they stood: the pending objects become cancelled after")
	budget := rx.one("/fleet", reverify.EventBudgetSpent)
	require.Equal(t, &notify.FleetInfo{Day: time.Now().UTC().Format(time.DateOnly), DailyBudget: 2}, budget.Fleet)
	var circuits []notify.FleetInfo
	for _, b := range got[reverify.EventCircuitOpened] {
		circuits = append(circuits, *b.Fleet)
	}
	require.ElementsMatch(t, []notify.FleetInfo{
		{Circuit: reverify.WaitOutageCircuit, CooldownSeconds: 30},
		{Circuit: reverify.WaitAuthCircuit, CooldownSeconds: 60},
	}, circuits, "each circuit told once")
	require.Equal(t, "HTTP 401", func() string {
		for _, b := range got[reverify.EventCircuitOpened] {
			if b.Fleet.Circuit == reverify.WaitAuthCircuit {
				return b.Reason
			}
		}
		return ""
	}())

	// A run's webhooks hear of its own events; a running run's, of the
	// fleet's too.
	require.ElementsMatch(t, []reverify.Event{reverify.EventConfirmationNeeded, reverify.EventRunStarted, reverify.EventRunCompleted},
		keys(rx.got("/run")))
	require.Equal(t, busy.ID, rx.one("/busy", reverify.EventRunStarted).Run.ID)
	require.Len(t, rx.got("/busy")[reverify.EventCircuitOpened], 2)
	rx.one("/busy", reverify.EventBudgetSpent)

	// The ledger recorded every attempt: json retried once after the 503,
	// Slack sent at once, the refusing webhook given up at its first answer.
	var ds []postgres.DeliveryState
	require.Eventually(t, func() bool {
		ds, err = store.RunDeliveries(ctx, done.ID)
		require.NoError(t, err)
		for _, d := range ds {
			if d.DeliveredAt == nil && !d.GivenUp {
				return false
			}
		}
		return len(ds) == 12
	}, 10*time.Second, 20*time.Millisecond, "3 events, 4 webhooks each")
	for _, d := range ds {
		switch {
		case strings.HasSuffix(d.URL, "/run"), strings.HasSuffix(d.URL, "/fleet"):
			require.Equal(t, 2, d.Attempts, "%s", d.Event)
			require.NotNil(t, d.DeliveredAt)
			require.Equal(t, 204, d.LastStatus)
			require.Empty(t, d.LastError, "cleared once delivered")
		case strings.HasSuffix(d.URL, "/slack"):
			require.Equal(t, 1, d.Attempts)
			require.NotNil(t, d.DeliveredAt)
		default:
			require.True(t, d.GivenUp, "%s", d.URL)
			require.Equal(t, 1, d.Attempts, "a 410 is not retried")
			require.Equal(t, 410, d.LastStatus)
			require.Equal(t, "HTTP 410: no such hook", d.LastError)
		}
	}
	rx.mu.Lock()
	defer rx.mu.Unlock()
	require.Equal(t, 3, rx.refused)
	require.Len(t, rx.slack, 3)
	texts := strings.Join(rx.slack, "\n")
	require.Contains(t, texts, "Run *done* (`"+done.ID+"`) waits for confirmation: 3 objects")
	require.Contains(t, texts, "completed: 3 objects: scored 3")
}

func keys(m map[reverify.Event][]notify.Body) []reverify.Event {
	out := make([]reverify.Event, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
