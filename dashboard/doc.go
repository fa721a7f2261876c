// Package dashboard serves reverify's web UI: runs with their progress and
// score histogram, a run's failures and review queue, one object's image
// (streamed from S3, never stored) with the reviewers' decisions, and
// asynqmon under /monitoring.
//
// It is safer than what it embeds: it refuses to listen beyond loopback
// without credentials (basic auth with a bcrypt hash, or a bearer token),
// and then answers only to a localhost or loopback Host (no DNS
// rebinding); it has a read-only mode, masks object keys in asynqmon's
// task payloads when asked, and rejects cross-origin form posts.
package dashboard
