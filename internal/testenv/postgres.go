package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// service is the outcome, decided once per test binary, of finding one
// service: where it is, or why it cannot be used.
type service struct {
	once    sync.Once
	addr    string // URL or host:port when usable
	missing string // why it is unavailable (skip, or fail in CI)
	err     error  // a real failure, e.g. Docker present but the container failed
}

// get resolves the service with find (once) and returns its address, failing
// or skipping t when it is unavailable.
func (s *service) get(t testing.TB, find func(s *service)) string {
	t.Helper()
	s.once.Do(func() { find(s) })
	switch {
	case s.addr != "":
		return s.addr
	case s.err != nil:
		t.Fatalf("testenv: %v", s.err)
	default:
		unavailable(t, "%s", s.missing)
	}
	return ""
}

// fallback fills s after the configured service did not answer: in CI it
// stays missing; otherwise start is tried when Docker is available.
func (s *service) fallback(start func() (string, error)) {
	if inCI() {
		return
	}
	addr, err := start()
	switch {
	case errors.Is(err, errNoDocker):
		s.missing += "; " + err.Error()
	case err != nil:
		s.err = fmt.Errorf("%s; Docker fallback failed: %w", s.missing, err)
	default:
		s.addr = addr
	}
}

var postgresService service // test-only; see docker.go

// postgresAdminURL returns the admin URL of a PostgreSQL server that answers.
func postgresAdminURL(t testing.TB) string {
	t.Helper()
	return postgresService.get(t, func(s *service) {
		u := os.Getenv("REVERIFY_TEST_DATABASE_URL")
		if u == "" {
			u = defaultDatabaseURL
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := pingPostgres(ctx, u)
		if err == nil {
			s.addr = u
			return
		}
		s.missing = fmt.Sprintf("PostgreSQL at %s does not answer (set REVERIFY_TEST_DATABASE_URL to an admin URL): %v", redactURL(u), err)
		s.fallback(postgresContainerURL)
	})
}

func pingPostgres(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// Postgres returns the URL of a new, empty database for this test. It is
// created from template0 and dropped WITH (FORCE) when the test ends, so
// connections the test left open do not block the cleanup.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := postgresAdminURL(t)

	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("testenv: database URL %s must be a postgres:// URL", redactURL(admin))
	}
	name := "reverify_test_" + randomHex(t, 6)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := adminExec(ctx, admin, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adminExec(ctx, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})

	u.Path = "/" + name
	return u.String()
}

// adminExec runs one statement on its own admin connection. CREATE and DROP
// DATABASE cannot run inside a transaction, so there is none.
func adminExec(ctx context.Context, adminURL, sql string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// MissingDatabase returns the URL of a database that does not exist yet,
// for code that must create it; it is dropped when the test ends.
func MissingDatabase(t testing.TB) string {
	t.Helper()
	admin := postgresAdminURL(t)
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("testenv: database URL %s: %v", redactURL(admin), err)
	}
	name := "reverify_test_" + randomHex(t, 6)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adminExec(ctx, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
