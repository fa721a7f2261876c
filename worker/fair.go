package worker

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"reverify/worker/fleet"
)

// fairGate shares the fleet's admissions among the runs whose tasks wait
// for one in this process, by weight, whatever the number of tasks each
// has waiting. Each waiting task still asks the fleet for one admission,
// so the process asks for as many as before, but an admission goes to
// the run whose turn it is (smooth weighted round robin), oldest task
// first. Without it a run's share of the calls was its share of the
// waiting tasks: a run near its end, with a few tasks left beside a large
// run's full window, got a few percent of the calls and finished slowly.
type fairGate struct {
	fleet admitter

	n    atomic.Uint64 // makes each request's holder unique
	mu   sync.Mutex
	runs map[string]*fairRun // runs with tasks waiting
}

// fairRun is a run's waiting tasks, oldest first, and its place in the
// round robin.
type fairRun struct {
	weight  int
	current int
	waiting []*fairTicket
}

// fairTicket is one waiting task; grant receives its admission or the
// fleet's refusal.
type fairTicket struct {
	run   string
	grant chan fairGrant
}

type fairGrant struct {
	p   fleet.Permit
	err error
}

// admitter is the part of the Governor the gate shares out.
type admitter interface {
	Admit(ctx context.Context, holder string) (fleet.Permit, error)
	Withdraw(ctx context.Context, p fleet.Permit)
}

func newFairGate(gov admitter) *fairGate {
	return &fairGate{fleet: gov, runs: map[string]*fairRun{}}
}

// Admit waits for an admission for a task of run, whose weight is its
// priority's. It returns what the fleet's Admit would: a permit, or why
// the task must wait.
func (g *fairGate) Admit(ctx context.Context, run string, weight int, holder string) (fleet.Permit, error) {
	t := &fairTicket{run: run, grant: make(chan fairGrant, 1)}
	g.mu.Lock()
	r := g.runs[run]
	if r == nil {
		r = &fairRun{}
		g.runs[run] = r
	}
	r.weight = max(weight, 1)
	r.waiting = append(r.waiting, t)
	g.mu.Unlock()

	// This task's request; its answer goes to whichever task's turn it is.
	// It outlives the task (which may be granted another's answer and be
	// done first): every request is answered once, to someone, within the
	// fleet's MaxWait, so every waiting task is answered.
	go func() {
		ctx := context.WithoutCancel(ctx)
		p, err := g.fleet.Admit(ctx, holder+"#"+strconv.FormatUint(g.n.Add(1), 36))
		g.deliver(ctx, fairGrant{p: p, err: err})
	}()

	select {
	case gr := <-t.grant:
		return gr.p, gr.err
	case <-ctx.Done():
		if !g.leave(t) {
			// Granted meanwhile: give it back.
			if gr := <-t.grant; gr.err == nil {
				g.fleet.Withdraw(context.WithoutCancel(ctx), gr.p)
			}
		}
		return fleet.Permit{}, ctx.Err()
	}
}

// deliver gives an admission to the run whose turn it is (its oldest
// task), or a refusal to the run with the most tasks waiting for its
// weight, so a run with few tasks left keeps them in line. An admission
// nobody waits for any more is withdrawn.
func (g *fairGate) deliver(ctx context.Context, gr fairGrant) {
	g.mu.Lock()
	var t *fairTicket
	if gr.err != nil && errors.As(gr.err, new(*fleet.Denied)) {
		t = g.takeFrom(g.fullest())
	} else {
		t = g.takeFrom(g.next())
	}
	g.mu.Unlock()
	switch {
	case t != nil:
		t.grant <- gr
	case gr.err == nil:
		g.fleet.Withdraw(ctx, gr.p)
	}
}

// next is the run whose turn it is: smooth weighted round robin over the
// runs with tasks waiting (nginx's), which interleaves runs by weight
// rather than serving one run's whole turn at once.
func (g *fairGate) next() string {
	total, best := 0, ""
	for id, r := range g.runs {
		r.current += r.weight
		total += r.weight
		if best == "" || r.current > g.runs[best].current || (r.current == g.runs[best].current && id < best) {
			best = id
		}
	}
	if best != "" {
		g.runs[best].current -= total
	}
	return best
}

// fullest is the run with the most tasks waiting for its weight.
func (g *fairGate) fullest() string {
	best, most := "", 0.0
	for id, r := range g.runs {
		if n := float64(len(r.waiting)) / float64(r.weight); best == "" || n > most || (n == most && id < best) {
			best, most = id, n
		}
	}
	return best
}

// takeFrom removes and returns run's oldest waiting task (nil: none).
func (g *fairGate) takeFrom(run string) *fairTicket {
	r := g.runs[run]
	if r == nil {
		return nil
	}
	return g.remove(run, r, 0)
}

// leave removes a task that stopped waiting; false when it was granted
// something first.
func (g *fairGate) leave(t *fairTicket) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.runs[t.run]
	if r == nil {
		return false
	}
	if i := slices.Index(r.waiting, t); i >= 0 {
		g.remove(t.run, r, i)
		return true
	}
	return false
}

// remove takes run's i-th waiting task out of line, and the run out of
// the round robin once none is left.
func (g *fairGate) remove(run string, r *fairRun, i int) *fairTicket {
	t := r.waiting[i]
	r.waiting = slices.Delete(r.waiting, i, i+1)
	if len(r.waiting) == 0 {
		delete(g.runs, run)
	}
	return t
}
