package postgres_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/internal/testenv"
	"reverify/storage/postgres"
)

// TestClaimContent: within a run, the first object to claim a content
// owns it; a copy waits while the owner has no answer, then takes the
// owner's scored or rejected answer (same transaction ID, duplicate_of
// naming the owner) without a call of its own, and takes the claim over
// when the owner ended without an answer or read other bytes. The
// counters see a copy as an object, never as a call.
func TestClaimContent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db := testenv.LedgerWithPool(t)
	image := sha256.Sum256([]byte("the same selfie"))
	other := sha256.Sum256([]byte("another selfie"))
	obj := func(k string) reverify.ObjectRef { return reverify.ObjectRef{Bucket: "b", Key: k} }
	content := func(runID, k string, sum [32]byte) postgres.Content {
		return postgres.Content{RunID: runID, Object: obj(k), SHA256: sum, ETag: "etag-" + k, Size: 1234, Duration: time.Millisecond}
	}
	claim := func(t *testing.T, runID, k string, sum [32]byte) postgres.Claimed {
		t.Helper()
		got, err := s.ClaimContent(ctx, content(runID, k, sum))
		require.NoError(t, err)
		return got
	}
	answer := func(t *testing.T, runID, k string, c postgres.Call, final *postgres.Result) {
		t.Helper()
		id, st, err := s.BeginCall(ctx, runID, obj(k), time.Minute)
		require.NoError(t, err)
		require.Equal(t, postgres.CallRecorded, st)
		c.ID = id
		require.NoError(t, s.FinishCall(ctx, c, runID, obj(k), final))
	}
	score := 87.5

	for _, tt := range []struct {
		name string
		// owner ends the owner k00000 (which claimed image) somehow.
		owner func(t *testing.T, runID string)
		want  postgres.ContentClaim // what the copy k00001 then gets
		// wantCopy is the copy's row when it took the owner's answer.
		wantCopy postgres.Result
	}{
		{"owner scored", func(t *testing.T, runID string) {
			answer(t, runID, "k00000", postgres.Call{Outcome: reverify.OutcomeScored, TransactionID: "tx-owner", HTTPStatus: 200, Score: &score},
				&postgres.Result{RunID: runID, Object: obj("k00000"), Status: reverify.StatusScored, Score: &score, TransactionID: "tx-owner"})
		}, postgres.ContentCopied, postgres.Result{Status: reverify.StatusScored, Score: &score, TransactionID: "tx-owner"}},
		{"owner rejected: copies are rejected with the same transaction", func(t *testing.T, runID string) {
			answer(t, runID, "k00000", postgres.Call{Outcome: reverify.OutcomeRejected, TransactionID: "tx-no-face", HTTPStatus: 400, ErrorCode: 1017},
				&postgres.Result{RunID: runID, Object: obj("k00000"), Status: reverify.StatusRejected, TransactionID: "tx-no-face",
					ErrorCode: 1017, Message: "failed to analyse face"})
		}, postgres.ContentCopied, postgres.Result{Status: reverify.StatusRejected, TransactionID: "tx-no-face", ErrorCode: 1017, Message: "failed to analyse face"}},
		{"owner failed: the copy takes the claim over", func(t *testing.T, runID string) {
			require.NoError(t, s.RecordResult(ctx, postgres.Result{RunID: runID, Object: obj("k00000"), Status: reverify.StatusFailed, Message: "retries exhausted"}))
		}, postgres.ContentOwned, postgres.Result{}},
		{"owner deleted before its retry: the copy takes over", func(t *testing.T, runID string) {
			require.NoError(t, s.RecordResult(ctx, postgres.Result{RunID: runID, Object: obj("k00000"), Status: reverify.StatusNotFound}))
		}, postgres.ContentOwned, postgres.Result{}},
		{"owner's object was overwritten with other bytes: the copy takes over", func(t *testing.T, runID string) {
			require.Equal(t, postgres.ContentOwned, claim(t, runID, "k00000", sha256.Sum256([]byte("a new selfie"))).Claim)
		}, postgres.ContentOwned, postgres.Result{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			run := seedRun(t, s, 3, postgres.NewRun{Name: tt.name})
			require.Equal(t, postgres.ContentOwned, claim(t, run.ID, "k00000", image).Claim)
			require.Equal(t, postgres.ContentOwnerBusy, claim(t, run.ID, "k00001", image).Claim, "the owner has no answer yet")
			require.Equal(t, postgres.ContentOwned, claim(t, run.ID, "k00000", image).Claim, "a crashed owner's retry stays the owner")
			require.Equal(t, postgres.ContentOwned, claim(t, run.ID, "k00002", other).Claim, "other bytes are another content")

			tt.owner(t, run.ID)
			got := claim(t, run.ID, "k00001", image)
			require.Equal(t, tt.want, got.Claim)
			row, err := s.ResultOf(ctx, run.ID, obj("k00001"))
			require.NoError(t, err)
			dup, err := s.DuplicateOf(ctx, run.ID, obj("k00001"))
			require.NoError(t, err)
			var attempts int
			require.NoError(t, db.QueryRow(ctx, `SELECT attempts FROM verifications WHERE run_id = $1 AND object_key = 'k00001'`, run.ID).Scan(&attempts))
			require.Zero(t, attempts, "no call was made for the copy")
			if tt.want != postgres.ContentCopied {
				require.Equal(t, reverify.StatusPending, row.Status)
				require.Empty(t, dup.Of)
				require.NotEqual(t, postgres.ContentOwned, claim(t, run.ID, "k00000", image).Claim, "the old owner lost the claim")
				require.Equal(t, postgres.ContentOwned, claim(t, run.ID, "k00001", image).Claim, "the new owner keeps the claim")
				return
			}
			want := tt.wantCopy
			want.RunID, want.Object, want.ETag, want.Size, want.Duration = run.ID, obj("k00001"), "etag-k00001", 1234, time.Millisecond
			require.Equal(t, want, row)
			require.Equal(t, want.Status, got.Result.Status)
			require.Equal(t, want.TransactionID, got.Result.TransactionID)
			require.Equal(t, reverify.KeyHash("b", "k00000"), dup.Of, "duplicate_of is the owner's key hash")
			require.Equal(t, run.ID, dup.OfRun)
			require.Equal(t, reverify.KeyHash("b", "k00000"), got.DuplicateOf)
			require.Equal(t, image[:], dup.SHA)
			require.Equal(t, postgres.ContentDone, claim(t, run.ID, "k00001", image).Claim, "a copy is recorded once")

			p, err := s.Progress(ctx, run.ID)
			require.NoError(t, err)
			require.EqualValues(t, 1, p.APICalls, "a copy is not an API call")
			require.EqualValues(t, 1, p.BillableAnswers)
			require.EqualValues(t, 2, p.ByStatus[want.Status], "the copy counts as an object")
		})
	}
}

