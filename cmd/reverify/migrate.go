package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"reverify"
	"reverify/storage/postgres"
)

func (a *app) migrateCommand() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create the database if needed and apply the schema migrations (migrate up); status, up, down",
		Long: `migrate alone is migrate up: it creates the database when it is missing and
the user may create it, then applies every pending migration; running it
again applies nothing. The migrations are embedded in the binary;
--dry-run prints the SQL they would run, for change control to review.`,
		Example: `  reverify migrate
  reverify migrate status
  reverify migrate up --dry-run > pending.sql
  reverify migrate down --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.migrateUp(cmd.Context(), dryRun) },
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the SQL of the pending migrations instead of applying them")
	cmd.AddCommand(a.migrateStatusCommand(), a.migrateUpCommand(), a.migrateDownCommand())
	return cmd
}

func (a *app) migrateUpCommand() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration, creating the database if needed",
		Example: `  reverify migrate up
  reverify migrate up --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.migrateUp(cmd.Context(), dryRun) },
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the SQL of the pending migrations instead of applying them")
	return cmd
}

func (a *app) migrateUp(ctx context.Context, dryRun bool) error {
	dsn, err := a.cfg.database()
	if err != nil {
		return err
	}
	if dryRun {
		ms, err := postgres.Migrations(ctx, dsn)
		if err != nil {
			return err
		}
		n := 0
		for _, m := range ms {
			if m.Applied {
				continue
			}
			n++
			if err := writeMigrationSQL(a.stdout, m, true); err != nil {
				return err
			}
		}
		if n == 0 {
			fmt.Fprintln(a.stdout, "-- schema is up to date: nothing to apply")
		}
		return nil
	}
	applied, err := postgres.Migrate(ctx, dsn)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(a.stdout, "schema is up to date")
	}
	for _, m := range applied {
		fmt.Fprintf(a.stdout, "applied %s\n", m)
	}
	return nil
}

func (a *app) migrateDownCommand() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Roll back the newest applied migration (one at a time)",
		Long: `down undoes the newest applied migration with the SQL of its down section.
Run an older binary against the rolled-back schema only: this binary's
workers refuse a schema older than theirs. --dry-run prints that SQL.`,
		Example: `  reverify migrate down --dry-run
  reverify migrate down`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dsn, err := a.cfg.database()
			if err != nil {
				return err
			}
			if dryRun {
				ms, err := postgres.Migrations(cmd.Context(), dsn)
				if err != nil {
					return err
				}
				for i := len(ms) - 1; i >= 0; i-- {
					if ms[i].Applied {
						return writeMigrationSQL(a.stdout, ms[i], false)
					}
				}
				fmt.Fprintln(a.stdout, "-- no migration is applied: nothing to roll back")
				return nil
			}
			undone, err := postgres.Rollback(cmd.Context(), dsn)
			if err != nil {
				return err
			}
			if undone == "" {
				fmt.Fprintln(a.stdout, "no migration is applied: nothing to roll back")
				return nil
			}
			fmt.Fprintf(a.stdout, "rolled back %s\n", undone)
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the SQL that would roll back the newest migration instead of running it")
	return cmd
}

func writeMigrationSQL(w io.Writer, m postgres.Migration, up bool) error {
	sql, inTx, err := postgres.MigrationSQL(m.File, up)
	if err != nil {
		return err
	}
	dir, how := "up", "in one transaction"
	if !up {
		dir = "down"
	}
	if !inTx {
		how = "outside a transaction"
	}
	_, err = fmt.Fprintf(w, "-- %s (version %d, %s, %s; goose then records the version in goose_db_version)\n%s\n",
		m.File, m.Version, dir, how, sql)
	return err
}

// migrationDoc is one migration in `migrate status -o json|yaml`.
type migrationDoc struct {
	Version   int64      `json:"version"`
	File      string     `json:"file"`
	Applied   bool       `json:"applied"`
	AppliedAt *time.Time `json:"applied_at"`
}

func (a *app) migrateStatusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List the embedded migrations and which the database has applied",
		Example: `  reverify migrate status
  reverify migrate status -o json | jq -e 'all(.applied)'`,
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		dsn, err := a.cfg.database()
		if err != nil {
			return err
		}
		ms, err := postgres.Migrations(cmd.Context(), dsn)
		if err != nil {
			return err
		}
		if out.structured() {
			docs := make([]migrationDoc, len(ms))
			for i, m := range ms {
				docs[i] = migrationDoc{Version: m.Version, File: m.File, Applied: m.Applied, AppliedAt: m.AppliedAt}
			}
			return writeDoc(a.stdout, out.value, docs)
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tFILE\tSTATE\tAPPLIED")
		for _, m := range ms {
			state, at := "pending", "-"
			if m.Applied {
				state = "applied"
				if m.AppliedAt != nil {
					at = reverify.FormatTime(*m.AppliedAt)
				}
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.Version, m.File, state, at)
		}
		return tw.Flush()
	}
	return cmd
}
