package tasks

import "fmt"

// Priorities a run can have. Each maps to its own asynq queue; workers
// serve them with weights, so an urgent run overtakes a bulk one without
// starving it.
const (
	PriorityHigh   = "high"
	PriorityNormal = "normal"
	PriorityLow    = "low"
)

// Queue weights: of every ten tasks a busy worker takes, about six come from
// high, three from normal and one from low.
const (
	WeightHigh   = 6
	WeightNormal = 3
	WeightLow    = 1
)

// QueueFor returns the queue of a run of the given priority: base for
// normal, base-high and base-low otherwise.
func QueueFor(base, priority string) (string, error) {
	switch priority {
	case PriorityNormal, "":
		return base, nil
	case PriorityHigh, PriorityLow:
		return base + "-" + priority, nil
	}
	return "", fmt.Errorf("unknown priority %q: want high, normal or low", priority)
}

// PriorityQueues returns the weighted queues a worker serves for base.
func PriorityQueues(base string) map[string]int {
	return map[string]int{base + "-" + PriorityHigh: WeightHigh, base: WeightNormal, base + "-" + PriorityLow: WeightLow}
}
