package tasks_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"reverify/internal/testenv"
	"reverify/storage/postgres"
	"reverify/tasks"
)

// BenchmarkProducerEnqueue records and enqueues 20,000 keys per iteration,
// ledger rows included, with a plain asynq client and with the
// auto-pipelined one. Run by hand:
//
//	go test -run '^$' -bench ProducerEnqueue -benchtime 3x ./tasks
func BenchmarkProducerEnqueue(b *testing.B) {
	ctx := context.Background()
	store := testenv.Ledger(b)
	opt := asynq.RedisClientOpt{Addr: testenv.RedisAddr(b)}
	clients := map[string]func() (*asynq.Client, func() error, error){
		"plain": func() (*asynq.Client, func() error, error) {
			c := asynq.NewClient(opt)
			return c, c.Close, nil
		},
		"pipelined": func() (*asynq.Client, func() error, error) { return tasks.NewPipelinedClient(opt) },
	}
	for _, name := range []string{"plain", "pipelined", "pipelined/paged"} {
		client := strings.TrimSuffix(name, "/paged")
		// paged: the source waits 10 ms per 1,000 keys, as a listing waits
		// for each ListObjectsV2 page.
		pageWait := time.Duration(0)
		if strings.HasSuffix(name, "/paged") {
			pageWait = 10 * time.Millisecond
		}
		b.Run(name, func(b *testing.B) {
			client, closeClient, err := clients[client]()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = closeClient() })
			const keys = 20000
			total := 0
			for b.Loop() {
				queue := testenv.Queue(b)
				run, err := store.CreateRun(ctx, postgres.NewRun{Name: "bench", Queue: queue,
					Options: map[string]string{}})
				if err != nil {
					b.Fatal(err)
				}
				stats, err := tasks.NewProducer(store, client).Enqueue(ctx, run, syntheticSource(keys, pageWait), nil)
				if err != nil {
					b.Fatal(err)
				}
				if stats.Enqueued != keys {
					b.Fatalf("enqueued %d, want %d", stats.Enqueued, keys)
				}
				total += keys
				b.StopTimer()
				deleteQueue(b, opt, queue)
				b.StartTimer()
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "keys/s")
		})
	}
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

func deleteQueue(b *testing.B, opt asynq.RedisClientOpt, queue string) {
	b.Helper()
	in := asynq.NewInspector(opt)
	defer in.Close()
	if err := in.DeleteQueue(queue, true); err != nil {
		b.Fatal(err)
	}
}
