package objects_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify/storage/objects"
)

// The object every case below fails on: its key names a person.
const (
	privBucket = "kyc"
	privKey    = "users/john-smith-1977/selfie ü+1.jpg"
	privPrefix = "users/john-smith-1977/"
	privName   = "john-smith" // in every spelling of the key: raw, escaped, quoted
)

// TestErrorsNameObjectsByKeyHash: whatever fails — S3 errors, a server
// that echoes the key in its error document, a broken connection — the
// error text of every operation names the object by its key hash (and its
// bucket) and never spells the key or the prefix, on the direct GET path
// and through the SDK. These errors are what the worker logs, stores in
// verifications.message and hands asynq as a task's error_message.
func TestErrorsNameObjectsByKeyHash(t *testing.T) {
	t.Parallel()
	echo := func(status int, code string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(status)
			if r.Method == http.MethodHead {
				return
			}
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>no luck with %s (%s)</Message><Key>%s</Key><RequestId>r1</RequestId></Error>`,
				code, privKey, r.URL.String(), privKey)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	// A server that drops every connection: the error is net/http's,
	// which quotes the request URL.
	hangUp := func() string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		return "http://" + addr
	}

	servers := map[string]struct {
		endpoint string
		is       error // the sentinel Get's error wraps (nil: transient)
	}{
		"NoSuchKey":     {echo(http.StatusNotFound, "NoSuchKey"), objects.ErrNotFound},
		"AccessDenied":  {echo(http.StatusForbidden, "AccessDenied"), objects.ErrAccessDenied},
		"InternalError": {echo(http.StatusInternalServerError, "InternalError"), nil},
		"hang-up":       {hangUp(), nil},
		"refused":       {refused(), nil},
	}
	for name, srv := range servers {
		for _, sdk := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/sdk=%v", name, sdk), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				store, err := objects.Open(ctx, objects.Config{Endpoint: srv.endpoint, PathStyle: true,
					AccessKey: "AKID", SecretKey: "secret", SDKGet: sdk})
				require.NoError(t, err)
				hash := "key_hash=" + objects.KeyHash(privBucket, privKey)

				var buf bytes.Buffer
				_, err = store.Get(ctx, privBucket, privKey, "v1", 1<<20, &buf)
				requirePrivate(t, err, hash)
				if srv.is != nil {
					require.ErrorIs(t, err, srv.is, "classified as before")
				} else {
					require.True(t, objects.IsRetryable(err), "%v", err)
				}
				_, err = store.Open(ctx, privBucket, privKey)
				requirePrivate(t, err, hash)
				_, err = store.Head(ctx, privBucket, privKey, "")
				requirePrivate(t, err, hash)
				err = store.List(ctx, privBucket, privPrefix, func(objects.Object) error { return nil })
				requirePrivate(t, err, "prefix_hash="+objects.KeyHash(privBucket, privPrefix))
			})
		}
	}
}

// TestSizeErrorsNameObjectsByKeyHash covers the errors the Store makes
// itself: over the limit, a short body, a bad limit.
func TestSizeErrorsNameObjectsByKeyHash(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("versionId") == "short" {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "only a little")
			return
		}
		_, _ = io.WriteString(w, "a body of thirty-two bytes......")
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	store, err := objects.Open(ctx, objects.Config{Endpoint: srv.URL, PathStyle: true, AccessKey: "AKID", SecretKey: "secret"})
	require.NoError(t, err)
	hash := "key_hash=" + objects.KeyHash(privBucket, privKey)
	var buf bytes.Buffer
	_, err = store.Get(ctx, privBucket, privKey, "", 8, &buf)
	require.ErrorIs(t, err, objects.ErrTooLarge)
	requirePrivate(t, err, hash)
	_, err = store.Get(ctx, privBucket, privKey, "short", 1<<20, &buf)
	requirePrivate(t, err, hash)
	_, err = store.Get(ctx, privBucket, privKey, "", 0, &buf)
	requirePrivate(t, err, hash)
}

// TestWrapErrorRedactsSDKText: the helper for S3 calls made outside a
// Store (the dashboard's image stream) redacts and classifies alike.
func TestWrapErrorRedactsSDKText(t *testing.T) {
	t.Parallel()
	u := "http://127.0.0.1:9/kyc/" + url.PathEscape(privKey)
	err := objects.WrapError("get", privBucket, privKey, &url.Error{Op: "Get", URL: u, Err: io.ErrUnexpectedEOF})
	requirePrivate(t, err, "key_hash="+objects.KeyHash(privBucket, privKey))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.NoError(t, objects.WrapError("get", privBucket, privKey, nil))
}

func requirePrivate(t *testing.T, err error, name string) {
	t.Helper()
	require.Error(t, err)
	text := err.Error()
	require.NotContains(t, text, privName, "the error spells the key")
	require.NotContains(t, text, url.PathEscape(privKey))
	require.Contains(t, text, name, "the error names the object by its hash")
	require.Contains(t, text, privBucket)
}
