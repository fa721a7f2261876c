package fakeapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/gif"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reverify/liveness/fakeapi"
)

const key = "fake-key-123"

var txIDPattern = regexp.MustCompile(`^[0-9a-z]{13}$`)

type bundle struct {
	fake *fakeapi.Server
	srv  *httptest.Server
	hc   *http.Client
}

func setup(t *testing.T, opts fakeapi.Options) *bundle {
	t.Helper()
	fake := fakeapi.New(opts)
	srv := httptest.NewServer(fake)
	tr := &http.Transport{MaxIdleConnsPerHost: 300}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	return &bundle{fake: fake, srv: srv, hc: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

type answer struct {
	status int
	header http.Header
	raw    []byte
	body   struct {
		APIType string `json:"apiType"`
		Result  *struct {
			Score float64 `json:"liveness_score"`
		} `json:"result"`
		TransactionID string `json:"transactionId"`
		Message       string `json:"message"`
		ErrorCode     int    `json:"errorCode"`
	}
	jsonErr error
}

// do sends one request. It may run outside the test goroutine, so it
// reports failures with t.Errorf (status -1) rather than require.
func (b *bundle) do(t *testing.T, method, path, apiKey string, body []byte) answer {
	t.Helper()
	a := answer{status: -1}
	req, err := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Errorf("new request: %v", err)
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	if apiKey != "" {
		req.Header.Set("x-api-key", apiKey)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return a
	}
	defer resp.Body.Close()
	a.status, a.header = resp.StatusCode, resp.Header
	if a.raw, err = io.ReadAll(resp.Body); err != nil {
		t.Errorf("reading answer: %v", err)
	}
	a.jsonErr = json.Unmarshal(a.raw, &a.body)
	return a
}

func (b *bundle) post(t *testing.T, body []byte) answer {
	t.Helper()
	return b.do(t, http.MethodPost, "/liveness", key, body)
}

func faceBody(img []byte) []byte {
	return []byte(`{"faceImage":"` + base64.StdEncoding.EncodeToString(img) + `"}`)
}

func gifImage(t *testing.T, w, h int) []byte {
	t.Helper()
	pal := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.Black, color.White})
	var buf bytes.Buffer
	require.NoError(t, gif.Encode(&buf, pal, nil))
	return buf.Bytes()
}

