package notify

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"reverify"
)

// EventLedger records fleet events; *postgres.Store satisfies it.
type EventLedger interface {
	RecordEvent(ctx context.Context, ev reverify.Event, dedupeKey, reason string, detail any) (bool, error)
}

// Recorder records the fleet's events in the outbox (it is a
// fleet.Events). It never makes its caller wait: each event is written by
// a goroutine of its own, tried for up to a minute. Close waits for them.
type Recorder struct {
	ledger EventLedger
	log    *slog.Logger
	now    func() time.Time
	wg     sync.WaitGroup
}

// NewRecorder returns a recorder writing to ledger.
func NewRecorder(ledger EventLedger, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{ledger: ledger, log: log, now: time.Now}
}

// circuitQuiet is how often one circuit's opening is told at most: an API
// that keeps failing opens it again after every cool-down.
const circuitQuiet = 15 * time.Minute

// CircuitOpened records that the fleet stopped calling the API.
func (r *Recorder) CircuitOpened(ctx context.Context, why reverify.WaitReason, reason string, cooldown time.Duration) {
	slot := r.now().Unix() / int64(circuitQuiet/time.Second)
	key := string(reverify.EventCircuitOpened) + ":" + string(why) + ":" + strconv.FormatInt(slot, 10)
	r.record(ctx, reverify.EventCircuitOpened, key, reason, FleetInfo{Circuit: why, CooldownSeconds: cooldown.Seconds()})
}

// BudgetSpent records that the fleet's daily budget is used up.
func (r *Recorder) BudgetSpent(ctx context.Context, day string, budget int64) {
	key := string(reverify.EventBudgetSpent) + ":" + day
	r.record(ctx, reverify.EventBudgetSpent, key, "", FleetInfo{Day: day, DailyBudget: budget})
}

func (r *Recorder) record(ctx context.Context, ev reverify.Event, key, reason string, detail FleetInfo) {
	ctx = context.WithoutCancel(ctx)
	r.wg.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		for wait := time.Second; ; wait *= 2 {
			_, err := r.ledger.RecordEvent(ctx, ev, key, reason, detail)
			if err == nil {
				return
			}
			select {
			case <-ctx.Done():
				r.log.ErrorContext(ctx, "could not record a notification event", "event", ev, "err", err)
				return
			case <-time.After(wait):
			}
		}
	})
}

// Close waits for the events being written.
func (r *Recorder) Close() { r.wg.Wait() }
