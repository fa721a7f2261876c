package campaign

import (
	"reverify"
	"reverify/storage/postgres"
)

// PaidCalls is what a dry run's objects cost in API calls: the worker
// pays once per distinct image of a run (docs/dedupe.md), so they are the
// distinct images the listing shows (an upper bound: objects without a
// plain-MD5 ETag count once each).
func PaidCalls(e Estimate) int64 { return e.Distinct }

// CallsLeft is the paid calls a run still has to make, at most: one per
// pending object (copies among them are known only once their bytes are
// read).
func CallsLeft(p postgres.Progress) int64 { return p.Pending }

// ShareOf is the part of the fleet's calls run gets beside the runs being
// sent, by priority weight, as the feeder shares them (1 when alone).
func ShareOf(run reverify.Run, sending []postgres.DispatchRun) float64 {
	total, mine := 0, run.Priority.Weight()
	seen := false
	for _, r := range sending {
		if Gated(r.Run) {
			continue
		}
		total += r.Priority.Weight()
		seen = seen || r.ID == run.ID
	}
	if !seen {
		total += mine // forecast as if it were being sent
	}
	return float64(mine) / float64(total)
}
