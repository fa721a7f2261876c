package liveness

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Limits on how much of a response body is read.
const (
	maxSuccessBody = 1 << 20  // a 200 answer is a few hundred bytes
	maxErrorBody   = 64 << 10 // error answers may be HTML pages
	maxDrain       = 64 << 10 // read this much more to keep the connection reusable
	maxMessage     = 500      // bytes of the API's message kept in Error.Message
)

// Defaults used by New when it is given a nil *http.Client.
const (
	DefaultMaxConns = 64
	DefaultTimeout  = 30 * time.Second
)

// Result is a successful liveness check.
type Result struct {
	Score         float64 // result.liveness_score, 0..100
	TransactionID string
	APIType       string
	HTTPStatus    int
}

// Client calls POST {baseURL}/liveness. It is safe for concurrent use.
type Client struct {
	endpoint string
	apiKey   string
	hc       *http.Client
}

// New returns a Client for the API at baseURL (for example
// "https://idverify-api.argosidentity.com/modules"; a trailing slash is
// fine). baseURL must be an http or https URL with a host. apiKey must be
// non-empty; it is sent in the x-api-key header and never appears in an
// error. hc carries the timeouts and connection pool (see NewHTTPClient);
// nil means NewHTTPClient(DefaultMaxConns, DefaultTimeout). New uses a
// shallow copy of hc that does not follow redirects, so the key is never
// sent to another host.
func New(baseURL, apiKey string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		// *url.Error quotes the whole URL, which may carry credentials:
		// keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("liveness: invalid base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("liveness: invalid base URL: scheme must be http or https")
	}
	if u.Host == "" {
		return nil, errors.New("liveness: invalid base URL: missing host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("liveness: invalid base URL: must not have a query or fragment")
	}
	if apiKey == "" {
		return nil, errors.New("liveness: API key is empty")
	}
	if !validHeaderValue(apiKey) {
		return nil, errors.New("liveness: API key contains characters not allowed in an HTTP header")
	}
	if hc == nil {
		hc = NewHTTPClient(DefaultMaxConns, DefaultTimeout)
	}
	noRedirect := *hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{
		endpoint: u.JoinPath("liveness").String(),
		apiKey:   apiKey,
		hc:       &noRedirect,
	}, nil
}

// validHeaderValue reports whether v can be sent as a header value as is:
// no control characters, no leading or trailing blanks.
func validHeaderValue(v string) bool {
	if strings.TrimSpace(v) != v {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// NewHTTPClient returns an *http.Client tuned for many concurrent calls to
// one host: up to maxConns connections (all of which may stay idle between
// calls), keep-alive, HTTP/2 when the server offers it, bounded dial, TLS
// handshake and response-header waits, and an overall per-call timeout
// (0 means none; the caller's context still applies). maxConns <= 0 means
// DefaultMaxConns.
func NewHTTPClient(maxConns int, timeout time.Duration) *http.Client {
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	headerTimeout := 60 * time.Second
	if timeout > 0 {
		headerTimeout = timeout
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          maxConns,
		MaxIdleConnsPerHost:   maxConns,
		MaxConnsPerHost:       maxConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
		ExpectContinueTimeout: time.Second,
		WriteBufferSize:       32 << 10, // request bodies are ~100 KB of base64
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 30 * time.Second, // detect dead connections
			PingTimeout:     15 * time.Second,
		},
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// Verify sends image (raw bytes; Verify base64-encodes them) to the API and
// returns its liveness score. Every failure is an *Error:
//
//   - Transient: no response (connection error, timeout, cancelled ctx —
//     errors.Is(err, ctx.Err()) holds), 5xx other than 501, 408, or a 2xx
//     whose body is not a valid answer.
//   - RateLimited: 429, with RetryAfter from the Retry-After header.
//   - Permanent: 400 (ErrorCode 1016/1017 when the API sent one), 413,
//     other 4xx, 501, 3xx.
//   - Auth: 401, 403.
//
// Verify sends whatever it is given; rejecting empty or non-image input
// before paying for a call is the caller's job.
func (c *Client) Verify(ctx context.Context, image []byte) (*Result, error) {
	req, err := c.newRequest(ctx, image)
	if err != nil {
		return nil, &Error{Kind: Permanent, Message: "building request", Err: err}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	defer drainClose(resp.Body)

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return c.parseSuccess(ctx, resp)
	}
	return nil, c.parseFailure(resp)
}

// newRequest builds the POST with a streamed body of exactly known length;
// GetBody lets the transport send it again (on a retried connection).
func (c *Client) newRequest(ctx context.Context, image []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, nil)
	if err != nil {
		return nil, err
	}
	req.Body = newBodyReader(image)
	req.ContentLength = bodyLen(len(image))
	req.GetBody = func() (io.ReadCloser, error) { return newBodyReader(image), nil }
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("x-api-key", c.apiKey)
	return req, nil
}

// transportError wraps an error from http.Client.Do (no response arrived).
func (c *Client) transportError(ctx context.Context, err error) *Error {
	e := &Error{Kind: Transient, Message: "request failed", Err: err}
	if ctxErr := ctx.Err(); ctxErr != nil {
		e.Message = "request cancelled"
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			e.Message = "request deadline exceeded"
		}
		if !errors.Is(err, ctxErr) {
			e.Err = fmt.Errorf("%w: %w", ctxErr, err)
		}
	} else if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		e.Message = "request timed out"
	}
	return e
}

