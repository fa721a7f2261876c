package main

import (
	"context"
	"fmt"
	"reverify"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"reverify/storage/postgres"
	"reverify/worker"
)

// ledgerFigures is case 5: how fast the ledger takes rows.
type ledgerFigures struct {
	Case       string  `json:"case"`
	Rows       int     `json:"rows"`
	Writers    int     `json:"writers"`
	PoolConns  int     `json:"pool_conns"`
	Seconds    float64 `json:"seconds"`
	RowsPerSec float64 `json:"rows_per_sec"`
	// WritesPerCommit is how many writes shared a transaction, grouped.
	WritesPerCommit float64 `json:"writes_per_commit,omitempty"`
	// PostgresCPUMs is PostgreSQL's CPU per row, every process.
	PostgresCPUMs float64 `json:"postgres_cpu_ms_per_row,omitempty"`
}

func (f ledgerFigures) rate() float64 { return f.RowsPerSec }

// ledgerCase records rows pending objects with AddObjects (the producer's
// write), then runs each through the worker's result path, BeginCall +
// FinishCall with a score, from writers goroutines over a pool sized as
// `reverify worker --concurrency writers` sizes it; grouped, the writes
// share commits as the worker's do.
func (e *env) ledgerCase(ctx context.Context, rows, writers int, grouped bool) ([]ledgerFigures, error) {
	pool := worker.LedgerConns(writers)
	store, err := postgres.Open(ctx, e.dbURL, int32(pool))
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	defer store.Close()
	mode := "each write its own commit"
	if grouped {
		flushers := worker.LedgerFlushers(pool)
		store.GroupWrites(flushers)
		mode = fmt.Sprintf("group commit, %d flushers", flushers)
	}
	run, err := store.CreateRun(ctx, postgres.NewRun{Name: "bench ledger", Queue: "bench-ledger-" + randomHex(4),
		Options: map[string]string{}})
	if err != nil {
		return nil, fmt.Errorf("create run: %w", err)
	}
	objs := make([]reverify.ObjectRef, rows)
	for i := range objs {
		objs[i] = reverify.ObjectRef{Bucket: "bench", Key: fmt.Sprintf("ledger/subject-%07d/selfie.jpg", i)}
	}

	start := time.Now()
	for i := 0; i < rows; i += 1000 {
		if _, err := store.AddObjects(ctx, run.ID, objs[i:min(i+1000, rows)]); err != nil {
			return nil, fmt.Errorf("add objects: %w", err)
		}
	}
	add := ledgerFigures{Case: "AddObjects (1,000/batch)", Rows: rows, Writers: 1, PoolConns: pool, Seconds: time.Since(start).Seconds()}
	add.RowsPerSec = float64(rows) / add.Seconds

	servers := newServerCPU()
	pg0, _, err := servers.sample()
	if err != nil {
		return nil, err
	}
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	start = time.Now()
	for range writers {
		g.Go(func() error {
			for {
				i := int(next.Add(1)) - 1
				if i >= rows {
					return nil
				}
				if err := writeResult(gctx, store, run.ID, objs[i]); err != nil {
					return err
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res := ledgerFigures{Case: fmt.Sprintf("result path, %d writers, %s", writers, mode), Rows: rows, Writers: writers, PoolConns: pool,
		Seconds: time.Since(start).Seconds()}
	res.RowsPerSec = float64(rows) / res.Seconds
	pg1, _, err := servers.sample()
	if err != nil {
		return nil, err
	}
	res.PostgresCPUMs = float64((pg1 - pg0).Microseconds()) / 1000 / float64(rows)
	if st := store.WriteStats(); st.Commits > 0 {
		res.WritesPerCommit = float64(st.Writes) / float64(st.Commits)
	}
	return []ledgerFigures{add, res}, nil
}

// writeResult is what the worker writes for one scored image.
func writeResult(ctx context.Context, store *postgres.Store, runID string, obj reverify.ObjectRef) error {
	id, st, err := store.BeginCall(ctx, runID, obj, time.Minute)
	if err != nil {
		return fmt.Errorf("begin call: %w", err)
	}
	if st != postgres.CallRecorded {
		return fmt.Errorf("begin call for %s: state %d", obj.Key, st)
	}
	score := 87.5
	call := postgres.Call{ID: id, Outcome: reverify.OutcomeScored, TransactionID: "bench" + randomHex(4), HTTPStatus: 200,
		Score: &score, Latency: 200 * time.Millisecond}
	final := &postgres.Result{RunID: runID, Object: obj, Status: reverify.StatusScored, Score: &score,
		TransactionID: call.TransactionID, Size: 200 << 10, Duration: 250 * time.Millisecond}
	if err := store.FinishCall(ctx, call, runID, obj, final); err != nil {
		return fmt.Errorf("finish call: %w", err)
	}
	return nil
}
