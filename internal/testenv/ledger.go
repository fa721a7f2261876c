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
