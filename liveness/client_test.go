package liveness_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/liveness"
)

const testKey = "sk_test_Sup3rS3cretKey"

// startServer runs h on an httptest server closed at the end of the test.
func startServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t *testing.T, baseURL string, timeout time.Duration) *liveness.Client {
	t.Helper()
	c, err := liveness.New(baseURL, testKey, liveness.NewHTTPClient(8, timeout))
	require.NoError(t, err)
	return c
}

// reply answers with status, optional headers (key, value pairs) and body.
func reply(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// hang waits until the client goes away. It reads the body first: the
// server notices a closed connection only once the body has been read.
func hang(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

func TestVerifyRequest(t *testing.T) {
	t.Parallel()
	img := []byte("\x89PNG not really, but any bytes will do \xff\xfe\x00")
	for _, tc := range []struct {
		name, base, wantPath string
	}{
		{"bare host", "", "/liveness"},
		{"trailing slash", "/", "/liveness"},
		{"path prefix", "/modules", "/modules/liveness"},
		{"path prefix with slash", "/modules/", "/modules/liveness"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var seen atomic.Bool
			srv := startServer(t, func(w http.ResponseWriter, r *http.Request) {
				seen.Store(true)
				if r.Method != http.MethodPost || r.URL.Path != tc.wantPath ||
					r.Header.Get("Content-Type") != "application/json" ||
					r.Header.Get("x-api-key") != testKey {
					http.Error(w, "bad request line or headers", http.StatusTeapot)
					return
				}
				data, err := io.ReadAll(r.Body)
				if err != nil || int64(len(data)) != r.ContentLength {
					http.Error(w, "length mismatch", http.StatusTeapot)
					return
				}
				var body map[string]string
				if err := json.Unmarshal(data, &body); err != nil || len(body) != 1 ||
					body["faceImage"] != base64.StdEncoding.EncodeToString(img) {
					http.Error(w, "body mismatch: "+string(data), http.StatusTeapot)
					return
				}
				_, _ = io.WriteString(w, `{"apiType":"id_live_face","result":{"liveness_score":95},"transactionId":"e0nvom3caiis7"}`)
			})
			res, err := newClient(t, srv.URL+tc.base, 5*time.Second).Verify(t.Context(), img)
			require.NoError(t, err)
			require.True(t, seen.Load())
			require.Equal(t, &liveness.Result{Score: 95, TransactionID: "e0nvom3caiis7", APIType: "id_live_face", HTTPStatus: 200}, res)
		})
	}
}

func TestVerifyClassification(t *testing.T) {
	t.Parallel()
	const ok = `{"apiType":"id_live_face","result":{"liveness_score":42.17},"transactionId":"tx1"}`
	retryDate := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)

	for _, tc := range []struct {
		name      string
		handler   http.HandlerFunc
		wantKind  liveness.Kind // 0: success
		wantScore float64
		status    int
		code      int
		txID      string
		retry     [2]time.Duration // inclusive bounds
	}{
		{name: "200 ok", handler: reply(200, ok), wantScore: 42.17, status: 200},
		{name: "200 score 0", handler: reply(200, `{"result":{"liveness_score":0},"transactionId":"t"}`), wantScore: 0, status: 200},
		{name: "200 score 100", handler: reply(200, `{"result":{"liveness_score":100},"transactionId":"t"}`), wantScore: 100, status: 200},
		{name: "200 bad JSON", handler: reply(200, `{"apiType":`), wantKind: liveness.Transient, status: 200},
		{name: "200 truncated", handler: reply(200, ok[:len(ok)-10]), wantKind: liveness.Transient, status: 200},
		{name: "200 HTML", handler: reply(200, `<html><body>gateway</body></html>`), wantKind: liveness.Transient, status: 200},
		{name: "200 empty", handler: reply(200, ``), wantKind: liveness.Transient, status: 200},
		{name: "200 score 101", handler: reply(200, `{"result":{"liveness_score":101},"transactionId":"t"}`), wantKind: liveness.Transient, status: 200, txID: "t"},
		{name: "200 score -1", handler: reply(200, `{"result":{"liveness_score":-1},"transactionId":"t"}`), wantKind: liveness.Transient, status: 200, txID: "t"},
		{name: "200 score string", handler: reply(200, `{"result":{"liveness_score":"95"},"transactionId":"t"}`), wantKind: liveness.Transient, status: 200, txID: "t"},
		{name: "200 missing transactionId", handler: reply(200, `{"result":{"liveness_score":95}}`), wantKind: liveness.Transient, status: 200},
		{name: "200 missing result", handler: reply(200, `{"apiType":"id_live_face","transactionId":"t"}`), wantKind: liveness.Transient, status: 200, txID: "t"},
		{name: "200 missing score", handler: reply(200, `{"result":{},"transactionId":"t"}`), wantKind: liveness.Transient, status: 200, txID: "t"},
		{name: "400 1016", handler: reply(400, `{"transactionId":"tx16","message":"faceImage is required","errorCode":1016}`),
			wantKind: liveness.Permanent, status: 400, code: liveness.ErrCodeFaceImageRequired, txID: "tx16"},
		{name: "400 1017", handler: reply(400, `{"transactionId":"tx17","message":"Fail to analyze face","errorCode":1017}`),
			wantKind: liveness.Permanent, status: 400, code: liveness.ErrCodeAnalyzeFailed, txID: "tx17"},
		{name: "400 string code", handler: reply(400, `{"transactionId":"t","errorCode":"1017"}`),
			wantKind: liveness.Permanent, status: 400, code: liveness.ErrCodeAnalyzeFailed, txID: "t"},
		{name: "400 no body", handler: reply(400, ``), wantKind: liveness.Permanent, status: 400},
		{name: "413", handler: reply(413, `{"message":"Request Entity Too Large"}`), wantKind: liveness.Permanent, status: 413},
		{name: "404 HTML", handler: reply(404, `<html>Not Found</html>`), wantKind: liveness.Permanent, status: 404},
		{name: "422", handler: reply(422, `{"message":"nope"}`), wantKind: liveness.Permanent, status: 422},
		{name: "401", handler: reply(401, `{"message":"Unauthorized"}`), wantKind: liveness.Auth, status: 401},
		{name: "403", handler: reply(403, `{"message":"Forbidden"}`), wantKind: liveness.Auth, status: 403},
		{name: "429 seconds", handler: reply(429, `{"message":"Too Many Requests"}`, "Retry-After", "7"),
			wantKind: liveness.RateLimited, status: 429, retry: [2]time.Duration{7 * time.Second, 7 * time.Second}},
		{name: "429 HTTP date", handler: reply(429, ``, "Retry-After", retryDate),
			wantKind: liveness.RateLimited, status: 429, retry: [2]time.Duration{25 * time.Second, 30 * time.Second}},
		{name: "429 no header", handler: reply(429, ``), wantKind: liveness.RateLimited, status: 429},
		{name: "500", handler: reply(500, `{"message":"Internal Server Error"}`), wantKind: liveness.Transient, status: 500},
		{name: "502 HTML", handler: reply(502, `<html>Bad Gateway</html>`), wantKind: liveness.Transient, status: 502},
		{name: "503 Retry-After", handler: reply(503, ``, "Retry-After", "3"), wantKind: liveness.Transient, status: 503,
			retry: [2]time.Duration{3 * time.Second, 3 * time.Second}},
		{name: "504", handler: reply(504, ``), wantKind: liveness.Transient, status: 504},
		{name: "501", handler: reply(501, ``), wantKind: liveness.Permanent, status: 501},
		{name: "307 not followed", handler: reply(307, ``, "Location", "http://127.0.0.1:1/steal"), wantKind: liveness.Permanent, status: 307},
		{name: "hangs past client timeout", handler: hang, wantKind: liveness.Transient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, tc.handler)
			res, err := newClient(t, srv.URL, 300*time.Millisecond).Verify(t.Context(), []byte("image"))
			if tc.wantKind == 0 {
				require.NoError(t, err)
				require.Equal(t, tc.wantScore, res.Score)
				require.Equal(t, tc.status, res.HTTPStatus)
				return
			}
			require.Nil(t, res)
			var e *liveness.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.wantKind, e.Kind, "error: %v", err)
			require.Equal(t, tc.wantKind, liveness.KindOf(err))
			require.Equal(t, tc.status, e.HTTPStatus)
			require.Equal(t, tc.code, e.ErrorCode)
			require.Equal(t, tc.txID, e.TransactionID)
			require.GreaterOrEqual(t, e.RetryAfter, tc.retry[0])
			require.LessOrEqual(t, e.RetryAfter, tc.retry[1])
			require.NotEmpty(t, e.Message)
			require.NotContains(t, err.Error(), testKey)
		})
	}
}

