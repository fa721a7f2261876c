package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"reverify"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"reverify/storage/postgres"
)

// Ledger is what the pages read and the review form writes; the ledger,
// *postgres.Store, has it. A run or object that does not exist is an error
// wrapping postgres.ErrNotFound.
type Ledger interface {
	RunsWithCounts(ctx context.Context, f postgres.RunFilter) ([]postgres.RunCounts, error)
	RunWithCounts(ctx context.Context, id string) (postgres.RunCounts, error)
	ScoreHistogram(ctx context.Context, runID string) ([10]int64, error)
	Failures(ctx context.Context, runID string, limit int) ([]postgres.ReviewItem, error)
	ReviewQueuePage(ctx context.Context, q postgres.QueueQuery) (postgres.QueuePage, error)
	Item(ctx context.Context, runID string, obj reverify.ObjectRef) (postgres.ReviewItem, []postgres.Review, error)
	ObjectHistory(ctx context.Context, obj reverify.ObjectRef, limit int) ([]postgres.ObjectRun, error)
	// Decide returns postgres.ErrClaimed when another reviewer holds the
	// object and postgres.ErrSecondReviewer when a reviewer would confirm
	// their own decision.
	Decide(ctx context.Context, r postgres.Review) (postgres.Review, error)
	ClaimNext(ctx context.Context, q postgres.ClaimQuery) (postgres.Claim, bool, error)
	CurrentClaim(ctx context.Context, q postgres.ClaimQuery) (postgres.Claim, bool, error)
	RenewClaim(ctx context.Context, runID string, obj reverify.ObjectRef, reviewer string, ttl time.Duration) (time.Time, error)
	ReleaseClaim(ctx context.Context, obj reverify.ObjectRef, reviewer string) error
	Audit(ctx context.Context, a reverify.Actor, action reverify.AuditAction, runID string, obj *reverify.ObjectRef, detail map[string]any) error
}

// Images opens stored images. Errors wrap ErrImageNotFound for missing objects.
type Images interface {
	Open(ctx context.Context, bucket, key, version string) (io.ReadCloser, int64, error)
}

// Forecaster tells the fleet's rate and a run's forecast for the run
// page; cmd/reverify's, over Redis and the ledger, is the one in use.
type Forecaster interface {
	RunForecast(ctx context.Context, runID string) (RunForecast, error)
}

// RunForecast is what the run page shows of the fleet and a run's
// forecast, each as a sentence ("" when not known).
type RunForecast struct {
	FleetRate string // the fleet's API rate now and why
	Schedule  string // the fleet's rate schedule ("": none)
	ETA       string // the time left at the run's share of the fleet
	Left      string // the paid calls left and their cost
	Spent     string // what the run's billable answers cost so far
}

// Config tunes the dashboard.
type Config struct {
	Auth     Auth
	ReadOnly bool // no writes for anyone: no review decisions (and asynqmon read-only, see MonitorOptions)
	// ViewersSeeImages lets the viewer role see images; otherwise images
	// need a reviewer.
	ViewersSeeImages bool
	MaskKeys         bool    // show object keys as hashes in lists
	ReviewThreshold  float64 // scores under this are queued for review; default 50
	// RescoreDelta: an object decided before (same ETag) is back in the
	// queue only when its score moved by more than this (0: any move).
	RescoreDelta  float64
	FourEyes      bool          // a suspected spoof needs a second, different reviewer
	ClaimTTL      time.Duration // how long a reviewer holds an item; default 10 minutes
	QueuePage     int           // rows per page of the review queue; default 50
	MaxImageBytes int64         // larger objects are not streamed; default 15 MiB
	Forecaster    Forecaster    // nil: the run page shows no rate, ETA or spend
	Logger        *slog.Logger
}

// Server is the dashboard's HTTP handler.
type Server struct {
	ledger  Ledger
	images  Images
	monitor http.Handler
	probes  func(*http.ServeMux)
	cfg     Config
	auth    *authenticator
	log     *slog.Logger
	pages   *pages
	refs    objRefs
	handler http.Handler
}

