package testenv

import (
	"context"
	"testing"

	"reverify/storage/postgres"
)

// Ledger returns a migrated ledger in a fresh database of its own, closed
// when the test ends.
func Ledger(t testing.TB) *postgres.Store {
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
	return s
}
