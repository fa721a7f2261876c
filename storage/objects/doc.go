// Package objects is reverify's boundary to S3-compatible object storage:
// listing the images of a source and fetching one image with a size limit.
//
// SDK errors are translated once, in this package, into a few permanent
// sentinels (ErrNotFound, ErrBucketNotFound, ErrAccessDenied, ErrTooLarge);
// anything else is transient (see IsRetryable).
package objects
