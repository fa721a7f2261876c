package postgres_test

import (
	"context"
	"fmt"
	"reverify"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

// BenchmarkAddObjects records batches of 10,000 new objects, as the
// recorder does (COPY into a staging table, then one INSERT … ON CONFLICT
// DO NOTHING). Run by hand: go test -run '^$' -bench AddObjects ./storage/postgres
func BenchmarkAddObjects(b *testing.B) {
	ctx := context.Background()
	store, _, run := benchRun(b)
	const batch = 10000
	objs := make([]reverify.ObjectRef, batch)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for i := range objs {
			objs[i] = reverify.ObjectRef{Bucket: "bench", Key: fmt.Sprintf("subject-%08d/selfie.jpg", n)}
			n++
		}
		added, err := store.AddObjects(ctx, run.ID, objs)
		if err != nil {
			b.Fatal(err)
		}
		if added != batch {
			b.Fatalf("added %d, want %d", added, batch)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkFailRunsOverThreshold is the check every worker makes every
// two seconds, on a run of a million objects, 40% finished, few failed,
// the table written since its last vacuum (as while the run goes on, so
// index scans visit the heap). Run by hand:
// go test -run '^$' -bench FailRunsOverThreshold ./storage/postgres
func BenchmarkFailRunsOverThreshold(b *testing.B) {
	ctx := context.Background()
	store, db, run := benchRun(b)
	for _, sql := range []string{
		`ALTER TABLE verifications SET (autovacuum_enabled = false)`,
		`INSERT INTO verifications (run_id, bucket, object_key) SELECT $1::uuid, 'bench', 'subject-' || g FROM generate_series(1, 1000000) g`,
		`UPDATE runs SET total = 1000000, status = 'running' WHERE id = $1::uuid`,
		`VACUUM ANALYZE verifications`,
		`UPDATE verifications SET status = 'scored', liveness_score = 90, completed_at = now() WHERE run_id = $1::uuid AND object_key < 'subject-4'`,
		`UPDATE verifications SET status = 'not_found', completed_at = now() WHERE run_id = $1::uuid AND object_key LIKE 'subject-3999%'`,
	} {
		args := []any{run.ID}
		if !strings.Contains(sql, "$1") {
			args = nil
		}
		if _, err := db.Exec(ctx, sql, args...); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		failed, err := store.FailRunsOverThreshold(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(failed) != 0 {
			b.Fatalf("failed runs %v", failed)
		}
	}
}

// benchRun returns a ledger in a database of its own, a pool on that
// database, and one new run.
func benchRun(b *testing.B) (*postgres.Store, *pgxpool.Pool, reverify.Run) {
	b.Helper()
	store, db := testenv.LedgerWithPool(b)
	run, err := store.CreateRun(context.Background(), postgres.NewRun{Name: "bench", Queue: "bench",
		Options: map[string]string{}})
	if err != nil {
		b.Fatal(err)
	}
	return store, db, run
}

// BenchmarkRetryObjects is `runs retry` of a finished run's million failed
// objects (batches of RetryBatch, each taking a block of the run's dispatch
// numbers). Run by hand:
// go test -run '^$' -bench RetryObjects -benchtime 3x ./storage/postgres
func BenchmarkRetryObjects(b *testing.B) {
	ctx := context.Background()
	store, db, run := benchRun(b)
	if _, err := db.Exec(ctx, `INSERT INTO verifications (run_id, bucket, object_key)
		SELECT $1::uuid, 'bench', 'subject-' || g FROM generate_series(1, 1000000) g`, run.ID); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		b.StopTimer()
		for _, sql := range []string{
			`UPDATE verifications SET status = 'failed', completed_at = now() WHERE run_id = $1::uuid`,
			`UPDATE runs SET status = 'completed', total = 1000000 WHERE id = $1::uuid`,
			`VACUUM ANALYZE verifications`,
		} {
			args := []any{run.ID}
			if !strings.Contains(sql, "$1") {
				args = nil
			}
			if _, err := db.Exec(ctx, sql, args...); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		_, n, err := store.RetryObjects(ctx, run.ID, []reverify.Status{reverify.StatusFailed}, reverify.Actor{Who: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if n != 1000000 {
			b.Fatalf("retried %d, want 1000000", n)
		}
	}
	b.ReportMetric(1e6*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
