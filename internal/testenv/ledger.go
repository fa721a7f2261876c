package testenv

import (
	"context"
	"testing"

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
