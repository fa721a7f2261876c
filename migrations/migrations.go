// Package migrations holds reverify's PostgreSQL schema as numbered goose
// migrations, embedded in the binary so `reverify migrate` needs no files.
package migrations

import "embed"

// FS holds the numbered .sql migrations.
//
//go:embed *.sql
var FS embed.FS
