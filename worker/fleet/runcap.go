package fleet

import (
	"context"
	"fmt"
	"reverify"
	"time"

	"github.com/redis/go-redis/v9"
)

// runCapScript takes one of a run's in-flight slots and reserves its next
// call instant (a GCRA with no burst, like the fleet's rate), atomically:
// a task of a capped run holds a slot from admission until its call is
// over. It never waits: a full run or an instant more than the horizon
// ahead is refused, with the wait in µs, so the task gives its worker slot
// back. Times of the rate are Redis's.
//
// KEYS: the run's in-flight set, the run's arrival time
// ARGV: now ms, max in flight (0 = none), holder, lease expiry ms,
// interval µs (0 = no rate cap), horizon µs, ttl ms
// Returns: {0 = admitted, 1 = in-flight cap, 2 = rate; wait µs}
var runCapScript = redis.NewScript(`
local maxin = tonumber(ARGV[2])
if maxin > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
  if redis.call('ZSCORE', KEYS[1], ARGV[3]) == false and redis.call('ZCARD', KEYS[1]) >= maxin then return {1, 0} end
end
local wait = 0
local iv = tonumber(ARGV[5])
if iv > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat < now then tat = now end
  wait = tat - now
  if wait > tonumber(ARGV[6]) then return {2, wait} end
  redis.call('SET', KEYS[2], string.format('%.0f', tat + iv), 'PX', ARGV[7])
end
if maxin > 0 then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4] - ARGV[1])
end
return {0, wait}
`)

// RunPermit is a call of a capped run admitted by its caps; release it
// when the call has returned (or will not be made).
type RunPermit struct {
	key, holder string // key "": nothing to release
}

// runCapHorizon is how long a task of a capped run may sleep for its
// run's next instant while holding a worker slot; a farther one gives the
// slot back. A task given back returns late (the retry set is polled, and
// the queue holds other runs' tasks ahead of it), and an instant no task
// takes is lost: the horizon must cover that, or the run falls well short
// of its cap (at 250 ms, a 20/s run made 8–11 calls/s beside another run).
const runCapHorizon = time.Second

// AdmitRun admits one call of run under the run's own caps (reverify.RunLimits,
// enforced fleet-wide): it takes one of the run's in-flight slots and its
// next instant at the run's rate, sleeping for that instant when it is
// near. A run at its cap gets a *Denied (reason run_cap) at once, so the
// task frees its worker slot for other runs instead of waiting in it.
// Admit (the fleet's limits) comes after: a run's caps only lower what
// the fleet allows.
func (g *Governor) AdmitRun(ctx context.Context, runID, holder string, lim reverify.RunLimits) (RunPermit, error) {
	if lim.IsZero() {
		return RunPermit{}, nil
	}
	now := g.cfg.Now()
	rate, covered := lim.RateAt(now)
	next := lim.Schedule.NextChange(now) // a scan of the week: once per admission
	if covered && rate <= 0 {
		return RunPermit{}, &Denied{Reason: reverify.WaitRunCap, After: limit{next: next}.until(now)}
	}
	var interval int64
	if rate > 0 {
		interval = max(int64(1e6/rate), 1)
	}
	horizon, until := runCapHorizon, time.Duration(-1)
	if !next.IsZero() {
		until = max(next.Sub(now), 0)
		horizon = min(horizon, until) // no instant past a change at the old rate
	}
	p := g.cfg.Prefix + "run:" + runID + ":"
	res, err := runCapScript.Run(ctx, g.rdb, []string{p + "inflight", p + "tat"},
		now.UnixMilli(), lim.MaxInFlight, holder, now.Add(g.cfg.SlotLease).UnixMilli(), interval,
		horizon.Microseconds(), adaptiveTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return RunPermit{}, fmt.Errorf("run %s caps: %w", runID, err)
	}
	wait := time.Duration(res[1]) * time.Microsecond
	switch res[0] {
	case 1:
		// Slots free as calls return: come back about a call later.
		return RunPermit{}, &Denied{Reason: reverify.WaitRunCap, After: 500 * time.Millisecond}
	case 2:
		after := max(wait-horizon, 100*time.Millisecond)
		if until >= 0 { // back by the run schedule's change, not at the old rate's pace
			after = min(after, max(until, 100*time.Millisecond))
		}
		return RunPermit{}, &Denied{Reason: reverify.WaitRunCap, After: after}
	}
	permit := RunPermit{}
	if lim.MaxInFlight > 0 {
		permit = RunPermit{key: p + "inflight", holder: holder}
	}
	if err := sleep(ctx, wait); err != nil {
		g.ReleaseRun(context.WithoutCancel(ctx), permit)
		return RunPermit{}, err
	}
	return permit, nil
}

// ReleaseRun frees the run's in-flight slot a permit holds. A slot that
// cannot be released here expires with its lease.
func (g *Governor) ReleaseRun(ctx context.Context, p RunPermit) {
	if p.key == "" {
		return
	}
	_ = g.rdb.ZRem(ctx, p.key, p.holder).Err()
}

// RunInFlight counts a run's calls in flight under its cap (0 for a run
// without an in-flight cap).
func (g *Governor) RunInFlight(ctx context.Context, runID string) (int64, error) {
	n, err := g.rdb.ZCount(ctx, g.cfg.Prefix+"run:"+runID+":inflight", fmt.Sprint(g.cfg.Now().UnixMilli()), "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("run %s in flight: %w", runID, err)
	}
	return n, nil
}
