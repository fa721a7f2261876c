package dashboard

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"regexp"
	"reverify"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
)

// MonitorOptions configure the embedded asynqmon.
type MonitorOptions struct {
	ReadOnly       bool
	MaskKeys       bool
	PrometheusAddr string // asynqmon draws queue charts from this Prometheus when set
}

// MonitorPath is where asynqmon is served.
const MonitorPath = "/monitoring"

// NewMonitor returns asynqmon for redis under MonitorPath. Close it to
// release its Redis connections.
func NewMonitor(redis asynq.RedisConnOpt, o MonitorOptions) *asynqmon.HTTPHandler {
	opts := asynqmon.Options{
		RootPath:          MonitorPath,
		RedisConnOpt:      redis,
		ReadOnly:          o.ReadOnly,
		PrometheusAddress: o.PrometheusAddr,
	}
	if o.MaskKeys {
		opts.PayloadFormatter = asynqmon.PayloadFormatterFunc(MaskPayload)
		opts.ResultFormatter = asynqmon.ResultFormatterFunc(MaskResult)
	}
	return asynqmon.New(opts)
}

// auditedMonitor records every asynqmon write (a task deleted, archived,
// run or cancelled, a queue paused or removed) in the audit log before
// it is carried out; one that cannot be recorded is refused.
func (s *Server) auditedMonitor(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		path, runID := monitorAuditPath(strings.TrimPrefix(r.URL.EscapedPath(), MonitorPath))
		detail := map[string]any{"method": r.Method, "path": path}
		if err := s.ledger.Audit(r.Context(), s.actor(r), reverify.AuditMonitorWrite, runID, nil, detail); err != nil {
			s.log.ErrorContext(r.Context(), "asynqmon write refused: the audit log is unavailable",
				"method", r.Method, "path", path, "err", err)
			http.Error(w, "the change was not made: it could not be recorded in the audit log", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// An asynqmon API path: /api/queues/{qname}[/groups/{gname}][/{state}_tasks[:verb]][/{task_id}[:verb]].
var (
	monitorNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)
	monitorListRE = regexp.MustCompile(`^[a-z]+_tasks(:[a-z_]+)?$`)
	monitorVerbRE = regexp.MustCompile(`^(.*?)(:(?:run|archive|cancel|pause|resume))?$`)
	// reverify's task IDs (tasks.VerifyPayload.TaskID, tasks.NewPlanTask):
	// the run, then the object as a hash and its dispatch sequence.
	monitorTaskRE = regexp.MustCompile(`^(verify|plan):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(:[A-Za-z0-9_-]{24}(:[0-9]+)?)?$`)
)

// monitorAuditPath returns the asynqmon path to record, and the run its
// task belongs to, if any. Queue and group names and reverify's task IDs
// are kept; anything else is replaced by its hash, so that no object key
// (in a task ID some other producer chose, say) reaches the audit log.
func monitorAuditPath(p string) (path, runID string) {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	hashed := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "sha256:" + hex.EncodeToString(sum[:8])
	}
	if len(segs) < 3 || segs[0] != "api" || segs[1] != "queues" {
		return hashed(p), ""
	}
	out := []string{"", "api", "queues"}
	name := func(s string) string {
		m := monitorVerbRE.FindStringSubmatch(s)
		if monitorNameRE.MatchString(m[1]) {
			return s
		}
		return hashed(m[1]) + m[2]
	}
	rest := segs[2:]
	out = append(out, name(rest[0]))
	rest = rest[1:]
	if len(rest) >= 2 && rest[0] == "groups" {
		out = append(out, "groups", name(rest[1]))
		rest = rest[2:]
	}
	if len(rest) > 0 {
		if monitorListRE.MatchString(rest[0]) {
			out = append(out, rest[0])
		} else {
			out = append(out, hashed(rest[0]))
		}
		rest = rest[1:]
	}
	if len(rest) > 0 {
		m := monitorVerbRE.FindStringSubmatch(rest[0])
		if t := monitorTaskRE.FindStringSubmatch(m[1]); t != nil {
			out = append(out, rest[0])
			runID = t[2]
		} else {
			out = append(out, hashed(m[1])+m[2])
		}
		rest = rest[1:]
	}
	for _, r := range rest {
		out = append(out, hashed(r))
	}
	return strings.Join(out, "/"), runID
}
