package testenv

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// HTTPGet fetches url without following redirects and returns the status
// and body; a failure to fetch fails t.
func HTTPGet(t testing.TB, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("testenv: GET %s: %v", url, err)
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("testenv: GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("testenv: GET %s: %v", url, err)
	}
	return res.StatusCode, string(b)
}
