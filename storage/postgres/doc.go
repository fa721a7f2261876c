// Package postgres is reverify's ledger in PostgreSQL: runs, one verification
// row per (run, object), and a record of every paid API call.
//
// PostgreSQL, not Redis, is the source of truth for what must be done: rows are
// written before their tasks are enqueued, and a task is acknowledged only
// after its terminal row is committed.
package postgres