// New builds the dashboard. monitor (asynqmon, see NewMonitor) may be nil;
// probes registers unauthenticated /healthz and /readyz and may be nil.
func New(ledger Ledger, images Images, monitor http.Handler, probes func(*http.ServeMux), cfg Config) (*Server, error) {
	if err := cfg.Auth.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReviewThreshold <= 0 {
		cfg.ReviewThreshold = 50
	}
	if cfg.ClaimTTL <= 0 {
		cfg.ClaimTTL = 10 * time.Minute
	}
	if cfg.QueuePage <= 0 {
		cfg.QueuePage = 50
	}
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = 15 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	refs, err := newObjRefs(cfg.MaskKeys)
	if err != nil {
		return nil, err
	}
	s := &Server{ledger: ledger, images: images, monitor: monitor, probes: probes, cfg: cfg,
		auth: newAuthenticator(cfg.Auth), log: cfg.Logger, refs: refs}
	s.pages = newPages(cfg, refs)
	s.handler = s.routes()
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// route is one page or action and the least role that may use it.
type route struct {
	pattern string
	need    reverify.Role
	handler http.Handler
}

// routeTable lists everything the dashboard serves behind authentication,
// with the role each needs: a new route is gated by adding it here. The
// read-only switch (Config.ReadOnly) refuses every write on top of this.
func (s *Server) routeTable() []route {
	images := s.imageRole()
	rs := []route{
		{"GET /{$}", reverify.RoleViewer, http.HandlerFunc(s.runsPage)},
		{"GET /runs/{id}", reverify.RoleViewer, http.HandlerFunc(s.runPage)},
		{"GET /runs/{id}/object", reverify.RoleViewer, http.HandlerFunc(s.objectPage)},
		{"GET /runs/{id}/image", images, http.HandlerFunc(s.image)},
		{"POST /runs/{id}/reviews", reverify.RoleReviewer, http.HandlerFunc(s.recordReview)},
		{"GET /runs/{id}/review", reverify.RoleReviewer, http.HandlerFunc(s.workspace)},
		{"POST /runs/{id}/claims", reverify.RoleReviewer, http.HandlerFunc(s.claimNext)},
		{"POST /runs/{id}/claims/renew", reverify.RoleReviewer, http.HandlerFunc(s.renewClaim)},
		{"POST /runs/{id}/claims/release", reverify.RoleReviewer, http.HandlerFunc(s.releaseClaim)},
		{"GET " + WorkspaceScriptPath, reverify.RoleViewer, http.HandlerFunc(s.workspaceScript)},
	}
	if s.monitor != nil {
		rs = append(rs,
			route{"GET " + MonitorPath, reverify.RoleViewer, http.RedirectHandler(MonitorPath+"/", http.StatusFound)},
			// Reading asynqmon (GET and HEAD) is a page like the others;
			// any other method changes queues or tasks, and is audited.
			route{"GET " + MonitorPath + "/", reverify.RoleViewer, s.monitor},
			route{MonitorPath + "/", reverify.RoleOperator, s.auditedMonitor(s.monitor)},
		)
	}
	return rs
}

// imageRole is the least role that may see images.
func (s *Server) imageRole() reverify.Role {
	if s.cfg.ViewersSeeImages {
		return reverify.RoleViewer
	}
	return reverify.RoleReviewer
}

func (s *Server) routes() http.Handler {
	app := http.NewServeMux()
	for _, rt := range s.routeTable() {
		app.Handle(rt.pattern, requireRole(rt.need, rt.handler))
	}
	var h http.Handler = app
	if s.cfg.ReadOnly {
		h = readOnly(h)
	}
	// Basic auth credentials ride along on cross-site requests: refuse
	// unsafe cross-origin ones.
	h = http.NewCrossOriginProtection().Handler(h)
	h = s.auth.middleware(h)

	root := http.NewServeMux()
	if s.probes != nil {
		s.probes(root)
	}
	root.Handle("/", h)
	var top http.Handler = root
	if !s.cfg.Auth.Configured() {
		top = loopbackHostOnly(top)
	}
	return securityHeaders(top)
}

// loopbackHostOnly refuses requests whose Host is not a loopback address
// or localhost. Without credentials the dashboard trusts whoever reaches
// its loopback port; a page on another site could reach it through DNS
// rebinding (its own name resolved to 127.0.0.1), and then its requests
// carry that name as Host, and as Origin, which then matches the Host.
func loopbackHostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLoopbackHost(r.Host) {
			http.Error(w, "without credentials the dashboard answers only to localhost or a loopback address", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "the dashboard is read-only", http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer") // URLs carry object keys
		if !strings.HasPrefix(r.URL.Path, MonitorPath) {
			h.Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'")
		}
		next.ServeHTTP(w, r)
	})
}

