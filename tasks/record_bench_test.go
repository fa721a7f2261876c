package tasks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"reverify/internal/testenv"
	"reverify/storage/postgres"
	"reverify/tasks"
)

// BenchmarkRecord records 100,000 keys per iteration into a run's ledger
// rows, as enqueue does from a manifest. Run by hand:
//
//	go test -run '^$' -bench Record -benchtime 3x ./tasks
func BenchmarkRecord(b *testing.B) {
	ctx := context.Background()
	store := testenv.Ledger(b)
	const keys = 100000
	total := 0
	for b.Loop() {
		run, err := store.CreateRun(ctx, postgres.NewRun{Name: "bench", Queue: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		stats, err := tasks.NewRecorder(store).Record(ctx, run.ID, syntheticSource(keys, 0), nil)
		if err != nil {
			b.Fatal(err)
		}
		if stats.Recorded != keys {
			b.Fatalf("recorded %d, want %d", stats.Recorded, keys)
		}
		total += keys
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "keys/s")
}

func syntheticSource(n int, pageWait time.Duration) tasks.Source {
	return func(ctx context.Context, fn func(tasks.Object) error) error {
		for i := range n {
			if pageWait > 0 && i%1000 == 0 {
				time.Sleep(pageWait)
			}
			if err := fn(tasks.Object{Bucket: "bench", Key: fmt.Sprintf("subject-%07d/selfie.jpg", i), Size: -1}); err != nil {
				return err
			}
		}
		return nil
	}
}
