package liveness

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Error codes the API returns in the errorCode field of a 400 answer.
const (
	// ErrCodeFaceImageRequired means the request had no faceImage.
	ErrCodeFaceImageRequired = 1016
	// ErrCodeAnalyzeFailed means the API could not analyse a face in the image.
	ErrCodeAnalyzeFailed = 1017
)

// Kind classifies a failed call by what the caller should do about it.
type Kind int

const (
	// Transient covers 5xx (but not 501), timeouts, connection errors and 200
	// answers that cannot be used (bad JSON, score outside 0..100, missing
	// transactionId). Retry with backoff.
	Transient Kind = iota + 1
	// RateLimited is a 429. Error.RetryAfter holds the Retry-After header
	// (seconds or HTTP date) when the API sent one.
	RateLimited
	// Permanent covers 400 (errorCode 1016, 1017 or other), 413, other 4xx,
	// 3xx (redirects are not followed) and 501. Do not retry.
	Permanent
	// Auth covers 401 and 403: the key is wrong or the caller's IP is not
	// allowed. Every further call will fail the same way.
	Auth
)

// String returns "transient", "rate_limited", "permanent", "auth", or
// "unknown(N)".
func (k Kind) String() string {
	switch k {
	case Transient:
		return "transient"
	case RateLimited:
		return "rate_limited"
	case Permanent:
		return "permanent"
	case Auth:
		return "auth"
	default:
		return "unknown(" + strconv.Itoa(int(k)) + ")"
	}
}

// Error is the error type returned by Client.Verify for every failure.
type Error struct {
	Kind          Kind
	HTTPStatus    int    // 0 when no response arrived
	ErrorCode     int    // errorCode from the body, 0 when absent
	TransactionID string // from the body when present
	Message       string // from the body (truncated), or a short description
	RetryAfter    time.Duration
	Err           error // underlying cause, may be nil
}

// Error formats the error as
// "liveness: <kind>: HTTP <status>: <message> (errorCode N, transactionId T, retry after D): <cause>",
// leaving out the parts that are empty.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("liveness: ")
	b.WriteString(e.Kind.String())
	if e.HTTPStatus != 0 {
		b.WriteString(": HTTP ")
		b.WriteString(strconv.Itoa(e.HTTPStatus))
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	var details []string
	if e.ErrorCode != 0 {
		details = append(details, "errorCode "+strconv.Itoa(e.ErrorCode))
	}
	if e.TransactionID != "" {
		details = append(details, "transactionId "+e.TransactionID)
	}
	if e.RetryAfter > 0 {
		details = append(details, "retry after "+e.RetryAfter.String())
	}
	if len(details) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(details, ", "))
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of the first *Error in err's chain, or 0 when
// there is none.
func KindOf(err error) Kind {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	return 0
}

// classify maps an HTTP status other than 2xx to a Kind.
func classify(status int) Kind {
	switch {
	case status == 401 || status == 403:
		return Auth
	case status == 429:
		return RateLimited
	case status == 408: // the server gave up waiting for the request: try again
		return Transient
	case status == 501:
		return Permanent
	case status >= 500:
		return Transient
	default: // other 4xx, 3xx (redirects are not followed), 1xx
		return Permanent
	}
}

// maxRetryAfter bounds a Retry-After value so that a bogus header cannot
// park a task forever (or overflow a Duration).
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter parses a Retry-After header: delay-seconds or an HTTP date.
// It returns 0 when the header is absent or invalid.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
