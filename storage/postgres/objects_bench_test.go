package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

// BenchmarkAddObjects records batches of 1,000 new objects, as the
// producer does. Run by hand: go test -run '^$' -bench AddObjects ./storage/postgres
//
// On the project's 2-core machine (2026-11-25) the unnest statement takes
// about 73k rows/s; COPY into a session temp table followed by the same
// INSERT … ON CONFLICT DO NOTHING RETURNING took about 48k rows/s (four
// round trips and a transaction instead of one statement), so AddObjects
// keeps unnest.
func BenchmarkAddObjects(b *testing.B) {
	ctx := context.Background()
	store := testenv.Ledger(b)
	run, err := store.CreateRun(ctx, postgres.NewRun{Name: "bench", Queue: "bench", Source: map[string]string{}, Options: map[string]string{}})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 1000
	objs := make([]postgres.ObjectRef, batch)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for i := range objs {
			objs[i] = postgres.ObjectRef{Bucket: "bench", Key: fmt.Sprintf("subject-%08d/selfie.jpg", n)}
			n++
		}
		added, err := store.AddObjects(ctx, run.ID, objs)
		if err != nil {
			b.Fatal(err)
		}
		if len(added) != batch {
			b.Fatalf("added %d, want %d", len(added), batch)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
}