// TestDuplicateImagesView: content read under more than one key, in any
// run, is listed once with its keys (and their hashes), runs and when it
// was seen; content read under one key only, even in several runs, is
// not.
func TestDuplicateImagesView(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testenv.Ledger(t)
	shared := sha256.Sum256([]byte("one selfie, two customers"))
	alone := sha256.Sum256([]byte("a selfie of its own"))
	claim := func(runID, key string, sum [32]byte) {
		t.Helper()
		_, err := s.ClaimContent(ctx, postgres.Content{RunID: runID, Object: reverify.ObjectRef{Bucket: "b", Key: key}, SHA256: sum})
		require.NoError(t, err)
	}
	first := seedRun(t, s, 2, postgres.NewRun{Name: "first"})
	second := seedRun(t, s, 2, postgres.NewRun{Name: "second"})
	claim(first.ID, "k00000", shared)
	claim(first.ID, "k00001", alone)
	claim(second.ID, "k00001", shared)
	claim(second.ID, "k00000", alone)
	claim(second.ID, "k00000", alone)

	tbl, err := s.View(ctx, "duplicate_images", "", 0)
	require.NoError(t, err)
	require.Len(t, tbl.Rows, 2, "both contents were read under two keys")
	col := func(row []any, name string) any {
		for i, c := range tbl.Columns {
			if c == name {
				return row[i]
			}
		}
		t.Fatalf("no column %s in %v", name, tbl.Columns)
		return nil
	}
	for _, row := range tbl.Rows {
		require.EqualValues(t, 2, col(row, "keys"))
		require.ElementsMatch(t, []any{"b/k00000", "b/k00001"}, col(row, "objects"))
		require.ElementsMatch(t, []any{reverify.KeyHash("b", "k00000"), reverify.KeyHash("b", "k00001")}, col(row, "key_hashes"))
		require.EqualValues(t, 2, col(row, "runs"))
		require.NotNil(t, col(row, "first_seen"))
	}

	third := seedRun(t, s, 1, postgres.NewRun{Name: "third"})
	once := sha256.Sum256([]byte("read under one key in two runs"))
	claim(third.ID, "k00000", once)
	claim(first.ID, "k00000", once) // k00000 of the first run read other bytes on a retry
	tbl, err = s.View(ctx, "duplicate_images", "", 0)
	require.NoError(t, err)
	for _, row := range tbl.Rows {
		require.NotEqual(t, fmt.Sprintf("%x", once), col(row, "content_sha256"), "one key is no duplicate")
	}
}

