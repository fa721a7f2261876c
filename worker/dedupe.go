package worker

import (
	"context"
	"crypto/sha256"
	"errors"

	"reverify"
	"reverify/storage/objects"
	"reverify/storage/postgres"
)

// ContentLedger claims an object's content for its run, so each distinct
// image of a run is analysed once (postgres.Store.ClaimContent).
type ContentLedger interface {
	ClaimContent(ctx context.Context, c postgres.Content) (postgres.Claimed, error)
}

// dedupe hashes the image it holds (SHA-256, in memory only) and claims
// its content for the run before any call is made: the owner goes on to
// call the API (nil); a copy has taken the owner's result and ends here
// without a call; a copy whose owner has no answer yet waits without
// holding a slot or using its retry budget.
func (j *job) dedupe(ctx context.Context, image []byte, meta objects.Object) ending {
	h := j.h
	if h.cfg.KeepDuplicates {
		return nil
	}
	c := postgres.Content{RunID: j.p.RunID, Object: j.obj, SHA256: sha256.Sum256(image),
		ETag: meta.ETag, Size: meta.Size, Duration: h.now().Sub(j.start)}
	got, err := h.ledger.ClaimContent(ctx, c)
	switch {
	case err != nil:
		return func(context.Context) error { return j.ledgerError(err) }
	case got.Claim == postgres.ContentOwned:
		return nil
	case got.Claim == postgres.ContentOwnerBusy:
		return returns(&WaitError{After: h.cfg.ContentWait, Reason: reverify.WaitContentOwner,
			Err: errors.New("an object with the same bytes is being analysed; its answer will be this object's")})
	case got.Claim == postgres.ContentCopied:
		return func(ctx context.Context) error {
			j.log.InfoContext(ctx, "result", "status", got.Result.Status, "duplicate_of", got.DuplicateOf,
				"duplicate_of_run", got.DuplicateOfRun, "transaction_id", got.Result.TransactionID,
				"duration_ms", got.Result.Duration.Milliseconds())
			h.obs.ResultRecorded(got.Result.Status)
			return nil
		}
	}
	return func(ctx context.Context) error {
		j.log.InfoContext(ctx, "object already has a result; not calling the API again")
		return nil
	}
}