func TestVerifyConnectionRefused(t *testing.T) {
	t.Parallel()
	addr := testenv.FreePortT(t).Addr()

	_, err := newClient(t, "http://"+addr, time.Second).Verify(t.Context(), []byte("x"))
	require.Equal(t, liveness.Transient, liveness.KindOf(err), "error: %v", err)
	var e *liveness.Error
	require.ErrorAs(t, err, &e)
	require.Zero(t, e.HTTPStatus)
	require.Error(t, e.Err)
}

func TestVerifyContext(t *testing.T) {
	t.Parallel()
	srv := startServer(t, hang)
	c := newClient(t, srv.URL, 10*time.Second)

	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := c.Verify(ctx, []byte("x"))
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, liveness.Transient, liveness.KindOf(err))
	})
	t.Run("cancelled before the call", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := c.Verify(ctx, []byte("x"))
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, liveness.Transient, liveness.KindOf(err))
	})
	t.Run("deadline", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := c.Verify(ctx, []byte("x"))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, liveness.Transient, liveness.KindOf(err))
	})
}

func TestVerifyDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var leaked atomic.Bool
	target := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-api-key") != "" {
			leaked.Store(true)
		}
		reply(200, `{"result":{"liveness_score":1},"transactionId":"t"}`)(w, r)
	})
	srv := startServer(t, reply(http.StatusPermanentRedirect, ``, "Location", target.URL+"/liveness"))
	_, err := newClient(t, srv.URL, time.Second).Verify(t.Context(), []byte("x"))
	require.Equal(t, liveness.Permanent, liveness.KindOf(err))
	require.False(t, leaked.Load(), "API key sent to the redirect target")
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, url, key string }{
		{"empty URL", "", testKey},
		{"no scheme", "example.com/modules", testKey},
		{"ftp", "ftp://example.com", testKey},
		{"no host", "https://", testKey},
		{"unparseable", "http://exa mple.com/%zz", testKey},
		{"control char", "http://example.com/\x7f", testKey},
		{"query", "https://example.com/?a=b", testKey},
		{"empty key", "https://example.com", ""},
		{"key with newline", "https://example.com", "abc\r\nX-Evil: 1"},
		{"key with spaces", "https://example.com", " abc "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := liveness.New(tc.url, tc.key, nil)
			require.Error(t, err)
			require.Nil(t, c)
		})
	}
	c, err := liveness.New("https://idverify-api.argosidentity.com/modules", testKey, nil)
	require.NoError(t, err)
	require.NotNil(t, c)
}