func TestLiveness(t *testing.T) {
	t.Parallel()
	jpg := fakeapi.GenerateJPEG(1, 128, 96)
	png := fakeapi.GeneratePNG(2, 64, 64)
	gifImg := gifImage(t, 100, 80)
	escaped := bytes.ReplaceAll(faceBody(png), []byte("/"), []byte(`\/`))

	for _, tc := range []struct {
		name      string
		opts      fakeapi.Options
		method    string
		path      string
		key       string
		body      []byte
		status    int
		code      int
		txID      bool    // the answer carries a transaction ID
		charged   bool    // ledger entry
		score     float64 // for 200
		message   string
		scoreFrom []byte
	}{
		{name: "jpeg", body: faceBody(jpg), status: 200, txID: true, charged: true, scoreFrom: jpg},
		{name: "png 64x64", body: faceBody(png), status: 200, txID: true, charged: true, scoreFrom: png},
		{name: "gif", body: faceBody(gifImg), status: 200, txID: true, charged: true, scoreFrom: gifImg},
		{name: "escaped slashes", body: escaped, status: 200, txID: true, charged: true, scoreFrom: png},
		{name: "no key needed", opts: fakeapi.Options{APIKey: ""}, key: "anything", body: faceBody(png), status: 200, txID: true, charged: true, scoreFrom: png},
		{name: "wrong key", key: "nope", body: faceBody(jpg), status: 401, message: "Unauthorized"},
		{name: "missing key", key: "-", body: faceBody(jpg), status: 401, message: "Unauthorized"},
		{name: "forbidden", opts: fakeapi.Options{APIKey: key, Forbidden: true}, body: faceBody(jpg), status: 403, message: "Forbidden"},
		{name: "wrong key beats forbidden", opts: fakeapi.Options{APIKey: key, Forbidden: true}, key: "nope", body: faceBody(jpg), status: 401},
		{name: "GET", method: http.MethodGet, status: 405},
		{name: "other path", path: "/modules/liveness", body: faceBody(jpg), status: 404},
		{name: "sub path", path: "/liveness/x", body: faceBody(jpg), status: 404},
		{name: "too large", opts: fakeapi.Options{APIKey: key, MaxBodyBytes: 1000}, body: faceBody(make([]byte, 1000)), status: 413, txID: true},
		{name: "not JSON", body: []byte(`faceImage=abc`), status: 400, txID: true, charged: true, message: "invalid request body"},
		{name: "truncated JSON", body: faceBody(jpg)[:50], status: 400, txID: true, charged: true, message: "invalid request body"},
		{name: "JSON array", body: []byte(`[]`), status: 400, txID: true, charged: true, message: "invalid request body"},
		{name: "faceImage number", body: []byte(`{"faceImage":5}`), status: 400, txID: true, charged: true, message: "invalid request body"},
		{name: "empty body", body: nil, status: 400, txID: true, charged: true, message: "invalid request body"},
		{name: "faceImage missing", body: []byte(`{"image":"abc"}`), status: 400, code: 1016, txID: true, charged: true, message: "faceImage is required"},
		{name: "faceImage empty", body: []byte(`{"faceImage":""}`), status: 400, code: 1016, txID: true, charged: true},
		{name: "faceImage null", body: []byte(`{"faceImage":null}`), status: 400, code: 1016, txID: true, charged: true},
		{name: "data URI prefix", body: []byte(`{"faceImage":"data:image/jpeg;base64,` + base64.StdEncoding.EncodeToString(jpg) + `"}`),
			status: 400, code: 1017, txID: true, charged: true, message: "Fail to analyze face"},
		{name: "MIME prefix", body: []byte(`{"faceImage":"image/png;base64,` + base64.StdEncoding.EncodeToString(png) + `"}`),
			status: 400, code: 1017, txID: true, charged: true},
		{name: "URL-safe base64", body: []byte(`{"faceImage":"` + base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe}) + `"}`),
			status: 400, code: 1017, txID: true, charged: true},
		{name: "not base64", body: []byte(`{"faceImage":"!!not base64!!"}`), status: 400, code: 1017, txID: true, charged: true},
		{name: "not an image", body: faceBody([]byte("just some text, not a picture")), status: 400, code: 1017, txID: true, charged: true},
		{name: "32x32", body: faceBody(fakeapi.GeneratePNG(3, 32, 32)), status: 400, code: 1017, txID: true, charged: true},
		{name: "63 wide", body: faceBody(fakeapi.GenerateJPEG(3, 63, 200)), status: 400, code: 1017, txID: true, charged: true},
		{name: "63 high", body: faceBody(fakeapi.GenerateJPEG(3, 200, 63)), status: 400, code: 1017, txID: true, charged: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.opts == (fakeapi.Options{}) && tc.name != "no key needed" {
				tc.opts.APIKey = key
			}
			b := setup(t, tc.opts)
			method, path, k := tc.method, tc.path, tc.key
			method = cmp(method, http.MethodPost)
			path = cmp(path, "/liveness")
			k = cmp(k, key)
			if k == "-" {
				k = ""
			}
			a := b.do(t, method, path, k, tc.body)
			require.Equal(t, tc.status, a.status, "body: %s", a.raw)
			require.NoError(t, a.jsonErr, "answers are JSON: %s", a.raw)
			require.Equal(t, "application/json", a.header.Get("Content-Type"))
			require.Equal(t, tc.code, a.body.ErrorCode)
			if tc.message != "" {
				require.Equal(t, tc.message, a.body.Message)
			}
			if tc.txID {
				require.Regexp(t, txIDPattern, a.body.TransactionID)
			} else {
				require.Empty(t, a.body.TransactionID)
			}
			if tc.status == 200 {
				require.Equal(t, "id_live_face", a.body.APIType)
				require.NotNil(t, a.body.Result)
				require.Equal(t, fakeapi.Score(tc.scoreFrom), a.body.Result.Score)
				require.GreaterOrEqual(t, a.body.Result.Score, 0.0)
				require.LessOrEqual(t, a.body.Result.Score, 100.0)
			}
			if tc.status == 405 {
				require.Equal(t, "POST", a.header.Get("Allow"))
			}

			ledger := b.fake.Ledger()
			require.Len(t, ledger, 1)
			c := ledger[0]
			require.Equal(t, tc.status, c.HTTPStatus)
			require.Equal(t, tc.code, c.ErrorCode)
			require.Equal(t, a.body.TransactionID, c.TransactionID)
			require.Equal(t, tc.charged, c.Charged)
			require.WithinDuration(t, time.Now(), c.At, 5*time.Second)
			if tc.status == 200 {
				require.Equal(t, a.body.Result.Score, c.Score)
				require.Len(t, c.ImageSHA256, 64)
			}
			st := b.fake.Stats()
			require.Equal(t, 1, st.Calls)
			require.Equal(t, map[int]int{tc.status: 1}, st.ByStatus)
			require.Equal(t, map[bool]int{true: 1, false: 0}[tc.status == 200], st.Scored)
		})
	}
}

