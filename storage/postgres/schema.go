package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"reverify/migrations"
)

// Migration is one embedded migration and whether the database has it.
type Migration struct {
	Version   int64
	File      string
	Applied   bool
	AppliedAt *time.Time
}

// Migrations lists every embedded migration, oldest first, with whether
// the database at databaseURL has applied it. A database that does not
// exist yet has applied none; nothing is created or changed.
func Migrations(ctx context.Context, databaseURL string) ([]Migration, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if errors.Is(classify(err), errNoDatabase) {
		return embeddedMigrations()
	}
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	_ = conn.Close(ctx)
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	p, err := newProvider(db)
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("read migration status: %w", err)
	}
	out := make([]Migration, len(st))
	for i, s := range st {
		out[i] = Migration{Version: s.Source.Version, File: s.Source.Path, Applied: s.State == goose.StateApplied}
		if out[i].Applied && !s.AppliedAt.IsZero() {
			at := s.AppliedAt
			out[i].AppliedAt = &at
		}
	}
	return out, nil
}

func embeddedMigrations() ([]Migration, error) {
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	out := make([]Migration, 0, len(files))
	for _, f := range files {
		v, err := goose.NumericComponent(f)
		if err != nil {
			return nil, fmt.Errorf("load migrations: %w", err)
		}
		out = append(out, Migration{Version: v, File: f})
	}
	return out, nil
}

// MigrationSQL returns what the embedded migration file runs going up (or
// down): its text between goose's annotations, comments kept, and whether
// goose runs it in a transaction.
func MigrationSQL(file string, up bool) (sql string, inTx bool, err error) {
	b, err := fs.ReadFile(migrations.FS, file)
	if err != nil {
		return "", false, fmt.Errorf("migration %s: %w", file, err)
	}
	want := "down"
	if up {
		want = "up"
	}
	var out strings.Builder
	var section string
	inTx = true
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if ann, ok := strings.CutPrefix(strings.TrimSpace(line), "-- +goose "); ok {
			switch ann = strings.ToLower(strings.TrimSpace(ann)); ann {
			case "up", "down":
				section = ann
			case "no transaction":
				inTx = false
			}
			continue // StatementBegin/End and the rest only tell goose how to split
		}
		if section == want {
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return "", false, fmt.Errorf("migration %s: %w", file, err)
	}
	return strings.TrimSpace(out.String()) + "\n", inTx, nil
}