// TestErrorsNeverContainKey forces every kind of error, including a server
// that echoes the key back, and bad URLs that contain the key.
func TestErrorsNeverContainKey(t *testing.T) {
	t.Parallel()
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			k := r.Header.Get("x-api-key")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, `{"message":"bad key `+k+`","transactionId":"`+k+`","errorCode":1017}`)
		}
	}
	var errs []error
	for _, h := range []http.HandlerFunc{
		echo(400), echo(401), echo(403), echo(404), echo(413), echo(429), echo(500), echo(501), echo(503),
		reply(200, `{"message":"`+testKey+`"`), hang,
	} {
		srv := startServer(t, h)
		_, err := newClient(t, srv.URL, 200*time.Millisecond).Verify(t.Context(), []byte("x"))
		require.Error(t, err)
		errs = append(errs, err)
	}
	_, err := newClient(t, "http://"+testenv.FreePortT(t).Addr(), time.Second).Verify(t.Context(), []byte("x"))
	errs = append(errs, err)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = newClient(t, "http://127.0.0.1:1", time.Second).Verify(ctx, []byte("x"))
	errs = append(errs, err)

	for _, u := range []string{
		"", "ftp://example.com", "https://", "http://exa mple.com/" + testKey + "%zz",
		"http://example.com/\x7f" + testKey, "https://example.com/?key=" + testKey,
		testKey + "://", "://" + testKey, "https://user:" + testKey + "@exa mple.com/",
	} {
		_, err := liveness.New(u, testKey, nil)
		require.Error(t, err, "URL %q", u)
		errs = append(errs, err)
	}
	kinds := map[liveness.Kind]bool{}
	for _, err := range errs {
		kinds[liveness.KindOf(err)] = true
		require.NotContains(t, err.Error(), testKey)
		require.NotContains(t, strings.ToLower(err.Error()), strings.ToLower(testKey))
	}
	for _, k := range []liveness.Kind{liveness.Transient, liveness.RateLimited, liveness.Permanent, liveness.Auth} {
		require.True(t, kinds[k], "kind %v not exercised", k)
	}
}

