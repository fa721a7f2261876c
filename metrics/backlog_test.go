package metrics_test

import (
	"context"
	"net"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/internal/testenv"
	"reverify/metrics"
	"reverify/storage/postgres"
)

func TestBacklogFromTheLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := testenv.Ledger(t)
	run, err := store.CreateRun(ctx, postgres.NewRun{Name: t.Name(), Queue: "q", Priority: reverify.PriorityHigh,
		Source: reverify.Source{Kind: reverify.SourceManifest, Manifest: "test"}})
	require.NoError(t, err)
	_, err = store.AddObjects(ctx, run.ID, []reverify.ObjectRef{{Bucket: "b", Key: "1"}, {Bucket: "b", Key: "2"}, {Bucket: "b", Key: "3"}})
	require.NoError(t, err)

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, metrics.RegisterBacklog(reg, store, metrics.BacklogTimeout))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP reverify_backlog_objects Pending objects of the runs being sent (enqueuing, running), by run priority, from the ledger's counters. The same figure as the backlog view KEDA scales on.
# TYPE reverify_backlog_objects gauge
reverify_backlog_objects{priority="high"} 3
reverify_backlog_objects{priority="low"} 0
reverify_backlog_objects{priority="normal"} 0
# HELP reverify_backlog_up 1 if this scrape read the backlog from PostgreSQL, 0 if it failed or timed out (reverify_backlog_objects is then absent).
# TYPE reverify_backlog_up gauge
reverify_backlog_up 1
`)))

	_, _, err = store.CancelRun(ctx, run.ID, reverify.Actor{Who: "test"})
	require.NoError(t, err)
	require.Zero(t, backlogObjects(t, reg, reverify.PriorityHigh), "a cancelled run is no work")
}

// TestBacklogScrapeOutlivesAHungLedger freezes the connection to
// PostgreSQL: the scrape still answers within the timeout, with every other
// metric and the backlog marked down, and recovers when PostgreSQL does.
func TestBacklogScrapeOutlivesAHungLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	_, err := postgres.Migrate(ctx, dsn)
	require.NoError(t, err)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	proxy := startProxy(t, u.Host)
	u.Host = proxy.addr
	store, err := postgres.Open(ctx, u.String(), 2)
	require.NoError(t, err)
	t.Cleanup(store.Close)

	reg := prometheus.NewRegistry()
	metrics.NewPipeline(reg)
	const timeout = 500 * time.Millisecond
	require.NoError(t, metrics.RegisterBacklog(reg, store, timeout))
	srv := httptest.NewServer(metrics.Handler(reg))
	t.Cleanup(srv.Close)
	scrape := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return get(ctx, t, srv.URL)
	}

	require.Contains(t, scrape(), "reverify_backlog_up 1")

	proxy.freeze()
	start := time.Now()
	body := scrape()
	require.Less(t, time.Since(start), timeout+2*time.Second, "the scrape waited for PostgreSQL")
	require.Contains(t, body, "reverify_backlog_up 0")
	require.NotContains(t, body, "reverify_backlog_objects{")
	require.Contains(t, body, "reverify_api_circuit_open 0", "the other metrics are served")

	proxy.thaw()
	require.Eventually(t, func() bool { return strings.Contains(scrape(), "reverify_backlog_up 1") },
		10*time.Second, 100*time.Millisecond)
}

// backlogObjects reads reverify_backlog_objects{priority} from g.
func backlogObjects(t *testing.T, g prometheus.Gatherer, priority reverify.Priority) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "reverify_backlog_objects" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == string(priority) {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no reverify_backlog_objects{priority=%q}", priority)
	return 0
}

// proxy forwards TCP to a server; frozen, it holds whatever either side
// sends, as a server that stopped answering would.
type proxy struct {
	addr   string
	mu     sync.Mutex
	frozen chan struct{} // closed while thawed
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{addr: ln.Addr().String(), frozen: make(chan struct{})}
	close(p.frozen)
	var wg sync.WaitGroup
	var conns []net.Conn
	var connsMu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		p.thaw()
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			connsMu.Lock()
			conns = append(conns, in, out)
			connsMu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); p.pipe(out, in) }()
			go func() { defer wg.Done(); p.pipe(in, out) }()
		}
	}()
	return p
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.frozen
			p.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.frozen:
		p.frozen = make(chan struct{})
	default:
	}
}

func (p *proxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.frozen:
	default:
		close(p.frozen)
	}
}