func cmp(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func TestFaultKnobs(t *testing.T) {
	t.Parallel()
	img := faceBody(fakeapi.GenerateJPEG(7, 100, 100))

	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeapi.Options{APIKey: key, ErrorRate: 1, Seed: 1})
		statuses, html, js := map[int]bool{}, 0, 0
		for range 40 {
			a := b.post(t, img)
			statuses[a.status] = true
			require.Contains(t, []int{500, 502, 503}, a.status)
			if strings.HasPrefix(a.header.Get("Content-Type"), "text/html") {
				html++
				require.Contains(t, string(a.raw), "<html>")
			} else {
				js++
				require.NoError(t, a.jsonErr)
				require.Empty(t, a.body.TransactionID)
			}
		}
		require.Len(t, statuses, 3)
		require.NotZero(t, html)
		require.NotZero(t, js)
		for _, c := range b.fake.Ledger() {
			require.False(t, c.Charged)
			require.Empty(t, c.TransactionID)
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			retryAfter time.Duration
			want       string
		}{{1500 * time.Millisecond, "2"}, {0, "1"}, {7 * time.Second, "7"}} {
			b := setup(t, fakeapi.Options{APIKey: key, RateLimitRate: 1, RetryAfter: tc.retryAfter})
			a := b.post(t, img)
			require.Equal(t, 429, a.status)
			require.Equal(t, tc.want, a.header.Get("Retry-After"))
			require.Empty(t, a.body.TransactionID)
			require.False(t, b.fake.Ledger()[0].Charged)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeapi.Options{APIKey: key, MalformedRate: 1})
		for range 10 {
			a := b.post(t, img)
			require.Equal(t, 200, a.status)
			require.Error(t, a.jsonErr, "body %s", a.raw)
		}
		for _, c := range b.fake.Ledger() {
			require.True(t, c.Charged)
			require.Regexp(t, txIDPattern, c.TransactionID)
		}
		require.Zero(t, b.fake.Stats().Scored)
	})
	t.Run("slow", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeapi.Options{APIKey: key, SlowRate: 1, SlowLatency: 2 * time.Second})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.srv.URL+"/liveness", bytes.NewReader(img))
		require.NoError(t, err)
		req.Header.Set("x-api-key", key)
		start := time.Now()
		_, err = b.hc.Do(req)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		// The fake stops waiting when the client goes away, and still records
		// (and bills) the answer, as the real API would.
		require.Eventually(t, func() bool { return len(b.fake.Ledger()) == 1 }, time.Second, 5*time.Millisecond)
		require.Less(t, time.Since(start), time.Second)
		c := b.fake.Ledger()[0]
		require.Equal(t, 200, c.HTTPStatus)
		require.True(t, c.Charged)
	})
	t.Run("seeded rates are deterministic", func(t *testing.T) {
		t.Parallel()
		opts := fakeapi.Options{APIKey: key, ErrorRate: 0.3, RateLimitRate: 0.2, MalformedRate: 0.1, Seed: 42}
		run := func() []int {
			b := setup(t, opts)
			var out []int
			for range 60 {
				out = append(out, b.post(t, img).status)
			}
			return out
		}
		first, second := run(), run()
		require.Equal(t, first, second)
		counts := map[int]int{}
		for _, s := range first {
			counts[s/100*100]++
		}
		require.NotZero(t, counts[500])
		require.NotZero(t, counts[400]) // 429s
		require.NotZero(t, counts[200])
	})
}