func TestKind(t *testing.T) {
	t.Parallel()
	require.Equal(t, "transient", liveness.Transient.String())
	require.Equal(t, "rate_limited", liveness.RateLimited.String())
	require.Equal(t, "permanent", liveness.Permanent.String())
	require.Equal(t, "auth", liveness.Auth.String())
	require.Equal(t, "unknown(0)", liveness.Kind(0).String())

	cause := errors.New("boom")
	wrapped := &liveness.Error{Kind: liveness.Auth, HTTPStatus: 401, Message: "Unauthorized", Err: cause}
	require.Equal(t, liveness.Auth, liveness.KindOf(errors.Join(errors.New("other"), wrapped)))
	require.Equal(t, liveness.Kind(0), liveness.KindOf(cause))
	require.Equal(t, liveness.Kind(0), liveness.KindOf(nil))
	require.ErrorIs(t, wrapped, cause)
	require.Equal(t, "liveness: auth: HTTP 401: Unauthorized: boom", wrapped.Error())
	full := &liveness.Error{Kind: liveness.Permanent, HTTPStatus: 400, ErrorCode: 1017, TransactionID: "tx", Message: "Fail to analyze face"}
	require.Equal(t, "liveness: permanent: HTTP 400: Fail to analyze face (errorCode 1017, transactionId tx)", full.Error())
}

func TestNewHTTPClient(t *testing.T) {
	t.Parallel()
	hc := liveness.NewHTTPClient(200, 7*time.Second)
	require.Equal(t, 7*time.Second, hc.Timeout)
	tr, ok := hc.Transport.(*http.Transport)
	require.True(t, ok)
	require.Equal(t, 200, tr.MaxIdleConnsPerHost)
	require.GreaterOrEqual(t, tr.MaxConnsPerHost, 200)
	require.True(t, tr.ForceAttemptHTTP2)
	require.False(t, tr.DisableKeepAlives)
	require.NotZero(t, tr.TLSHandshakeTimeout)
	require.NotZero(t, tr.ResponseHeaderTimeout)
}

// BenchmarkVerify sends a 100 KB image to an in-process server. The body is
// encoded straight into net/http's write buffers; what is left per call is
// net/http's own (request, headers, the 32 KB io.Copy buffer the transport
// uses once its write buffer has been flushed) plus the server's side.
func BenchmarkVerify(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"apiType":"id_live_face","result":{"liveness_score":95},"transactionId":"e0nvom3caiis7"}`)
	}))
	defer srv.Close()
	c, err := liveness.New(srv.URL, testKey, liveness.NewHTTPClient(8, 10*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	img := make([]byte, 100<<10)
	for i := range img {
		img[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(img)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Verify(b.Context(), img); err != nil {
			b.Fatal(err)
		}
	}
}
