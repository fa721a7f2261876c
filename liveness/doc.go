// Package liveness is the client for the Face Liveness API
// (POST {base}/liveness, see docs/liveness-api.md).
//
// A [Client] sends one image per [Client.Verify] call and returns either a
// [Result] (the liveness score and the API's transaction ID) or an [*Error]
// whose [Kind] tells the caller what to do next:
//
//   - [Transient]: network errors, timeouts, 5xx (except 501) and 200 answers
//     that cannot be trusted (bad JSON, score outside 0..100, no transaction
//     ID). Retry with backoff.
//   - [RateLimited]: 429. Retry after [Error.RetryAfter] when it is non-zero;
//     this does not count against a retry budget.
//   - [Permanent]: 400 (errorCode 1016/1017 or other), 413, other 4xx and 501.
//     Record the answer; do not retry.
//   - [Auth]: 401/403 (bad key, IP not allowed). Stop calling the API.
//
// Errors are classified once, here, at the boundary. Callers use [KindOf] or
// errors.As with *Error; errors.Is(err, context.Canceled) and
// errors.Is(err, context.DeadlineExceeded) keep working for a cancelled or
// expired caller context.
//
// The API key is sent only in the x-api-key header. It never appears in an
// error string, and redirects are not followed (net/http would forward the
// custom header to another host).
//
// The request body is streamed: Verify base64-encodes the image on the fly
// while the transport writes it, so sending an image costs no encoded copy
// of it.
//
// Package reverify/liveness/fakeapi is a faithful fake of the API for tests,
// benchmarks and the demo.
package liveness
