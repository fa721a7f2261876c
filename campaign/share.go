package campaign

import (
	"context"
	"math"
	"slices"
	"time"

	"reverify/storage/postgres"
	"reverify/worker/fleet"
)

// FleetRateNow is the fleet's rate of API calls at now as far as the
// status tells: the schedule's where it covers now (the lower when the
// workers' rate is lower still), else the fixed or adaptive rate. known
// is false when the fleet has no rate (a fixed rate of 0: no limit, or an
// adaptive one not started yet); a rate of 0 that is known stops calls.
func FleetRateNow(st fleet.Status, now time.Time) (rate float64, known bool) {
	if r, ok := st.Schedule.At(now); ok {
		if st.Rate > 0 && st.Rate < r {
			r = st.Rate
		}
		return r, true
	}
	return st.Rate, st.Rate > 0
}

// shares is each run's window for this round. With the fleet's rate known,
// the windows together hold Horizon's worth of its calls, split by
// priority weight (at least one task a run, at most Window); without, each
// run gets Window.
func (f *Feeder) shares(ctx context.Context, runs []postgres.DispatchRun) []int {
	out := make([]int, len(runs))
	total, ok := f.total(ctx)
	f.stats.total.Store(int64(total))
	if !ok {
		for i := range out {
			out[i] = f.cfg.Window
		}
		return out
	}
	for i, s := range split(total, weights(runs)) {
		out[i] = min(max(s, 1), f.cfg.Window)
	}
	return out
}

// total is what the windows of all runs may hold together: the calls the
// fleet makes in Horizon at its current rate; false when that rate is not
// known (no Fleet, no limit, or the status cannot be read).
func (f *Feeder) total(ctx context.Context) (int, bool) {
	if f.cfg.Fleet == nil {
		return 0, false
	}
	st, err := f.cfg.Fleet.Status(ctx)
	if err != nil {
		if ctx.Err() == nil {
			f.log.WarnContext(ctx, "could not read the fleet's rate; every run gets a whole window", "err", err)
		}
		return 0, false
	}
	rate, known := FleetRateNow(st, time.Now())
	if !known {
		return 0, false
	}
	return int(math.Ceil(rate * f.cfg.Horizon.Seconds())), true
}

func weights(runs []postgres.DispatchRun) []int {
	w := make([]int, len(runs))
	for i, r := range runs {
		w[i] = r.Priority.Weight()
	}
	return w
}

// split divides total in proportion to weights (largest remainders first,
// ties to the earlier, i.e. the more urgent or older run).
func split(total int, weights []int) []int {
	out := make([]int, len(weights))
	sum := 0
	for _, w := range weights {
		sum += w
	}
	if sum <= 0 || total <= 0 {
		return out
	}
	order := make([]int, len(weights))
	given := 0
	for i, w := range weights {
		out[i] = total * w / sum
		given += out[i]
		order[i] = i
	}
	rem := func(i int) int { return total * weights[i] % sum }
	slices.SortStableFunc(order, func(a, b int) int { return rem(b) - rem(a) })
	for k := 0; given < total; k++ {
		out[order[k%len(order)]]++
		given++
	}
	return out
}

// spare gives what runs short of work, or held back by their own caps,
// left of their shares to the runs that filled theirs, by weight, each up to window; nil when nothing is
// left over or nobody can take it.
func spare(shares, wts []int, state []windowState, window int) []int {
	left := 0
	takers := make([]int, len(shares))
	anyone := false
	for i, st := range state {
		switch {
		case st.err:
		case st.dry:
			left += max(shares[i]-st.tasks, 0)
		case st.capped > 0:
			left += max(shares[i]-st.capped, 0)
		case st.tasks >= shares[i] && shares[i] < window:
			takers[i], anyone = wts[i], true
		}
	}
	if left == 0 || !anyone {
		return nil
	}
	extra := split(left, takers)
	for i := range extra {
		extra[i] = min(extra[i], window-shares[i])
	}
	return extra
}
