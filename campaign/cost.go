package campaign

import (
	"reverify"
	"reverify/storage/postgres"
)

// PaidCalls is what a dry run's objects cost in API calls, and the
// distinct images among them (-1: not counted). Until content dedupe
// counts distinct images, every object sent is a paid call: this is the
// one place that changes when it does.
func PaidCalls(e Estimate) (paid, distinct int64) { return e.Send, -1 }

// CallsLeft is the paid calls a run still has to make: one per pending
// object, by the same rule as PaidCalls.
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
