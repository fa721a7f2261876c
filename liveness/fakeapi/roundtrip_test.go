package fakeapi_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify/liveness"
	"reverify/liveness/fakeapi"
)

// TestClientRoundTrip runs the real client against the fake for every
// outcome Kind.
func TestClientRoundTrip(t *testing.T) {
	t.Parallel()
	face := fakeapi.GenerateJPEG(21, 160, 200)
	for _, tc := range []struct {
		name    string
		opts    fakeapi.Options
		key     string
		image   []byte
		kind    liveness.Kind // 0: success
		status  int
		code    int
		retry   time.Duration
		charged bool
	}{
		{name: "scored", image: face, status: 200, charged: true},
		{name: "5xx", opts: fakeapi.Options{ErrorRate: 1}, image: face, kind: liveness.Transient},
		{name: "malformed 200", opts: fakeapi.Options{MalformedRate: 1}, image: face, kind: liveness.Transient, status: 200, charged: true},
		{name: "timeout", opts: fakeapi.Options{SlowRate: 1, SlowLatency: 3 * time.Second}, image: face, kind: liveness.Transient, charged: true},
		{name: "429", opts: fakeapi.Options{RateLimitRate: 1, RetryAfter: 2 * time.Second}, image: face,
			kind: liveness.RateLimited, status: 429, retry: 2 * time.Second},
		{name: "1016 empty image", image: []byte{}, kind: liveness.Permanent, status: 400, code: liveness.ErrCodeFaceImageRequired, charged: true},
		{name: "1017 tiny face", image: fakeapi.GeneratePNG(1, 40, 40), kind: liveness.Permanent, status: 400, code: liveness.ErrCodeAnalyzeFailed, charged: true},
		{name: "1017 not an image", image: []byte("%PDF-1.7"), kind: liveness.Permanent, status: 400, code: liveness.ErrCodeAnalyzeFailed, charged: true},
		{name: "413", opts: fakeapi.Options{MaxBodyBytes: 1024}, image: face, kind: liveness.Permanent, status: 413},
		{name: "401", key: "wrong-key", image: face, kind: liveness.Auth, status: 401},
		{name: "403", opts: fakeapi.Options{Forbidden: true}, image: face, kind: liveness.Auth, status: 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.opts.APIKey = key
			fake := fakeapi.New(tc.opts)
			srv := httptest.NewServer(fake)
			t.Cleanup(srv.Close)
			k := cmp(tc.key, key)
			c, err := liveness.New(srv.URL+"/", k, liveness.NewHTTPClient(4, 300*time.Millisecond))
			require.NoError(t, err)

			res, err := c.Verify(t.Context(), tc.image)
			require.Eventually(t, func() bool { return len(fake.Ledger()) == 1 }, 2*time.Second, 5*time.Millisecond)
			call := fake.Ledger()[0]
			require.Equal(t, tc.charged, call.Charged)
			if tc.kind == 0 {
				require.NoError(t, err)
				require.Equal(t, fakeapi.Score(tc.image), res.Score)
				require.Equal(t, call.TransactionID, res.TransactionID)
				require.Equal(t, call.Score, res.Score)
				require.Equal(t, fakeapi.APIType, res.APIType)
				require.Equal(t, 200, res.HTTPStatus)
				return
			}
			require.Nil(t, res)
			require.Equal(t, tc.kind, liveness.KindOf(err), "error: %v", err)
			require.NotContains(t, err.Error(), k)
			e, ok := err.(*liveness.Error)
			require.True(t, ok)
			if tc.status != 0 {
				require.Equal(t, tc.status, e.HTTPStatus)
			} else if tc.name == "5xx" {
				require.Contains(t, []int{500, 502, 503}, e.HTTPStatus)
			}
			require.Equal(t, tc.code, e.ErrorCode)
			require.Equal(t, tc.retry, e.RetryAfter)
			if e.HTTPStatus == 400 || e.HTTPStatus == 413 {
				require.Equal(t, call.TransactionID, e.TransactionID)
			}
		})
	}
}
