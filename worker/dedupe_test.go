package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/liveness/fakeapi"
	"reverify/tasks"
	"reverify/worker"
	"reverify/worker/fleet"
)

// TestEachDistinctImagePaidOnce sends a prefix where most images are
// stored under several keys through real S3, Redis, PostgreSQL and the
// fake API (slow enough that copies meet owners still in flight, with
// 429s): the API analyses each distinct image once, and every copy ends
// with exactly one row holding the owner's answer (score or rejection,
// same transaction ID) and a duplicate_of naming the owner, without an
// API call of its own. Empty objects never reach the claim. With
// KeepDuplicates, the same corpus pays for every object.
func TestEachDistinctImagePaidOnce(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		keep bool
	}{{"dedupe", false}, {"keep duplicates", true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, fakeapi.Options{Latency: 150 * time.Millisecond, RateLimitRate: 0.2, RetryAfter: time.Second, Seed: 7})
			ctx := context.Background()
			const bucket = "dup-images"
			b.s3.CreateBucket(t, bucket)
			type object struct {
				body   []byte
				status reverify.Status
			}
			objs := map[string]object{}
			put := func(key string, body []byte, status reverify.Status) {
				b.s3.PutObject(t, bucket, key, body)
				objs[key] = object{body, status}
			}
			distinct := 0
			for i := range 10 {
				body := fakeapi.GenerateJPEG(int64(i), 80+i, 80)
				distinct++
				for c := range 1 + i%4 { // 1 to 4 keys each
					put(fmt.Sprintf("p/face-%02d-%d.jpg", i, c), body, reverify.StatusScored)
				}
			}
			tiny := fakeapi.GenerateJPEG(99, 32, 32) // the API cannot find a face: 1017
			distinct++
			for c := range 3 {
				put(fmt.Sprintf("p/tiny-%d.jpg", c), tiny, reverify.StatusRejected)
			}
			put("p/empty-0.jpg", nil, reverify.StatusInvalidImage)
			put("p/empty-1.jpg", nil, reverify.StatusInvalidImage)

			run := b.newRun(t)
			b.enqueue(t, run, tasks.ListingSource(b.objs, bucket, "p/"))
			b.startWorker(t, apiKey, worker.Config{KeepDuplicates: tt.keep, ContentWait: 50 * time.Millisecond,
				Fleet: fleet.Config{MaxInFlight: 8, RatePerSecond: 500}})
			p := b.waitForStatus(t, run.ID, reverify.RunCompleted, 90*time.Second)
			require.EqualValues(t, len(objs), p.Done, "one terminal row per object")

			analysed := map[string]int{} // image sha -> answers with a transaction ID
			for _, c := range b.fake.Ledger() {
				if c.TransactionID != "" {
					analysed[c.ImageSHA256]++
				}
			}
			sent := len(objs) - 2
			if !tt.keep {
				require.Len(t, analysed, distinct)
				for sum, n := range analysed {
					require.Equal(t, 1, n, "image %s analysed once", sum[:12])
				}
				require.EqualValues(t, distinct, p.BillableAnswers, "the run's billable answers are the distinct images")
			} else {
				total := 0
				for _, n := range analysed {
					total += n
				}
				require.Equal(t, sent, total, "without dedupe every copy is paid for")
			}

			// Every copy carries its owner's answer; the owner made the calls.
			var calls map[string]int = map[string]int{}
			rows, err := b.db.Query(ctx, `SELECT object_key, count(*) FROM api_calls WHERE run_id = $1 GROUP BY 1`, run.ID)
			require.NoError(t, err)
			for rows.Next() {
				var k string
				var n int
				require.NoError(t, rows.Scan(&k, &n))
				calls[k] = n
			}
			require.NoError(t, rows.Err())
			owners := map[string]string{} // image sha -> the owner's key
			copies := 0
			for key, o := range objs {
				r, err := b.store.ResultOf(ctx, run.ID, reverify.ObjectRef{Bucket: bucket, Key: key})
				require.NoError(t, err)
				require.Equal(t, o.status, r.Status, key)
				d, err := b.store.DuplicateOf(ctx, run.ID, reverify.ObjectRef{Bucket: bucket, Key: key})
				require.NoError(t, err)
				if o.status == reverify.StatusInvalidImage {
					require.Empty(t, d.SHA, "an empty object is never claimed")
					continue
				}
				if tt.keep {
					require.Empty(t, d.Of)
					require.Positive(t, calls[key], key)
					continue
				}
				require.Equal(t, sha(o.body), fmt.Sprintf("%x", d.SHA), key)
				if d.Of == "" {
					require.Positive(t, calls[key], "the owner %s made the call", key)
					require.Empty(t, owners[sha(o.body)], "one owner per image")
					owners[sha(o.body)] = key
					continue
				}
				copies++
				require.Zero(t, calls[key], "the copy %s made no call", key)
				require.Equal(t, run.ID, d.OfRun)
			}
			if tt.keep {
				return
			}
			require.Equal(t, sent-distinct, copies)
			for key, o := range objs {
				if o.status == reverify.StatusInvalidImage {
					continue
				}
				owner := owners[sha(o.body)]
				require.NotEmpty(t, owner, key)
				want, err := b.store.ResultOf(ctx, run.ID, reverify.ObjectRef{Bucket: bucket, Key: owner})
				require.NoError(t, err)
				got, err := b.store.ResultOf(ctx, run.ID, reverify.ObjectRef{Bucket: bucket, Key: key})
				require.NoError(t, err)
				require.Equal(t, want.TransactionID, got.TransactionID, key)
				require.Equal(t, want.Score, got.Score, key)
				require.Equal(t, want.ErrorCode, got.ErrorCode, key)
				if key != owner {
					d, err := b.store.DuplicateOf(ctx, run.ID, reverify.ObjectRef{Bucket: bucket, Key: key})
					require.NoError(t, err)
					require.Equal(t, reverify.KeyHash(bucket, owner), d.Of, key)
				}
			}
		})
	}
}
