package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"reverify/migrations"
)

// Store is the ledger. It is safe for concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	group *groupCommitter // nil: each write commits alone
}

// Open connects to an existing, migrated database. maxConns <= 0 keeps pgx's default.
// It returns ErrNotMigrated when migrations are pending.
func Open(ctx context.Context, databaseURL string, maxConns int32) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	// The ledger's statements are short; on a large run PostgreSQL's cost
	// estimates pass jit_above_cost and compiling took longer than the
	// statement itself (a batch of a large cancel: 1.5 s of 2.4 s).
	cfg.ConnConfig.RuntimeParams["jit"] = "off"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres %s: %w", cfg.ConnConfig.Database, err)
	}
	s := &Store{pool: pool}
	if err := s.SchemaCurrent(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close releases every connection.
func (s *Store) Close() {
	if s.group != nil {
		s.group.close()
	}
	s.pool.Close()
}

// Ping reports whether PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// SchemaCurrent reports whether the schema is at this binary's version: it
// returns ErrNotMigrated while migrations are pending, e.g. while a rollout
// waits for `reverify migrate`.
func (s *Store) SchemaCurrent(ctx context.Context) error {
	pending, err := s.pendingMigrations(ctx)
	if err != nil {
		return err
	}
	if pending {
		return ErrNotMigrated
	}
	return nil
}

func (s *Store) pendingMigrations(ctx context.Context) (bool, error) {
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := newProvider(db)
	if err != nil {
		return false, err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("check migrations: %w", err)
	}
	return pending, nil
}

func newProvider(db *sql.DB) (*goose.Provider, error) {
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, nil
}

// Migrate creates the database when it is missing and the user may create
// it, then applies every pending migration. It returns the versions applied;
// running it again applies nothing.
func Migrate(ctx context.Context, databaseURL string) ([]string, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if err := ensureDatabase(ctx, cfg); err != nil {
		return nil, err
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	p, err := newProvider(db)
	if err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply migrations: %w", err)
	}
	applied := make([]string, 0, len(results))
	for _, r := range results {
		applied = append(applied, r.Source.Path)
	}
	return applied, nil
}

// Rollback undoes the newest applied migration and returns its file name
// ("" when none is applied).
func Rollback(ctx context.Context, databaseURL string) (string, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return "", fmt.Errorf("parse database url: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	p, err := newProvider(db)
	if err != nil {
		return "", err
	}
	r, err := p.Down(ctx)
	if errors.Is(err, goose.ErrNoNextVersion) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("roll back migration: %w", err)
	}
	return r.Source.Path, nil
}

// ensureDatabase creates cfg's database when connecting fails because it
// does not exist.
func ensureDatabase(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return conn.Close(ctx)
	}
	if !errors.Is(classify(err), errNoDatabase) {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	admin := cfg.Copy()
	admin.Database = "postgres"
	aconn, aerr := pgx.ConnectConfig(ctx, admin)
	if aerr != nil {
		return fmt.Errorf("database %q does not exist and the server's postgres database is unreachable to create it: %w", cfg.Database, aerr)
	}
	defer aconn.Close(ctx)
	if _, err := aconn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{cfg.Database}.Sanitize()); err != nil {
		if errors.Is(classify(err), errDatabaseExists) { // created concurrently
			return nil
		}
		return fmt.Errorf("create database %q: %w", cfg.Database, err)
	}
	return nil
}