func TestScores(t *testing.T) {
	t.Parallel()
	b := setup(t, fakeapi.Options{APIKey: key})
	img := fakeapi.GenerateJPEG(11, 120, 160)
	first := b.post(t, faceBody(img))
	again := b.post(t, faceBody(img))
	require.Equal(t, first.body.Result.Score, again.body.Result.Score)
	require.NotEqual(t, first.body.TransactionID, again.body.TransactionID)

	seen := map[float64]bool{}
	low := 0
	for seed := range int64(40) {
		a := b.post(t, faceBody(fakeapi.GeneratePNG(seed, 80, 80)))
		require.Equal(t, 200, a.status)
		s := a.body.Result.Score
		require.Equal(t, s, float64(int(s*100+0.5))/100, "two decimals")
		seen[s] = true
		if s < 50 {
			low++
		}
	}
	require.GreaterOrEqual(t, len(seen), 39, "different images score differently")
	require.Positive(t, low, "some scores fall below 50")
	require.Less(t, low, 40, "not all scores fall below 50")
}

func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, fakeapi.Options{APIKey: key, Latency: 20 * time.Millisecond})
	body := faceBody(fakeapi.GenerateJPEG(5, 96, 96))
	const n = 200
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a := b.post(t, body)
			if a.status == 200 {
				ids[i] = a.body.TransactionID
			}
		})
	}
	wg.Wait()
	unique := map[string]bool{}
	for _, id := range ids {
		require.Regexp(t, txIDPattern, id)
		unique[id] = true
	}
	require.Len(t, unique, n)
	st := b.fake.Stats()
	require.Equal(t, n, st.Calls)
	require.Equal(t, n, st.Scored)
	require.Equal(t, map[int]int{200: n}, st.ByStatus)
	require.Zero(t, st.InFlight)
	require.Greater(t, st.MaxInFlight, 1)
	require.LessOrEqual(t, st.MaxInFlight, n)
	require.Len(t, b.fake.Ledger(), n)
}

func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	b := setup(t, fakeapi.Options{APIKey: key, Latency: 300 * time.Millisecond})
	body := faceBody(fakeapi.GeneratePNG(1, 64, 64))
	const n = 10
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { assert.Equal(t, 200, b.post(t, body).status) })
	}
	require.Eventually(t, func() bool { return b.fake.Stats().InFlight == n }, 250*time.Millisecond, time.Millisecond)
	wg.Wait()
	st := b.fake.Stats()
	require.Equal(t, n, st.MaxInFlight)
	require.Zero(t, st.InFlight)

	b.fake.Reset()
	require.Zero(t, b.fake.Stats().MaxInFlight)
	require.Equal(t, 200, b.post(t, body).status)
	require.Equal(t, 1, b.fake.Stats().MaxInFlight)
}

func TestSetOptions(t *testing.T) {
	t.Parallel()
	body := faceBody(fakeapi.GeneratePNG(9, 64, 64))

	t.Run("401 window", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeapi.Options{APIKey: key})
		require.Equal(t, 200, b.post(t, body).status)
		opts := b.fake.Options()
		require.Equal(t, int64(fakeapi.DefaultMaxBodyBytes), opts.MaxBodyBytes)
		b.fake.SetOptions(fakeapi.Options{APIKey: "rotated"})
		require.Equal(t, 401, b.post(t, body).status)
		b.fake.SetOptions(opts)
		require.Equal(t, 200, b.post(t, body).status)
		var statuses []int
		for _, c := range b.fake.Ledger() {
			statuses = append(statuses, c.HTTPStatus)
		}
		require.Equal(t, []int{200, 401, 200}, statuses)
	})
	t.Run("mid-flight", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeapi.Options{APIKey: key, Latency: 200 * time.Millisecond})
		done := make(chan int)
		go func() { done <- b.post(t, body).status }()
		require.Eventually(t, func() bool { return b.fake.Stats().InFlight == 1 }, time.Second, time.Millisecond)
		b.fake.SetOptions(fakeapi.Options{APIKey: key, Forbidden: true})
		require.Equal(t, 403, b.post(t, body).status) // new calls see the new knobs
		require.Equal(t, 200, <-done)                 // the call in flight kept the old ones
	})
	t.Run("concurrent with calls", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeapi.Options{APIKey: key})
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				b.fake.SetOptions(fakeapi.Options{APIKey: key, ErrorRate: float64(i%2) * 0.5, Seed: int64(i)})
				_ = b.fake.Options()
			})
			wg.Go(func() {
				s := b.post(t, body).status
				assert.Contains(t, []int{200, 500, 502, 503}, s)
			})
		}
		wg.Wait()
		require.Equal(t, 50, b.fake.Stats().Calls)
	})
}

