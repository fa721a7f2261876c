package fleet_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify/liveness/fakeapi"
	"reverify/worker/fleet"
)

func TestOneCutPerOverload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pfx := prefix(t)
	gs := governors(t, 3, fleet.Config{Prefix: pfx, Adaptive: true, Law: fleet.Cubic{Window: 500 * time.Millisecond}})
	_, err := gs[0].Admit(ctx, "first") // starts the fleet's state
	require.NoError(t, err)
	st, err := gs[1].Status(ctx)
	require.NoError(t, err)
	require.True(t, st.Adaptive)
	require.InDelta(t, 10, st.Rate, 0.5, "a fleet starts at 10 calls/s")

	time.Sleep(600 * time.Millisecond) // past the reaction window
	sent := time.Now()
	var cuts atomic.Int32
	var wg sync.WaitGroup
	for i := range 30 { // ten 429s seen by each of three workers
		wg.Go(func() {
			cut, err := gs[i%3].Adapt(ctx, sent, 10*time.Millisecond, fleet.SignalLimited)
			require.NoError(t, err)
			if cut {
				cuts.Add(1)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(1), cuts.Load(), "one cut for one overload")
	st, err = gs[2].Status(ctx)
	require.NoError(t, err)
	require.Equal(t, fleet.RateBackoff429, st.RateReason)
	require.Less(t, st.Rate, 10.0)

	// A 429 to a call sent before the cut does not cut again.
	time.Sleep(600 * time.Millisecond)
	cut, err := gs[0].Adapt(ctx, sent, 10*time.Millisecond, fleet.SignalLimited)
	require.NoError(t, err)
	require.False(t, cut)

	// `runs show` knows no settings: it reads the ones the workers announce.
	require.NoError(t, gs[0].Announce(ctx))
	bare := fleet.New(redisClient(t), fleet.Config{Prefix: pfx})
	st, err = bare.Status(ctx)
	require.NoError(t, err)
	require.True(t, st.Adaptive)
	require.Contains(t, []fleet.RateReason{fleet.RateBackoff429, fleet.RateRecovering}, st.RateReason, "growing back after the cut")
	require.Positive(t, st.Rate)
}

func TestFixedRateStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pfx := prefix(t)
	g := governors(t, 1, fleet.Config{Prefix: pfx, RatePerSecond: 42})[0]
	require.NoError(t, g.Announce(ctx))
	st, err := fleet.New(redisClient(t), fleet.Config{Prefix: pfx}).Status(ctx)
	require.NoError(t, err)
	require.False(t, st.Adaptive)
	require.Equal(t, 42.0, st.Rate)
	require.Equal(t, fleet.RateConfigured, st.RateReason)
}

// TestAdaptiveFleetFindsHiddenLimit runs three governors (three worker
// processes' worth) against the fake API with a hidden limit of r calls/s
// that later halves. The bounds are loose: the machine may be busy.
func TestAdaptiveFleetFindsHiddenLimit(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs for 35 s")
	}
	const r = 60.0
	fake := fakeapi.New(fakeapi.Options{HiddenRate: r, Latency: 20 * time.Millisecond})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	body := []byte(`{"faceImage":"` + base64.StdEncoding.EncodeToString(fakeapi.GeneratePNG(1, 64, 64)) + `"}`)
	gs := governors(t, 3, fleet.Config{Adaptive: true, MaxWait: time.Second})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := range 30 { // ten callers per governor: demand well above r
		g := gs[i%3]
		wg.Go(func() {
			for ctx.Err() == nil {
				p, err := g.Admit(ctx, "")
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				sent := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/liveness", bytes.NewReader(body))
				res, err := srv.Client().Do(req)
				g.Release(ctx, p)
				if err != nil {
					continue
				}
				res.Body.Close()
				sig := fleet.SignalAnswered
				if res.StatusCode == http.StatusTooManyRequests {
					sig = fleet.SignalLimited
				}
				_, _ = g.Adapt(ctx, sent, time.Since(sent), sig)
			}
		})
	}
	wg.Go(func() { // ends before the test does: it logs to t
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			st, _ := gs[0].Status(ctx)
			t.Logf("fleet rate %.1f/s (%s); answers so far %v", st.Rate, st.RateReason, fake.Stats().ByStatus)
		}
	})
	// window counts the answers during d after settle.
	window := func(settle, d time.Duration) (okPerSec, limitedShare float64) {
		time.Sleep(settle)
		before := fake.Stats()
		time.Sleep(d)
		after := fake.Stats()
		ok := after.ByStatus[200] - before.ByStatus[200]
		limited := after.ByStatus[429] - before.ByStatus[429]
		return float64(ok) / d.Seconds(), float64(limited) / float64(max(ok+limited, 1))
	}
	ok, share := window(12*time.Second, 6*time.Second)
	t.Logf("hidden limit %v/s: %.1f calls/s answered 200, %.1f%% 429", r, ok, 100*share)
	require.GreaterOrEqual(t, ok, 0.65*r)
	require.LessOrEqual(t, ok, 1.1*r)
	require.LessOrEqual(t, share, 0.1)

	fake.SetOptions(fakeapi.Options{HiddenRate: r / 2, Latency: 20 * time.Millisecond})
	ok, share = window(10*time.Second, 6*time.Second)
	t.Logf("hidden limit %v/s: %.1f calls/s answered 200, %.1f%% 429", r/2, ok, 100*share)
	require.GreaterOrEqual(t, ok, 0.65*r/2)
	require.LessOrEqual(t, share, 0.1)
	st, err := gs[0].Status(ctx)
	require.NoError(t, err)
	require.Less(t, st.Rate, 1.5*r/2, "the fleet's rate follows the limit down")
	cancel()
	wg.Wait()
}
