package testenv

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"reverify/storage/postgres"
)

// Ledger returns a migrated ledger in a fresh database of its own, closed
// when the test ends.
func Ledger(t testing.TB) *postgres.Store {
	t.Helper()
	s, _ := ledger(t)
	return s
}

// LedgerWithPool is Ledger plus a connection pool on the same database, for
// tests that set up or check rows with SQL of their own (the ledger keeps
// its pool to itself).
func LedgerWithPool(t testing.TB) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	s, dsn := ledger(t)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatalf("testenv: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return s, pool
}

func ledger(t testing.TB) (*postgres.Store, string) {
	t.Helper()
	ctx := context.Background()
	dsn := Postgres(t)
	if _, err := postgres.Migrate(ctx, dsn); err != nil {
		t.Fatalf("testenv: migrate: %v", err)
	}
	s, err := postgres.Open(ctx, dsn, 8)
	if err != nil {
		t.Fatalf("testenv: open ledger: %v", err)
	}
	t.Cleanup(s.Close)
	return s, dsn
}

// TextHolding returns table.column of every text-like column (text,
// varchar, jsonb) of every table in the public schema holding needle
// anywhere: what a test of erasure asserts is empty.
func TextHolding(t testing.TB, pool *pgxpool.Pool, needle string) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT c.table_name, c.column_name FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
		  AND c.data_type IN ('text', 'character varying', 'jsonb', 'json', 'ARRAY', 'USER-DEFINED')
		ORDER BY 1, 2`)
	if err != nil {
		t.Fatalf("testenv: list text columns: %v", err)
	}
	type col struct{ table, column string }
	var cols []col
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.table, &c.column); err != nil {
			t.Fatalf("testenv: list text columns: %v", err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("testenv: list text columns: %v", err)
	}
	var out []string
	for _, c := range cols {
		var n int64
		q := fmt.Sprintf(`SELECT count(*) FROM %s WHERE strpos(%s::text, $1) > 0`,
			pgx.Identifier{c.table}.Sanitize(), pgx.Identifier{c.column}.Sanitize())
		if err := pool.QueryRow(ctx, q, needle).Scan(&n); err != nil {
			t.Fatalf("testenv: search %s.%s: %v", c.table, c.column, err)
		}
		if n > 0 {
			out = append(out, c.table+"."+c.column)
		}
	}
	return out
}

// RunsWithCountersOff returns the runs whose counters (total, run_counts,
// run_calls) differ from their rows: none, after any change of the ledger.
func RunsWithCountersOff(t testing.TB, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT r.id::text FROM runs r WHERE
		   r.total <> (SELECT count(*) FROM verifications v WHERE v.run_id = r.id)
		OR EXISTS (SELECT 1 FROM (SELECT status, sum(objects) AS n FROM run_counts c WHERE c.run_id = r.id GROUP BY status) c
		           FULL JOIN (SELECT status, count(*) AS n FROM verifications v WHERE v.run_id = r.id GROUP BY status) v
		           USING (status)
		           WHERE coalesce(c.n, 0) <> coalesce(v.n, 0))
		OR (SELECT coalesce(sum(calls), 0) FROM run_calls k WHERE k.run_id = r.id) <> (SELECT count(*) FROM api_calls a WHERE a.run_id = r.id)
		OR (SELECT coalesce(sum(billable), 0) FROM run_calls k WHERE k.run_id = r.id)
		   <> (SELECT count(transaction_id) FROM api_calls a WHERE a.run_id = r.id)`)
	if err != nil {
		t.Fatalf("testenv: compare counters: %v", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("testenv: compare counters: %v", err)
	}
	return ids
}
