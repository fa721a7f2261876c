package ops_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reverify/ops"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// limitsHandler answers 401 without reading the body, as the dashboard
// does to a stranger, except on POST /echo, which reads it.
func limitsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "authentication required", http.StatusUnauthorized)
	})
	return mux
}

func startLimited(t *testing.T, l *ops.Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var hs *ops.Server
	if l == nil {
		hs = ops.Serve(ln, limitsHandler(), slog.New(slog.DiscardHandler))
	} else {
		hs = ops.ServeWith(ln, limitsHandler(), slog.New(slog.DiscardHandler), *l)
	}
	t.Cleanup(func() { _ = hs.Close(t.Context()) })
	return hs.Addr()
}

// closedWithin reports whether the server closes conn within d (after any
// response it sends).
func closedWithin(t *testing.T, conn net.Conn, d time.Duration) bool {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(d)))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}

func dial(t *testing.T, addr, send string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = io.WriteString(conn, send)
	require.NoError(t, err)
	return conn
}

// TestServeHTTPBoundsSlowClients: a client that promises a body and
// never sends it, sends its headers slowly, or keeps a connection idle
// is dropped within the limits, however many connections it opens.
func TestServeHTTPBoundsSlowClients(t *testing.T) {
	t.Parallel()
	l := ops.Limits{ReadHeader: 300 * time.Millisecond, Read: 600 * time.Millisecond, Write: time.Second,
		Idle: 400 * time.Millisecond, MaxHeader: 4 << 10, MaxBody: 1 << 10}
	addr := startLimited(t, &l)

	t.Run("a promised body that never comes", func(t *testing.T) {
		t.Parallel()
		var conns []net.Conn
		for range 50 {
			conns = append(conns, dial(t, addr, "POST /runs HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"))
		}
		for _, c := range conns {
			require.True(t, closedWithin(t, c, 5*time.Second), "the connection is held past the read timeout")
		}
	})
	t.Run("headers that never end", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		require.True(t, closedWithin(t, c, 5*time.Second))
	})
	t.Run("an idle keep-alive", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
		require.True(t, closedWithin(t, c, 5*time.Second), "idle keep-alive never closed")
	})
}

// TestServeHTTPDefaultLimits: the servers the commands start (worker
// metrics, scheduler probes, dashboard) have every timeout set, and cap
// header and body sizes.
func TestServeHTTPDefaultLimits(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := ops.Serve(ln, limitsHandler(), slog.New(slog.DiscardHandler))
	t.Cleanup(func() { _ = hs.Close(t.Context()) })
	l := ops.DefaultLimits()
	for name, d := range map[string]time.Duration{"ReadHeader": l.ReadHeader, "Read": l.Read,
		"Write": l.Write, "Idle": l.Idle} {
		require.Positive(t, d, name)
		require.LessOrEqual(t, d, 2*time.Minute, name)
	}

	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Post("http://"+hs.Addr()+"/echo", "application/octet-stream", strings.NewReader(strings.Repeat("x", 2<<20)))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode, "a 2 MiB body is refused")

	c := dial(t, hs.Addr(), fmt.Sprintf("GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("h", 200<<10)))
	res, err = http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, res.StatusCode, "200 KiB of headers are refused")
}
