// Package ops is a process's HTTP face: a server hardened against slow and
// large requests, readiness checks of the dependencies every long-running
// command has, and the worker's /metrics, /healthz and /readyz.
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server serves one handler on a listener already bound, so a busy port
// fails the command before it starts work.
type Server struct {
	srv  *http.Server
	addr string
	errc chan error
}

// Limits bound what one client can hold of a server: slow or idle
// connections and large requests (the servers face unauthenticated
// clients: probes, scrapes, the dashboard's login).
type Limits struct {
	ReadHeader time.Duration // the request line and headers
	Read       time.Duration // the whole request, body included
	// Write bounds a response; a long stream (the dashboard's images)
	// extends it chunk by chunk with http.ResponseController.
	Write     time.Duration
	Idle      time.Duration // a keep-alive connection between requests
	MaxHeader int           // bytes of request headers
	MaxBody   int64         // bytes of a request body
}

// DefaultLimits suit /metrics, probes, the dashboard's pages and
// forms, and asynqmon's API (whose batch requests carry task IDs).
func DefaultLimits() Limits {
	return Limits{
		ReadHeader: 10 * time.Second,
		Read:       30 * time.Second,
		Write:      60 * time.Second,
		Idle:       60 * time.Second,
		MaxHeader:  64 << 10,
		MaxBody:    1 << 20,
	}
}

// Serve serves h on ln within DefaultLimits.
func Serve(ln net.Listener, h http.Handler, log *slog.Logger) *Server {
	return ServeWith(ln, h, log, DefaultLimits())
}

// ServeWith serves h on ln within l.
func ServeWith(ln net.Listener, h http.Handler, log *slog.Logger, l Limits) *Server {
	s := &Server{
		srv: &http.Server{
			Handler:           http.MaxBytesHandler(h, l.MaxBody),
			ReadHeaderTimeout: l.ReadHeader,
			ReadTimeout:       l.Read,
			WriteTimeout:      l.Write,
			IdleTimeout:       l.Idle,
			MaxHeaderBytes:    l.MaxHeader,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		addr: ln.Addr().String(),
		errc: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.errc <- err
	}()
	return s
}

// Addr is where the server listens.
func (s *Server) Addr() string { return s.addr }

// Done yields the error the server stopped with, once it stops on its own.
func (s *Server) Done() <-chan error { return s.errc }

// Close stops accepting connections and waits up to 5s for open requests.
func (s *Server) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stop http server: %w", err)
	}
	return <-s.errc
}
