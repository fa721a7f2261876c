// Package health serves /healthz (the process answers) and /readyz (every
// dependency the process needs answers). Probes carry no credentials, so
// the answers name checks but never their errors, which are logged instead:
// an error can name hosts and users.
package health

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Check is one readiness condition.
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// Handler answers the probes.
type Handler struct {
	checks  []Check
	timeout time.Duration
	log     *slog.Logger
}

// New returns probes over checks; each readiness check gets timeout (2s when 0).
func New(log *slog.Logger, timeout time.Duration, checks ...Check) *Handler {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{checks: checks, timeout: timeout, log: log}
}

// Register adds GET /healthz and GET /readyz to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", h.Healthz)
	mux.HandleFunc("GET /readyz", h.Readyz)
}

// Healthz reports that the process is alive; it checks nothing else, so a
// dependency outage never gets the process restarted.
func (h *Handler) Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// Readyz runs every check at once and answers 200 when all pass, else 503.
func (h *Handler) Readyz(w http.ResponseWriter, r *http.Request) {
	results := h.Run(r.Context())
	status := http.StatusOK
	body := struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}{Status: "ok", Checks: make(map[string]string, len(results))}
	for name, err := range results {
		if err != nil {
			status, body.Status = http.StatusServiceUnavailable, "unavailable"
			body.Checks[name] = "fail"
			h.log.WarnContext(r.Context(), "readiness check failed", "check", name, "err", err)
			continue
		}
		body.Checks[name] = "ok"
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// Run runs every check concurrently and returns each one's error (nil = ok).
func (h *Handler) Run(ctx context.Context) map[string]error {
	out := make(map[string]error, len(h.checks))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range h.checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, h.timeout)
			defer cancel()
			err := c.Func(cctx)
			mu.Lock()
			out[c.Name] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}
