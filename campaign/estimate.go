package campaign

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"reverify"
	"reverify/tasks"
)

// Estimate is what a run over a source would send, counted without
// recording or sending anything (a dry run).
type Estimate struct {
	Matched int64 // objects the filters keep
	Send    int64 // objects that would reach the API: at least one API call, about one billable answer, each
	Empty   int64 // never sent: empty
	Large   int64 // never sent: over MaxObjectBytes
	Unknown int64 // counted as sent without knowing their size (manifest entries)
	Bytes   int64 // bytes of the objects of known size that would be sent
	Recent  int64 // left out: scored within not_verified_since
	// Distinct estimates the distinct images among Send, from the
	// listing alone: objects with the same plain-MD5 ETag and size count
	// once, any other object once each (distinct.go says how exact). The
	// worker pays once per distinct image of a run (docs/dedupe.md).
	Distinct int64
	// MaxObjectBytes is the limit the count used.
	MaxObjectBytes int64
}

// ErrNoLedger means a dry run with not_verified_since has no ledger to ask.
var ErrNoLedger = errors.New("campaign: the not-verified-since filter needs the ledger (REVERIFY_DATABASE_URL)")

// Estimate counts what a run of spec over src would send to the API, by
// the same rule the worker applies before it pays for a call. It needs the
// ledger only for spec's not_verified_since filter.
func (s *Service) Estimate(ctx context.Context, sp Spec, src tasks.Source) (Estimate, error) {
	if err := sp.Validate(); err != nil {
		return Estimate{}, err
	}
	e := Estimate{MaxObjectBytes: sp.MaxObjectBytes}
	var recent atomic.Int64
	if sp.Filters.NotVerifiedSince > 0 {
		if s.ledger == nil {
			return e, ErrNoLedger
		}
		since := s.now().Add(-time.Duration(sp.Filters.NotVerifiedSince))
		src = tasks.SkipRecentlyScored(src, s.ledger, since, func(n int) { recent.Add(int64(n)) })
	}
	keep := sp.Filters.Keep()
	distinct := newDistinctCounter()
	err := src(ctx, func(o tasks.Object) error {
		if keep != nil && !keep(o) {
			return nil
		}
		e.Matched++
		switch {
		case o.Size < 0:
			e.Unknown++
			e.Send++
			distinct.add(o.ETag, o.Size)
		case reverify.Unsendable(o.Size, sp.MaxObjectBytes) == "":
			e.Send++
			e.Bytes += o.Size
			distinct.add(o.ETag, o.Size)
		case o.Size == 0:
			e.Empty++
		default:
			e.Large++
		}
		return nil
	})
	e.Recent, e.Distinct = recent.Load(), distinct.count()
	return e, err
}
