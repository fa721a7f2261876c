// Package report turns the ledger into reports: the reporting views printed
// as a table, CSV or JSON, and a run's completion report (one CSV line per
// object plus a JSON summary, as S3 Batch Operations writes) to a local
// directory or an S3 prefix.
package report