// successBody is a 200 answer. Pointers tell a missing field from a zero.
type successBody struct {
	APIType string `json:"apiType"`
	Result  *struct {
		Score *float64 `json:"liveness_score"`
	} `json:"result"`
	TransactionID string `json:"transactionId"`
}

func (c *Client) parseSuccess(ctx context.Context, resp *http.Response) (*Result, error) {
	var data []byte
	// A paid answer we cannot use still names its transaction when it can,
	// so the call can be matched to the vendor's invoice.
	invalid := func(msg string, err error) error {
		return &Error{Kind: Transient, HTTPStatus: resp.StatusCode, Message: msg, Err: err,
			TransactionID: truncate(c.redact(salvageTransactionID(data)), 100)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSuccessBody+1))
	if err != nil {
		e := c.transportError(ctx, err)
		e.HTTPStatus = resp.StatusCode
		e.Message = "reading response: " + e.Message
		return nil, e
	}
	if len(data) > maxSuccessBody {
		return nil, invalid("response body over "+strconv.Itoa(maxSuccessBody)+" bytes", nil)
	}
	var body successBody
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, invalid("invalid JSON in response", err)
	}
	switch {
	case body.Result == nil || body.Result.Score == nil:
		return nil, invalid("response has no result.liveness_score", nil)
	case *body.Result.Score < 0 || *body.Result.Score > 100:
		return nil, invalid("liveness_score "+strconv.FormatFloat(*body.Result.Score, 'g', -1, 64)+" outside 0..100", nil)
	case body.TransactionID == "":
		return nil, invalid("response has no transactionId", nil)
	}
	return &Result{
		Score:         *body.Result.Score,
		TransactionID: body.TransactionID,
		APIType:       body.APIType,
		HTTPStatus:    resp.StatusCode,
	}, nil
}

// errorBody is a non-2xx answer. errorCode is documented as a number; a
// numeric string is accepted too.
type errorBody struct {
	TransactionID string          `json:"transactionId"`
	Message       string          `json:"message"`
	ErrorCode     json.RawMessage `json:"errorCode"`
}

func (c *Client) parseFailure(resp *http.Response) *Error {
	e := &Error{
		Kind:       classify(resp.StatusCode),
		HTTPStatus: resp.StatusCode,
		Message:    http.StatusText(resp.StatusCode),
	}
	if e.Kind == RateLimited || resp.StatusCode == http.StatusServiceUnavailable {
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		e.Message = "unexpected redirect (not followed)"
	}
	// The body is optional detail: HTML or garbage is classified by status.
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body errorBody
	if json.Unmarshal(data, &body) == nil {
		if msg := strings.TrimSpace(body.Message); msg != "" {
			e.Message = truncate(c.redact(msg), maxMessage)
		}
		e.TransactionID = truncate(c.redact(body.TransactionID), 100)
		e.ErrorCode = parseErrorCode(body.ErrorCode)
	}
	return e
}

var transactionIDField = regexp.MustCompile(`"transactionId"\s*:\s*"([A-Za-z0-9_.:-]{1,100})"`)

// salvageTransactionID finds a transactionId in an answer that does not
// parse as a whole (truncated or otherwise broken JSON).
func salvageTransactionID(body []byte) string {
	if m := transactionIDField.FindSubmatch(body); m != nil {
		return string(m[1])
	}
	return ""
}

func parseErrorCode(raw json.RawMessage) int {
	raw = bytes.Trim(raw, `" `)
	n, err := strconv.Atoi(string(raw))
	if err != nil {
		return 0
	}
	return n
}

// redact removes the API key from text that came from the server, in case
// something in between echoes request headers back.
func (c *Client) redact(s string) string {
	return strings.ReplaceAll(s, c.apiKey, "[REDACTED]")
}

// drainClose reads a little of what is left of body, so the connection can
// be reused, and closes it.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	_ = body.Close()
}
