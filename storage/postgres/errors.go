package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
)

// The ledger's errors. Callers check them with errors.Is; nothing outside
// this package looks at driver errors or SQLSTATE codes.
var (
	// ErrNotFound means a run, or an object of a run, does not exist.
	// ErrRunNotFound and ErrObjectNotFound wrap it.
	ErrNotFound = errors.New("not found")
	// ErrRunNotFound is returned for a run ID that has no row, or that is
	// no UUID and so names no run.
	ErrRunNotFound = fmt.Errorf("run %w", ErrNotFound)
	// ErrObjectNotFound means the object is not part of the run.
	ErrObjectNotFound = fmt.Errorf("object %w", ErrNotFound)
	// ErrUnknownRun is returned when a result names a run that does not exist.
	ErrUnknownRun = errors.New("unknown run")
	// ErrInvalidTransition means a run is not in a status the change
	// applies to (e.g. resuming a run that is not paused).
	ErrInvalidTransition = errors.New("invalid run status change")
	// ErrUnavailable marks errors that mean PostgreSQL could not be reached
	// or the statement may succeed when tried again.
	ErrUnavailable = errors.New("postgres unavailable")
	// ErrNotMigrated means the database schema is missing or older than
	// this binary.
	ErrNotMigrated = errors.New("database is not migrated: run `reverify migrate` first")
	// ErrUnknownView names a view that is not one of Views.
	ErrUnknownView = errors.New("unknown view")
	// ErrClaimed means another reviewer holds a live claim on the object.
	ErrClaimed = errors.New("another reviewer is reviewing the object")
	// ErrClaimLost means the reviewer's claim expired and was taken, or
	// the object was decided.
	ErrClaimLost = errors.New("the claim on the object is no longer held")
	// ErrSecondReviewer means a reviewer tried to confirm or overturn their
	// own decision awaiting a second review (four-eyes rule).
	ErrSecondReviewer = errors.New("a decision awaiting a second review needs another reviewer")

	// Migrate creates a missing database; another process may create it first.
	errNoDatabase     = errors.New("database does not exist")
	errDatabaseExists = errors.New("database already exists")
)

// classify translates a driver error into the ledger's errors, in one
// place:
//   - a foreign-key violation is ErrObjectNotFound for a review (the object
//     is not part of the run) and ErrUnknownRun otherwise (every other
//     foreign key is a row's run);
//   - serialization failures, deadlocks, lock timeouts, lost connections,
//     exhausted resources and a server shutting down are ErrUnavailable;
//   - a missing database, or one created meanwhile, is errNoDatabase or
//     errDatabaseExists.
//
// The ledger's own errors and a cancelled context pass unchanged; anything
// else that is not a server's answer is a connection problem.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		code := pgErr.Code
		switch {
		case code == pgerrcode.ForeignKeyViolation && pgErr.TableName == "reviews":
			return fmt.Errorf("%w: %w", ErrObjectNotFound, err)
		case code == pgerrcode.ForeignKeyViolation,
			// A run's rows go to its partitions: none means no such run.
			code == pgerrcode.CheckViolation && pgErr.ConstraintName == "" && strings.HasPrefix(pgErr.Message, "no partition of relation"):
			return fmt.Errorf("%w: %w", ErrUnknownRun, err)
		case code == pgerrcode.InvalidCatalogName:
			return fmt.Errorf("%w: %w", errNoDatabase, err)
		case code == pgerrcode.DuplicateDatabase:
			return fmt.Errorf("%w: %w", errDatabaseExists, err)
		case code == pgerrcode.SerializationFailure, code == pgerrcode.DeadlockDetected, code == pgerrcode.LockNotAvailable,
			pgerrcode.IsConnectionException(code), pgerrcode.IsInsufficientResources(code), pgerrcode.IsOperatorIntervention(code):
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || ledgerError(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// ledgerError reports whether err already is one of the ledger's errors.
func ledgerError(err error) bool {
	for _, e := range []error{ErrNotFound, ErrUnknownRun, ErrInvalidTransition, ErrUnavailable, ErrNotMigrated, ErrUnknownView,
		ErrClaimed, ErrClaimLost, ErrSecondReviewer} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// checkRunID refuses an ID that is no UUID before it reaches a query: it
// names no run, and PostgreSQL would refuse to compare it with a uuid
// column.
func checkRunID(id string) error {
	if !isUUID(id) {
		return fmt.Errorf("run %s: %w", id, ErrRunNotFound)
	}
	return nil
}

// isUUID reports whether s is a UUID in its usual form, 8-4-4-4-12 hex
// digits.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}
