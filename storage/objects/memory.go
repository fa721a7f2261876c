package objects

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// MemoryServer is an in-process S3-compatible server (gofakes3) keeping
// everything in memory, for the demo and for tests that need no separate
// process. It accepts any credentials.
type MemoryServer struct {
	// URL is the server's base URL, e.g. "http://127.0.0.1:41234".
	URL string

	backend *s3mem.Backend
	srv     *http.Server
	done    chan error
}

// NewMemoryServer starts a MemoryServer on a free port of 127.0.0.1.
func NewMemoryServer() (*MemoryServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("memory s3: listen: %w", err)
	}
	backend := s3mem.New()
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	m := &MemoryServer{
		URL:     "http://" + ln.Addr().String(),
		backend: backend,
		srv: &http.Server{
			Handler:           faker.Server(),
			ReadHeaderTimeout: 10 * time.Second,
		},
		done: make(chan error, 1),
	}
	go func() {
		err := m.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		m.done <- err
	}()
	return m, nil
}

// Config returns a Config that reaches this server.
func (m *MemoryServer) Config() Config {
	return Config{
		Endpoint:  m.URL,
		Region:    DefaultRegion,
		PathStyle: true,
		AccessKey: "reverify",
		SecretKey: "reverify",
	}
}

// CreateBucket creates bucket directly in the backend (no request needed).
func (m *MemoryServer) CreateBucket(bucket string) error {
	if err := m.backend.CreateBucket(bucket); err != nil {
		return fmt.Errorf("memory s3: create bucket %s: %w", bucket, err)
	}
	return nil
}

// Close stops the server, waiting up to five seconds for requests in flight.
func (m *MemoryServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil {
		_ = m.srv.Close()
		return fmt.Errorf("memory s3: shutdown: %w", err)
	}
	return <-m.done
}