// TestClaimContentReusesOtherRuns: a run created to reuse results takes
// the newest score of the same bytes from another run within its window,
// naming the object whose call produced it, without a call; an older
// score, or a run that reuses nothing, is analysed again.
func TestClaimContentReusesOtherRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testenv.Ledger(t)
	image := sha256.Sum256([]byte("scored last week"))
	obj := func(k string) reverify.ObjectRef { return reverify.ObjectRef{Bucket: "b", Key: k} }
	claim := func(runID, k string) postgres.Claimed {
		t.Helper()
		got, err := s.ClaimContent(ctx, postgres.Content{RunID: runID, Object: obj(k), SHA256: image})
		require.NoError(t, err)
		return got
	}
	earlier := seedRun(t, s, 1, postgres.NewRun{Name: "earlier"})
	require.Equal(t, postgres.ContentOwned, claim(earlier.ID, "k00000").Claim)
	id, st, err := s.BeginCall(ctx, earlier.ID, obj("k00000"), time.Minute)
	require.NoError(t, err)
	require.Equal(t, postgres.CallRecorded, st)
	score := 64.25
	require.NoError(t, s.FinishCall(ctx, postgres.Call{ID: id, Outcome: reverify.OutcomeScored, TransactionID: "tx-earlier", Score: &score},
		earlier.ID, obj("k00000"), &postgres.Result{RunID: earlier.ID, Object: obj("k00000"), Status: reverify.StatusScored, Score: &score, TransactionID: "tx-earlier"}))

	reusing := seedRun(t, s, 3, postgres.NewRun{Name: "reusing", ReuseWithin: time.Hour})
	got := claim(reusing.ID, "k00001")
	require.Equal(t, postgres.ContentCopied, got.Claim)
	require.Equal(t, "tx-earlier", got.Result.TransactionID)
	require.Equal(t, &score, got.Result.Score)
	require.Equal(t, reverify.KeyHash("b", "k00000"), got.DuplicateOf)
	require.Equal(t, earlier.ID, got.DuplicateOfRun)
	p, err := s.Progress(ctx, reusing.ID)
	require.NoError(t, err)
	require.Zero(t, p.APICalls)
	require.EqualValues(t, 1, p.ByStatus[reverify.StatusScored])

	for _, nr := range []postgres.NewRun{{Name: "reuses nothing"}, {Name: "window too short", ReuseWithin: time.Nanosecond}} {
		run := seedRun(t, s, 2, nr)
		require.Equal(t, postgres.ContentOwned, claim(run.ID, "k00001").Claim, nr.Name)
		require.Equal(t, postgres.ContentOwnerBusy, claim(run.ID, "k00000").Claim, "%s: within the run, copies still wait", nr.Name)
	}
}
