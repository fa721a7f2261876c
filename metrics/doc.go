// Package metrics exports reverify's Prometheus metrics: the pipeline's own
// (S3 fetches, API calls by outcome, results by status, scores, waits, the
// auth circuit) through Pipeline, which implements worker.Observer, and
// asynq's queue metrics through its x/metrics collector.
//
// Nothing here is package state: every collector is registered on the
// registry the caller passes, so tests and several servers in one process
// do not collide.
package metrics
