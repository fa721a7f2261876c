package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
)

// TestFakeAPIServesTLS: with --tls-cert and --tls-key the fake API answers
// over HTTPS, HTTP/2 included as the worker's client asks for it, to
// clients that trust the certificate's authority, and refuses the rest.
func TestFakeAPIServesTLS(t *testing.T) {
	t.Parallel()
	files, err := testenv.WriteTLS(t.TempDir())
	require.NoError(t, err)
	port := testenv.FreePortT(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		_, _, code := cli(t, ctx, "", "fake-api", "--addr", port.Addr(), "--api-key", "tls-key-0123",
			"--tls-cert", files.Cert, "--tls-key", files.Key)
		done <- code
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	pool, err := files.Pool()
	require.NoError(t, err)
	trusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}}
	url := "https://" + port.Addr() + "/liveness"
	call := func(c *http.Client) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"faceImage":"AAAA"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", "tls-key-0123")
		res, err := c.Do(req)
		if err == nil {
			res.Body.Close()
		}
		return res, err
	}
	require.Eventually(t, func() bool { _, err := call(trusting); return err == nil }, 10*time.Second, 20*time.Millisecond)
	res, err := call(trusting)
	require.NoError(t, err)
	require.NotEqual(t, http.StatusUnauthorized, res.StatusCode)
	require.Equal(t, 2, res.ProtoMajor, "HTTP/2 is offered")

	_, err = call(&http.Client{Timeout: 5 * time.Second})
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown)
}

// TestFakeAPITLSFlagsGoTogether: a certificate without its key, or the
// other way round, is a usage error.
func TestFakeAPITLSFlagsGoTogether(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--tls-cert", "c.pem"}, {"--tls-key", "k.pem"}} {
		_, stderr, code := cli(t, context.Background(), "", append([]string{"fake-api", "--addr", "127.0.0.1:0"}, args...)...)
		require.Equal(t, exitUsage, code, "%v", args)
		require.Contains(t, stderr, "--tls-cert and --tls-key", "%v", args)
	}
}