func TestControlEndpoints(t *testing.T) {
	t.Parallel()
	b := setup(t, fakeapi.Options{APIKey: key})
	body := faceBody(fakeapi.GenerateJPEG(3, 64, 64))
	require.Equal(t, 200, b.post(t, body).status)
	require.Equal(t, 401, b.do(t, http.MethodPost, "/liveness", "bad", body).status)

	get := func(path string, v any) {
		t.Helper()
		a := b.do(t, http.MethodGet, path, "", nil)
		require.Equal(t, 200, a.status, "%s", a.raw)
		require.NoError(t, json.Unmarshal(a.raw, v), "%s", a.raw)
	}

	var ledger []fakeapi.Call
	get("/_fake/ledger", &ledger)
	require.Equal(t, b.fake.Ledger()[0].TransactionID, ledger[0].TransactionID)
	require.Len(t, ledger, 2)
	require.Equal(t, []int{200, 401}, []int{ledger[0].HTTPStatus, ledger[1].HTTPStatus})
	require.True(t, ledger[0].Charged)

	var st fakeapi.Stats
	get("/_fake/stats", &st)
	require.Equal(t, 2, st.Calls)
	require.Equal(t, 1, st.Scored)
	require.Equal(t, map[int]int{200: 1, 401: 1}, st.ByStatus)

	// Partial update: the key and other knobs are kept.
	a := b.do(t, http.MethodPost, "/_fake/options", "", []byte(`{"forbidden":true,"latency":"5ms","slowLatency":1000000}`))
	require.Equal(t, 200, a.status, "%s", a.raw)
	require.NotContains(t, string(a.raw), key)
	opts := b.fake.Options()
	require.True(t, opts.Forbidden)
	require.Equal(t, key, opts.APIKey)
	require.Equal(t, 5*time.Millisecond, opts.Latency)
	require.Equal(t, time.Millisecond, opts.SlowLatency)
	require.Equal(t, 403, b.post(t, body).status)

	var got map[string]any
	get("/_fake/options", &got)
	require.Equal(t, true, got["forbidden"])
	require.Equal(t, "5ms", got["latency"])
	require.NotContains(t, got, "apiKey")

	a = b.do(t, http.MethodPost, "/_fake/options", "", []byte(`{"forbidden":false,"latency":0}`))
	require.Equal(t, 200, a.status)
	require.Equal(t, 200, b.post(t, body).status)

	require.Equal(t, 400, b.do(t, http.MethodPost, "/_fake/options", "", []byte(`{"latency":"soon"}`)).status)
	require.Equal(t, 400, b.do(t, http.MethodPost, "/_fake/options", "", []byte(`not json`)).status)
	require.False(t, b.fake.Options().Forbidden)

	require.Equal(t, 405, b.do(t, http.MethodPost, "/_fake/ledger", "", nil).status)
	require.Equal(t, 405, b.do(t, http.MethodGet, "/_fake/reset", "", nil).status)
	require.Equal(t, 405, b.do(t, http.MethodDelete, "/_fake/options", "", nil).status)

	require.Equal(t, 200, b.do(t, http.MethodPost, "/_fake/reset", "", nil).status)
	a = b.do(t, http.MethodGet, "/_fake/ledger", "", nil)
	require.JSONEq(t, `[]`, string(a.raw))
	get("/_fake/stats", &st)
	require.Zero(t, st.Calls)
	require.Empty(t, b.fake.Ledger())
}

