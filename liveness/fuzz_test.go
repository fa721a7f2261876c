package liveness_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"reverify/liveness"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzVerifyResponse feeds arbitrary answers to the client: it never panics,
// succeeds only on a well-formed 200, classifies everything else, and never
// echoes the key.
func FuzzVerifyResponse(f *testing.F) {
	const key = "fuzz-secret-key"
	f.Add(200, `{"apiType":"id_live_face","result":{"liveness_score":95},"transactionId":"e0nvom3caiis7"}`, "")
	f.Add(200, `{"result":{"liveness_score":101},"transactionId":"t"}`, "")
	f.Add(200, `{"apiType":"id_live_face","result":{"liveness_`, "")
	f.Add(400, `{"transactionId":"t","message":"Fail to analyze face","errorCode":1017}`, "")
	f.Add(429, `{"message":"slow down"}`, "7")
	f.Add(503, `<html>down</html>`, "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(401, `{"message":"bad key fuzz-secret-key"}`, "")
	f.Fuzz(func(t *testing.T, status int, body, retryAfter string) {
		if status < 100 || status > 999 {
			return
		}
		hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			h := http.Header{"Content-Type": {"application/json"}}
			if retryAfter != "" {
				h.Set("Retry-After", retryAfter)
			}
			return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
		})}
		c, err := liveness.New("http://api.invalid/modules", key, hc)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Verify(context.Background(), []byte{0xFF, 0xD8, 0xFF})
		if err == nil {
			if status/100 != 2 || res.TransactionID == "" || res.Score < 0 || res.Score > 100 {
				t.Fatalf("accepted status %d with %+v", status, res)
			}
			return
		}
		var e *liveness.Error
		if !errors.As(err, &e) || e.Kind == 0 {
			t.Fatalf("unclassified error %v", err)
		}
		if e.RetryAfter < 0 {
			t.Fatalf("negative Retry-After %v", e.RetryAfter)
		}
		if strings.Contains(err.Error(), key) || strings.Contains(e.Message, key) || strings.Contains(e.TransactionID, key) {
			t.Fatalf("key leaked: %v", err)
		}
	})
}