// requireRole answers 403 to an identity whose role does not allow need.
func requireRole(need reverify.Role, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := identity(r.Context())
		switch {
		case !id.Role.Valid():
			http.Error(w, fmt.Sprintf("%q has no dashboard role (want one of %s): ask an operator to grant one", id.Name, roleList()),
				http.StatusForbidden)
			return
		case !id.Role.Allows(need):
			http.Error(w, fmt.Sprintf("this needs the %s role; %q is a %s", need, id.Name, id.Role), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type identityKey struct{}

type requestIdentity struct {
	Identity
	from string
}

func withIdentity(ctx context.Context, id Identity, from string) context.Context {
	return context.WithValue(ctx, identityKey{}, requestIdentity{id, from})
}

func identity(ctx context.Context) Identity {
	v, _ := ctx.Value(identityKey{}).(requestIdentity)
	return v.Identity
}

// reviewer is the authenticated name behind ctx: the dashboard's actor in
// reviews and the audit log (never REVERIFY_ACTOR, which is the CLI's).
func reviewer(ctx context.Context) string { return identity(ctx).Name }

// actor is the authenticated person behind r, for the audit log.
func (s *Server) actor(r *http.Request) reverify.Actor {
	v, _ := r.Context().Value(identityKey{}).(requestIdentity)
	return reverify.Actor{Who: v.Name, Source: reverify.AuditFromDashboard, From: v.from}
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// runID returns the run ID of the path, answering 404 when it is no UUID.
func runID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !uuidRE.MatchString(id) {
		http.NotFound(w, r)
		return "", false
	}
	return id, true
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, postgres.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	s.log.ErrorContext(r.Context(), "dashboard request failed", "path", r.URL.Path, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

func (s *Server) runsPage(w http.ResponseWriter, r *http.Request) {
	runs, err := s.ledger.RunsWithCounts(r.Context(), postgres.RunFilter{Limit: 100})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.pages.render(w, r, s.log, "runs", map[string]any{"Runs": runs})
}

func (s *Server) runPage(w http.ResponseWriter, r *http.Request) {
	id, ok := runID(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	run, err := s.ledger.RunWithCounts(ctx, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	hist, err := s.ledger.ScoreHistogram(ctx, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	failures, err := s.ledger.Failures(ctx, id, 100)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	after, ok := s.parseQueueCursor(r.URL.Query().Get("after"))
	if !ok {
		http.Error(w, "bad queue position (after)", http.StatusBadRequest)
		return
	}
	all := r.URL.Query().Get("all") == "1"
	page, err := s.ledger.ReviewQueuePage(ctx, postgres.QueueQuery{RunID: id, Threshold: s.cfg.ReviewThreshold,
		Delta: s.cfg.RescoreDelta, All: all, After: after, Limit: s.cfg.QueuePage})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var fc *RunForecast
	if s.cfg.Forecaster != nil {
		f, err := s.cfg.Forecaster.RunForecast(ctx, id)
		if err != nil {
			// The page is still worth showing without it.
			s.log.WarnContext(ctx, "run forecast failed", "run_id", id, "err", err)
		} else {
			fc = &f
		}
	}
	next := ""
	if c := s.queueCursor(page.Next); c != "" {
		next = queuePageURL(id, c, all)
	}
	s.pages.render(w, r, s.log, "run", map[string]any{
		"Run": run, "Histogram": histogramSVG(hist, s.cfg.ReviewThreshold), "Bands": hist,
		"Failures": failures, "Queue": page.Items, "Threshold": s.cfg.ReviewThreshold,
		"All": all, "NextPage": next, "FirstPage": queuePageURL(id, "", all), "Paged": after != (postgres.QueueCursor{}),
		"Toggle": queuePageURL(id, "", !all), "Forecast": fc,
	})
}

// objectQuery decodes the "o" of a GET's URL. Never r.FormValue: on a
// GET it would parse a multipart body (into temporary files) that no page
// asks for.
func (s *Server) objectQuery(r *http.Request) (bucket, key string, ok bool) {
	return s.refs.decode(r.URL.Query().Get("o"))
}

// requestedItem loads the run's object the request names, answering the
// error itself when there is none.
func (s *Server) requestedItem(w http.ResponseWriter, r *http.Request) (postgres.ReviewItem, []postgres.Review, bool) {
	id, ok := runID(w, r)
	if !ok {
		return postgres.ReviewItem{}, nil, false
	}
	bucket, key, ok := s.objectQuery(r)
	if !ok {
		http.Error(w, "missing or unknown object reference (o)", http.StatusBadRequest)
		return postgres.ReviewItem{}, nil, false
	}
	// Only objects the run recorded: the dashboard is no general S3 reader.
	item, reviews, err := s.ledger.Item(r.Context(), id, reverify.ObjectRef{Bucket: bucket, Key: key})
	if err != nil {
		s.fail(w, r, err)
		return postgres.ReviewItem{}, nil, false
	}
	return item, reviews, true
}

func (s *Server) objectPage(w http.ResponseWriter, r *http.Request) {
	id := identity(r.Context())
	item, reviews, ok := s.requestedItem(w, r)
	if !ok {
		return
	}
	s.pages.render(w, r, s.log, "object", map[string]any{
		"Item": item, "Reviews": reviews, "Decisions": reverify.Decisions(),
		"Saved": r.URL.Query().Get("saved") != "", "Reviewer": reviewer(r.Context()),
		"Role": id.Role, "CanSeeImages": id.Role.Allows(s.imageRole()), "CanDecide": id.Role.Allows(reverify.RoleReviewer),
	})
}

// image streams an object of the run from S3 to the browser: nothing is
// written to disk and nothing may be cached, since faces are personal data.
func (s *Server) image(w http.ResponseWriter, r *http.Request) {
	item, _, ok := s.requestedItem(w, r)
	if !ok {
		return
	}
	body, size, err := s.images.Open(r.Context(), item.Bucket, item.Key, item.Version)
	if errors.Is(err, ErrImageNotFound) {
		http.Error(w, "the image is no longer in storage", http.StatusNotFound)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer body.Close()
	if size > s.cfg.MaxImageBytes {
		http.Error(w, "the image is larger than the display limit", http.StatusRequestEntityTooLarge)
		return
	}
	head := make([]byte, 512)
	n, err := io.ReadFull(body, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		s.fail(w, r, fmt.Errorf("read image: %w", err))
		return
	}
	head = head[:n]
	ctype := http.DetectContentType(head)
	if !strings.HasPrefix(ctype, "image/") {
		http.Error(w, "the object is not an image", http.StatusUnsupportedMediaType)
		return
	}
	// Every image shown is in the audit log; one that cannot be recorded
	// is not shown.
	obj := reverify.ObjectRef{Bucket: item.Bucket, Key: item.Key, Version: item.Version}
	if err := s.ledger.Audit(r.Context(), s.actor(r), reverify.AuditImageView, item.RunID, &obj, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", "inline")
	if size > 0 {
		h.Set("Content-Length", fmt.Sprint(size))
	}
	cw := chunkWriter{w: w, rc: http.NewResponseController(w)}
	if _, err := cw.Write(head); err != nil {
		return
	}
	if _, err := io.Copy(cw, io.LimitReader(body, s.cfg.MaxImageBytes-int64(n))); err != nil {
		s.log.WarnContext(r.Context(), "image stream interrupted", "run_id", item.RunID, "key_hash", KeyHash(item.Bucket, item.Key), "err", err)
	}
}

// imageChunkTimeout bounds the write of each chunk of an image stream. The
// server's write timeout bounds a whole response, which would cut a large
// image on a slow link; a client that stops reading is still dropped.
const imageChunkTimeout = 30 * time.Second

// chunkWriter moves the connection's write deadline before every write.
type chunkWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (c chunkWriter) Write(p []byte) (int, error) {
	// Fails only where deadlines are not supported (test recorders).
	_ = c.rc.SetWriteDeadline(time.Now().Add(imageChunkTimeout))
	return c.w.Write(p)
}

const maxNote = 2000

func (s *Server) recordReview(w http.ResponseWriter, r *http.Request) {
	id, ok := runID(w, r)
	if !ok {
		return
	}
	// A url-encoded form of at most 64 KiB: ParseForm reads no multipart
	// body.
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	bucket, key, _ := s.refs.decode(r.Form.Get("o"))
	rev := postgres.Review{
		RunID: id, Bucket: bucket, Key: key,
		Decision: reverify.Decision(r.PostForm.Get("decision")), Note: strings.TrimSpace(r.PostForm.Get("note")),
		Reviewer: reviewer(r.Context()), Source: reverify.AuditFromDashboard, From: s.actor(r).From,
	}
	switch {
	case rev.Bucket == "" || rev.Key == "":
		http.Error(w, "missing or unknown object reference (o)", http.StatusBadRequest)
		return
	case !slices.Contains(reverify.Decisions(), rev.Decision):
		http.Error(w, "choose a decision", http.StatusBadRequest)
		return
	case !utf8.ValidString(rev.Note) || len(rev.Note) > maxNote:
		http.Error(w, fmt.Sprintf("the note must be UTF-8 text of at most %d bytes", maxNote), http.StatusBadRequest)
		return
	}
	rev.FourEyes = s.cfg.FourEyes
	stored, err := s.ledger.Decide(r.Context(), rev)
	switch {
	case errors.Is(err, postgres.ErrClaimed):
		http.Error(w, "another reviewer is reviewing this object; take the next item", http.StatusConflict)
		return
	case errors.Is(err, postgres.ErrSecondReviewer):
		http.Error(w, "this decision awaits a second review by another reviewer (four-eyes rule)", http.StatusConflict)
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	s.log.InfoContext(r.Context(), "review recorded", "run_id", id, "key_hash", KeyHash(rev.Bucket, rev.Key),
		"decision", rev.Decision, "state", stored.State, "reviewer", rev.Reviewer)
	if r.PostForm.Get("next") == "1" {
		// The workspace: the next item is claimed and shown at once.
		if _, _, err := s.ledger.ClaimNext(r.Context(), s.claimQuery(id, rev.Reviewer)); err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/runs/"+id+"/review?notice="+url.QueryEscape(string(stored.State)), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, s.refs.url(id, "object", rev.Bucket, rev.Key)+"&saved=1", http.StatusSeeOther)
}
