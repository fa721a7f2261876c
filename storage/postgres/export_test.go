package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// QueuedWrites is how many writes wait for a flusher.
func (s *Store) QueuedWrites() int { return len(s.group.pending) }

// Classify is classify, for its table test.
var Classify = classify

// KeysetPage is how many rows a keyset-paged read fetches at a time.
const KeysetPage = keysetPage

// OpenTraced is Open with every statement the store sends (queries and
// batched statements) told to trace, for tests that look at query plans.
func OpenTraced(ctx context.Context, databaseURL string, trace func(sql string, args []any)) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.Tracer = statementTracer(trace)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Store{pool: pool}, nil
}

type statementTracer func(sql string, args []any)

func (t statementTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	t(d.SQL, d.Args)
	return ctx
}

func (statementTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (t statementTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (t statementTracer) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	t(d.SQL, d.Args)
}

func (statementTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