func TestOptionsJSON(t *testing.T) {
	t.Parallel()
	in := fakeapi.Options{APIKey: "k", Latency: 250 * time.Millisecond, ErrorRate: 0.1, RateLimitRate: 0.2,
		RetryAfter: 3 * time.Second, SlowRate: 0.3, SlowLatency: time.Minute, MalformedRate: 0.4,
		Forbidden: true, MaxBodyBytes: 1234, Seed: 99}
	data, err := json.Marshal(in)
	require.NoError(t, err)
	require.Contains(t, string(data), `"latency":"250ms"`)
	var out fakeapi.Options
	require.NoError(t, json.Unmarshal(data, &out))
	require.Equal(t, in, out)
}

func TestHiddenRateLimit(t *testing.T) {
	t.Parallel()
	body := faceBody(fakeapi.GeneratePNG(5, 64, 64))
	// flood sends from 8 goroutines for d and returns how many calls got 200
	// and 429, and the elapsed time.
	flood := func(t *testing.T, b *bundle, d time.Duration) (ok, limited int, elapsed time.Duration) {
		t.Helper()
		var mu sync.Mutex
		start := time.Now()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for time.Since(start) < d {
					a := b.post(t, body)
					mu.Lock()
					switch a.status {
					case 200:
						ok++
					case 429:
						limited++
						assert.Empty(t, a.header.Get("Retry-After"), "the vendor documents no Retry-After")
					default:
						t.Errorf("status %d", a.status)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return ok, limited, time.Since(start)
	}

	t.Run("flood is cut to the rate", func(t *testing.T) {
		t.Parallel()
		const r = 50.0
		b := setup(t, fakeapi.Options{APIKey: key, HiddenRate: r})
		ok, limited, elapsed := flood(t, b, time.Second)
		require.LessOrEqual(t, float64(ok), r*elapsed.Seconds()+r/5+1)
		require.GreaterOrEqual(t, float64(ok), 0.5*r*elapsed.Seconds(), "the limit lets R calls/s through")
		require.Positive(t, limited)
		require.Equal(t, limited, b.fake.Stats().OverLimit)
		require.Equal(t, limited, b.fake.Stats().ByStatus[429])
	})
	t.Run("paced calls pass", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeapi.Options{APIKey: key, HiddenRate: 40})
		for range 20 {
			require.Equal(t, 200, b.post(t, body).status)
			time.Sleep(50 * time.Millisecond) // 20/s, half the limit
		}
		require.Zero(t, b.fake.Stats().OverLimit)
	})
	t.Run("changed at runtime", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeapi.Options{APIKey: key, HiddenRate: 200})
		a := b.do(t, http.MethodPost, "/_fake/options", "", []byte(`{"hiddenRate":20,"hiddenBurst":1}`))
		require.Equal(t, 200, a.status, string(a.raw))
		require.Equal(t, 20.0, b.fake.Options().HiddenRate)
		ok, _, elapsed := flood(t, b, 500*time.Millisecond)
		require.LessOrEqual(t, float64(ok), 20*elapsed.Seconds()+2)

		b.fake.SetOptions(fakeapi.Options{APIKey: key}) // no limit
		ok, limited, _ := flood(t, b, 200*time.Millisecond)
		require.Positive(t, ok)
		require.Zero(t, limited, "no limit, no 429")
	})
	t.Run("latency grows with load", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeapi.Options{APIKey: key, HiddenRate: 1000, LoadLatency: 2 * time.Second})
		start := time.Now()
		require.Equal(t, 200, b.post(t, body).status)
		light := time.Since(start) // 1 call in the last second: (1/1000)² × 2 s
		require.Less(t, light, 500*time.Millisecond)
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() { b.post(t, body) })
		}
		wg.Wait()
		start = time.Now()
		require.Equal(t, 200, b.post(t, body).status)
		require.Greater(t, time.Since(start), 15*time.Millisecond, "(102/1000)² × 2 s ≈ 20 ms")
	})
}
