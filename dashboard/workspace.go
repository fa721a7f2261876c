package dashboard

import (
	_ "embed"
	"errors"
	"net/http"
	"net/url"
	"reverify"
	"strconv"
	"strings"

	"reverify/storage/postgres"
)

// workspaceJS gives the workspace its keyboard shortcuts and keeps the
// reviewer's claim alive while the page is open. It is served from
// /assets/ so the pages' CSP allows no inline script.
//
//go:embed workspace.js
var workspaceJS []byte

// WorkspaceScriptPath is where the workspace's script is served.
const WorkspaceScriptPath = "/assets/workspace.js"

func (s *Server) workspaceScript(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(workspaceJS)
}

func (s *Server) claimQuery(runID, who string) postgres.ClaimQuery {
	return postgres.ClaimQuery{RunID: runID, Reviewer: who, Threshold: s.cfg.ReviewThreshold,
		Delta: s.cfg.RescoreDelta, TTL: s.cfg.ClaimTTL}
}

// workspace shows the item the reviewer holds in the run's queue: the
// image beside its score, the object's history in earlier runs and its
// decisions, and the decision buttons. It claims nothing itself (a GET);
// "next item" and each decision do.
func (s *Server) workspace(w http.ResponseWriter, r *http.Request) {
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
	who := reviewer(ctx)
	data := map[string]any{"Run": run, "Reviewer": who, "FourEyes": s.cfg.FourEyes, "Decisions": reverify.Decisions(),
		"Notice": r.URL.Query().Get("notice"), "RenewEvery": int(s.cfg.ClaimTTL.Seconds() / 3)}
	claim, held, err := s.ledger.CurrentClaim(ctx, s.claimQuery(id, who))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if held {
		obj := reverify.ObjectRef{Bucket: claim.Item.Bucket, Key: claim.Item.Key}
		history, err := s.ledger.ObjectHistory(ctx, obj, 50)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		_, reviews, err := s.ledger.Item(ctx, id, obj)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		data["Claim"], data["History"], data["Reviews"] = claim, history, reviews
	}
	s.pages.render(w, r, s.log, "workspace", data)
}

// claimNext claims the reviewer's next item and shows it in the workspace.
func (s *Server) claimNext(w http.ResponseWriter, r *http.Request) {
	id, ok := runID(w, r)
	if !ok {
		return
	}
	if _, _, err := s.ledger.ClaimNext(r.Context(), s.claimQuery(id, reviewer(r.Context()))); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/runs/"+id+"/review", http.StatusSeeOther)
}

// claimForm reads the object reference of a claim's form.
func (s *Server) claimForm(w http.ResponseWriter, r *http.Request) (string, reverify.ObjectRef, bool) {
	id, ok := runID(w, r)
	if !ok {
		return "", reverify.ObjectRef{}, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return "", reverify.ObjectRef{}, false
	}
	bucket, key, ok := s.refs.decode(r.PostForm.Get("o"))
	if !ok {
		http.Error(w, "missing or unknown object reference (o)", http.StatusBadRequest)
		return "", reverify.ObjectRef{}, false
	}
	return id, reverify.ObjectRef{Bucket: bucket, Key: key}, true
}

// renewClaim keeps the reviewer's claim alive (the workspace calls it
// while open): 204, or 409 when the claim was lost.
func (s *Server) renewClaim(w http.ResponseWriter, r *http.Request) {
	id, obj, ok := s.claimForm(w, r)
	if !ok {
		return
	}
	_, err := s.ledger.RenewClaim(r.Context(), id, obj, reviewer(r.Context()), s.cfg.ClaimTTL)
	if errors.Is(err, postgres.ErrClaimLost) {
		http.Error(w, "the claim expired and was taken, or the object was decided", http.StatusConflict)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// releaseClaim gives the reviewer's item back to the queue.
func (s *Server) releaseClaim(w http.ResponseWriter, r *http.Request) {
	id, obj, ok := s.claimForm(w, r)
	if !ok {
		return
	}
	if err := s.ledger.ReleaseClaim(r.Context(), obj, reviewer(r.Context())); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/runs/"+id, http.StatusSeeOther)
}

// queueCursor encodes where a page of the queue ends for the "after"
// parameter; the object is named by its (sealed, when keys are masked)
// reference, never its key.
func (s *Server) queueCursor(c postgres.QueueCursor) string {
	if c == (postgres.QueueCursor{}) {
		return ""
	}
	return c.Order + "~" + s.refs.encode(c.Bucket, c.Key)
}

func (s *Server) parseQueueCursor(v string) (postgres.QueueCursor, bool) {
	if v == "" {
		return postgres.QueueCursor{}, true
	}
	order, ref, ok := strings.Cut(v, "~")
	if !ok {
		return postgres.QueueCursor{}, false
	}
	if _, err := strconv.ParseFloat(order, 64); err != nil {
		return postgres.QueueCursor{}, false
	}
	bucket, key, ok := s.refs.decode(ref)
	return postgres.QueueCursor{Order: order, Bucket: bucket, Key: key}, ok
}

// queuePageURL links a page of a run's queue.
func queuePageURL(runID, after string, all bool) string {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if all {
		q.Set("all", "1")
	}
	if len(q) == 0 {
		return "/runs/" + runID + "#review-queue"
	}
	return "/runs/" + runID + "?" + q.Encode() + "#review-queue"
}
