// Package objects is reverify's boundary to S3-compatible object storage:
// listing the images of a source and fetching one image with a size limit.
//
// Open returns a Store that lists through the AWS SDK and, against an
// explicit endpoint, fetches with GETs signed by the SDK's own SigV4 signer
// but sent without its per-call middleware, which cost the worker more CPU
// than the request itself (see direct.go). Either way, errors are
// translated once, in this package, into a few permanent sentinels
// (ErrNotFound, ErrBucketNotFound, ErrAccessDenied, ErrTooLarge); anything
// else is transient (see IsRetryable). Error text names an object by its
// bucket and KeyHash, never its key, and redacts the SDK's own text (which
// quotes the request URL): these errors reach logs, the ledger's messages
// and asynq's task records.
package objects
