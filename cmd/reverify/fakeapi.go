package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"reverify/liveness/fakeapi"
)

func (a *app) fakeAPICommand() *cobra.Command {
	var addr, certFile, keyFile string
	var o fakeapi.Options
	cmd := &cobra.Command{
		Use:   "fake-api",
		Short: "Serve a FAKE Face Liveness API for development and tests (never for production)",
		Long: `fake-api serves POST /liveness as docs/liveness-api.md describes, with
scores derived from the image bytes and knobs to inject faults. It is a
development and test tool: it verifies nothing. GET /_fake/ledger and
/_fake/stats show what it answered; POST /_fake/options changes the knobs.
The only x-api-key it accepts is the one workers send: REVERIFY_API_KEY or
REVERIFY_API_KEY_FILE (or --api-key), else "fake-key".`,
		Example: `  reverify fake-api --addr 127.0.0.1:8090 --latency 200ms
  reverify fake-api --rate-limit-rate 0.1 --error-rate 0.05 --retry-after 2s
  reverify fake-api --hidden-rate 150 --load-latency 100ms`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.APIKey = "fake-key"
			if a.cfg.APIKey != "" || a.cfg.APIKeyFile != "" {
				key, err := a.cfg.apiKey()
				if err != nil {
					return err
				}
				o.APIKey = key
			}
			if (certFile == "") != (keyFile == "") {
				return usagef("--tls-cert and --tls-key go together")
			}
			var tlsCfg *tls.Config
			if certFile != "" {
				cert, err := tls.LoadX509KeyPair(certFile, keyFile)
				if err != nil {
					return fmt.Errorf("--tls-cert/--tls-key: %w", err)
				}
				tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("--addr: %w", err)
			}
			return a.serveFakeAPI(cmd.Context(), ln, tlsCfg, fakeapi.New(o))
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8090", "listen address")
	f.DurationVar(&o.Latency, "latency", 0, "added to every answer")
	f.Float64Var(&o.ErrorRate, "error-rate", 0, "fraction of calls answered 5xx")
	f.Float64Var(&o.RateLimitRate, "rate-limit-rate", 0, "fraction of calls answered 429")
	f.DurationVar(&o.RetryAfter, "retry-after", time.Second, "Retry-After sent with 429")
	f.Float64Var(&o.SlowRate, "slow-rate", 0, "fraction of calls delayed by --slow-latency")
	f.DurationVar(&o.SlowLatency, "slow-latency", 40*time.Second, "delay of slow calls")
	f.Float64Var(&o.MalformedRate, "malformed-rate", 0, "fraction of calls answered 200 with broken JSON")
	f.BoolVar(&o.Forbidden, "forbidden", false, "answer 403 to every call (IP not allowed)")
	f.Int64Var(&o.Seed, "seed", 1, "seed of the fault injection")
	f.StringVar(&certFile, "tls-cert", "", "serve HTTPS (HTTP/2 and HTTP/1.1) with this PEM certificate and --tls-key, as the real API does")
	f.StringVar(&keyFile, "tls-key", "", "PEM private key of --tls-cert")
	f.Float64Var(&o.HiddenRate, "hidden-rate", 0,
		"undocumented fleet-wide limit in calls/s: beyond it, 429 without Retry-After (0 = none; change it with POST /_fake/options {\"hiddenRate\":75})")
	f.Float64Var(&o.HiddenBurst, "hidden-burst", 0, "calls the hidden limit lets through at once (0 = a fifth of --hidden-rate)")
	f.DurationVar(&o.LoadLatency, "load-latency", 0, "latency added at the hidden rate, in proportion to the square of the load")
	return cmd
}

// serveFakeAPI serves h on ln until ctx ends; with tlsCfg, over TLS,
// offering HTTP/2 as well as HTTP/1.1.
func (a *app) serveFakeAPI(ctx context.Context, ln net.Listener, tlsCfg *tls.Config, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsCfg}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	fmt.Fprintf(a.stderr, "FAKE liveness API (development and tests only) on %s://%s\n", scheme, ln.Addr())
	errc := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
