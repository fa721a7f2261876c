package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// write is one ledger write: statements queued into a batch, and a reader
// of their results in the same order. read must set all of its outputs on
// every call: a write whose group failed is run again on its own.
type write struct {
	queue func(*pgx.Batch)
	read  func(pgx.BatchResults) error
}

// exec runs w on its own, in one implicit transaction, or through the
// group committer when GroupWrites has started one.
func (s *Store) exec(ctx context.Context, w write) error {
	if g := s.group; g != nil {
		return g.submit(ctx, w)
	}
	return s.send(ctx, w)
}

// send runs writes as one batch: one round trip, one implicit transaction.
func (s *Store) send(ctx context.Context, writes ...write) error {
	b := &pgx.Batch{}
	for _, w := range writes {
		w.queue(b)
	}
	br := s.pool.SendBatch(ctx, b)
	var err error
	for _, w := range writes {
		if err = w.read(br); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// groupMax bounds the writes committed together: enough to share a commit
// among hundreds of in-flight images, small enough that one slow batch
// holds few row locks.
const groupMax = 64

// groupCommitter commits the writes that arrive while a commit is under
// way in one transaction: one round trip and one WAL flush for many
// images, and no added wait when writes are few (a lone write goes at once).
type groupCommitter struct {
	store   *Store
	pending chan pending
	quit    chan struct{}
	wg      sync.WaitGroup
	mu      sync.RWMutex // held to hand over a write; closed is set under it
	closed  bool
	stats   struct{ commits, writes, alone atomic.Int64 }
}

// WriteStats counts the grouped writes so far.
type WriteStats struct {
	Commits int64 // transactions that committed writes together
	Writes  int64 // writes they committed
	Alone   int64 // writes run on their own after their group failed
}

// WriteStats reports how the result path's writes were grouped; zero
// without GroupWrites.
func (s *Store) WriteStats() WriteStats {
	if s.group == nil {
		return WriteStats{}
	}
	st := &s.group.stats
	return WriteStats{Commits: st.commits.Load(), Writes: st.writes.Load(), Alone: st.alone.Load()}
}

type pending struct {
	w    write
	done chan error // buffered: the flusher never blocks on a caller that gave up
}

// GroupWrites makes the result path's writes (BeginCall, FinishCall,
// RecordResult) share transactions, committed by flushers goroutines each
// holding at most one connection. A write still returns only after its own
// transaction committed; a group that fails is retried one write at a time,
// so each caller gets its own error. Call it once, before the writes; Close
// stops it.
func (s *Store) GroupWrites(flushers int) {
	flushers = max(1, flushers)
	g := &groupCommitter{store: s, pending: make(chan pending, groupMax*flushers), quit: make(chan struct{})}
	for range flushers {
		g.wg.Go(g.flush)
	}
	s.group = g
}

func (g *groupCommitter) submit(ctx context.Context, w write) error {
	p := pending{w: w, done: make(chan error, 1)}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return g.store.send(ctx, w)
	}
	select {
	case g.pending <- p:
		g.mu.RUnlock()
	case <-ctx.Done():
		g.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err() // the write may still commit, as when a lone query is cancelled
	}
}

func (g *groupCommitter) flush() {
	batch := make([]pending, 0, groupMax)
	writes := make([]write, 0, groupMax)
	for {
		select {
		case p := <-g.pending:
			batch = append(batch[:0], p)
		case <-g.quit:
			return
		}
		g.commit(g.gather(batch), writes)
	}
}

// gather adds the writes already waiting, without waiting for more.
func (g *groupCommitter) gather(batch []pending) []pending {
	for len(batch) < groupMax {
		select {
		case p := <-g.pending:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// commit runs batch in one implicit transaction; when anything in it fails
// (one write's constraint, a deadlock, a lost connection), nothing of it
// was committed, so each write runs again alone for its own answer.
// writes is scratch space for the batch's writes.
func (g *groupCommitter) commit(batch []pending, writes []write) {
	// Callers may give up; the writes they handed over still finish.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	writes = writes[:0]
	for _, p := range batch {
		writes = append(writes, p.w)
	}
	err := g.store.send(ctx, writes...)
	switch {
	case err == nil:
		g.stats.commits.Add(1)
		g.stats.writes.Add(int64(len(batch)))
		for _, p := range batch {
			p.done <- nil
		}
	case len(batch) == 1:
		batch[0].done <- err
	default:
		g.stats.alone.Add(int64(len(batch)))
		for _, p := range batch {
			p.done <- g.store.send(ctx, p.w)
		}
	}
}

// close stops the flushers once every write handed over has committed.
func (g *groupCommitter) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	close(g.quit)
	g.wg.Wait()
	for {
		batch := g.gather(nil)
		if len(batch) == 0 {
			return
		}
		g.commit(batch, nil)
	}
}
