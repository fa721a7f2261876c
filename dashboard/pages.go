package dashboard

import (
	"bytes"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"reverify"
	"time"
)

// pages renders the server-side HTML; the one script, the review
// workspace's keyboard shortcuts, is served from /assets/ (no inline
// script: the CSP allows none).
type pages struct{ t *template.Template }

func newPages(cfg Config, refs objRefs) *pages {
	funcs := template.FuncMap{
		"key": func(bucket, key string) string {
			if cfg.MaskKeys {
				return "sha256:" + KeyHash(bucket, key)
			}
			return bucket + "/" + key
		},
		"objectURL": func(runID, bucket, key string) string { return refs.url(runID, "object", bucket, key) },
		"imageURL":  func(runID, bucket, key string) string { return refs.url(runID, "image", bucket, key) },
		"ref":       refs.encode,
		"progress":  progressSVG,
		"color":     func(s reverify.Status) string { return statusColors[s] },
		"statuses":  func() []reverify.Status { return statusOrder },
		"readOnly":  func() bool { return cfg.ReadOnly },
		"score": func(f *float64) string {
			if f == nil {
				return "–"
			}
			return fmt.Sprintf("%.2f", *f)
		},
		"code": func(c int) string {
			if c == 0 {
				return ""
			}
			return fmt.Sprint(c)
		},
		"when": func(t any) string {
			switch v := t.(type) {
			case time.Time:
				return reverify.FormatTime(v)
			case *time.Time:
				if v != nil {
					return reverify.FormatTime(*v)
				}
			}
			return "–"
		},
		"pct": func(done, total int64) string {
			if total <= 0 {
				return "0%"
			}
			return fmt.Sprintf("%.1f%%", 100*float64(done)/float64(total))
		},
		"label": reverify.Decision.Label,
		"queueState": func(q reverify.QueueState) string {
			switch q {
			case reverify.QueueToReview:
				return "to review"
			case reverify.QueueNeedsSecondReview:
				return "needs second review"
			case reverify.QueueDecided:
				return "decided"
			}
			return string(q)
		},
		"script": func() string { return WorkspaceScriptPath },
	}
	return &pages{t: template.Must(template.New("").Funcs(funcs).Parse(pageTemplates))}
}

// render buffers the page so a template error never sends half a page.
func (p *pages) render(w http.ResponseWriter, r *http.Request, log *slog.Logger, name string, data map[string]any) {
	var buf bytes.Buffer
	if err := p.t.ExecuteTemplate(&buf, name, data); err != nil {
		log.ErrorContext(r.Context(), "render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = buf.WriteTo(w)
}

const pageTemplates = `
{{define "head"}}<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{{.}} · reverify</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#222}
header{background:#263238;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}
header a{color:#fff;text-decoration:none}
main{padding:1em 1.2em;max-width:1200px}
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #e0e0e0;vertical-align:top}
th{background:#f5f5f5}
.num{text-align:right;font-variant-numeric:tabular-nums}
.status{display:inline-block;padding:0 .4em;border-radius:3px;color:#fff;font-size:12px}
.histogram .bar{fill:#1565c0}.histogram .bar.low{fill:#ef6c00}
.key{font-family:ui-monospace,monospace;word-break:break-all}
.saved{background:#e8f5e9;border:1px solid #2e7d32;padding:.5em}
.face{max-width:420px;max-height:420px;border:1px solid #ccc}
.ro{color:#b71c1c}
.ws{display:flex;gap:1.5em;align-items:flex-start}.ws .face{max-width:520px;max-height:520px}
.big{font-size:20px}kbd{border:1px solid #999;border-radius:3px;padding:0 .3em;font-size:12px}
.ws button{font-size:16px;padding:.4em .8em}
</style></head><body>
<header><a href="/"><strong>reverify</strong></a><a href="/">Runs</a><a href="/monitoring/">Queues (asynqmon)</a>{{if readOnly}}<span class="ro">read-only</span>{{end}}</header><main>{{end}}

{{define "foot"}}</main></body></html>{{end}}

{{define "runs"}}{{template "head" "Runs"}}
<h1>Runs</h1>
<table id="runs"><thead><tr><th>Run</th><th>Status</th><th>Progress</th><th class="num">Done / total</th><th>Created</th></tr></thead><tbody>
{{range .Runs}}<tr>
<td><a class="run-link" href="/runs/{{.Run.ID}}">{{.Run.Name}}</a><br><small class="key">{{.Run.ID}}</small></td>
<td>{{.Run.Status}}</td>
<td>{{progress .}}</td>
<td class="num">{{.Done}} / {{.Run.Total}} ({{pct .Done .Run.Total}})</td>
<td>{{when .Run.CreatedAt}}</td>
</tr>{{else}}<tr><td colspan="5">No runs yet: start one with <code>reverify enqueue</code>.</td></tr>{{end}}
</tbody></table>
{{template "foot"}}{{end}}

{{define "run"}}{{template "head" .Run.Run.Name}}
{{with .Run}}<h1>{{.Run.Name}}</h1>
<p><span class="key">{{.Run.ID}}</span> · <strong id="run-status">{{.Run.Status}}</strong> · created {{when .Run.CreatedAt}} · started {{when .Run.StartedAt}} · finished {{when .Run.FinishedAt}}</p>
<p>{{progress .}} {{.Done}} of {{.Run.Total}} done ({{pct .Done .Run.Total}})</p>
<table id="counts" style="width:auto"><thead><tr><th>Status</th><th class="num">Objects</th></tr></thead><tbody>
{{$by := .ByStatus}}{{range statuses}}{{$n := index $by .}}{{if $n}}<tr data-status="{{.}}"><td><span class="status" style="background:{{color .}}">&nbsp;</span> {{.}}</td><td class="num">{{$n}}</td></tr>{{end}}{{end}}
</tbody></table>{{end}}
{{with .Forecast}}<table id="forecast" style="width:auto"><tbody>
<tr><th>Fleet</th><td id="fleet-rate">{{or .FleetRate "no API rate known"}}</td></tr>
{{with .Schedule}}<tr><th>Schedule</th><td id="fleet-schedule">{{.}}</td></tr>{{end}}
<tr><th>ETA</th><td id="eta">{{or .ETA "unknown"}}</td></tr>
<tr><th>Left</th><td id="left">{{.Left}}</td></tr>
<tr><th>Spent</th><td id="spent">{{.Spent}}</td></tr>
</tbody></table>{{end}}

<h2>Scores</h2>
{{.Histogram}}
<p><small>Bars under the review threshold ({{.Threshold}}) are orange.</small></p>

<h2 id="review-queue-title">Review queue</h2>
<p><small>Refusals by the API and scores under {{.Threshold}}, refusals first, then the lowest scores. {{if .All}}All, decided ones too{{else}}Still to do{{end}} · <a id="queue-toggle" href="{{.Toggle}}">{{if .All}}show only what is to do{{else}}show decided ones too{{end}}</a>{{if not readOnly}} · <a id="open-workspace" href="/runs/{{.Run.Run.ID}}/review">Open the review workspace</a>{{end}}</small></p>
<table id="review-queue"><thead><tr><th>Object</th><th>Status</th><th class="num">Score</th><th>Code</th><th>Queue</th><th>Decision</th></tr></thead><tbody>
{{range .Queue}}<tr data-state="{{.QueueState}}">
<td><a class="key review-link" href="{{objectURL .RunID .Bucket .Key}}">{{key .Bucket .Key}}</a></td>
<td>{{.Status}}</td><td class="num">{{score .Score}}</td><td>{{code .ErrorCode}}</td><td>{{queueState .QueueState}}</td>
<td>{{if .Decision}}{{label .Decision}} <small>by {{.Reviewer}}</small>{{else}}<em>to review</em>{{end}}</td>
</tr>{{else}}<tr><td colspan="6">Nothing {{if .Paged}}more {{end}}to review.</td></tr>{{end}}
</tbody></table>
<p>{{if .Paged}}<a id="queue-first" href="{{.FirstPage}}">← first page</a> {{end}}{{if .NextPage}}<a id="queue-next" href="{{.NextPage}}">next page →</a>{{end}}</p>

<h2>Failures</h2>
<table id="failures"><thead><tr><th>Object</th><th>Status</th><th>Why</th><th>When</th></tr></thead><tbody>
{{range .Failures}}<tr>
<td><a class="key" href="{{objectURL .RunID .Bucket .Key}}">{{key .Bucket .Key}}</a></td>
<td>{{.Status}}</td><td>{{.Message}}</td><td>{{when .CompletedAt}}</td>
</tr>{{else}}<tr><td colspan="4">No failures.</td></tr>{{end}}
</tbody></table>
{{template "foot"}}{{end}}

{{define "workspace"}}{{template "head" "Review"}}
<p><a href="/runs/{{.Run.Run.ID}}">← {{.Run.Run.Name}}</a> · reviewing as <strong id="me">{{.Reviewer}}</strong>{{if .FourEyes}} · <span id="four-eyes">four-eyes rule: a suspected spoof needs a second reviewer</span>{{end}}</p>
{{if eq .Notice "awaiting_second"}}<p class="saved" id="notice">Recorded; it awaits a second reviewer.</p>{{else if .Notice}}<p class="saved" id="notice">Decision recorded.</p>{{end}}
{{with .Claim}}{{$c := .}}{{with .Item}}
<div class="ws">
<div><img class="face" id="face" alt="stored image" src="{{imageURL .RunID .Bucket .Key}}"></div>
<div>
<h1 class="key" id="ws-object">{{key .Bucket .Key}}</h1>
<p class="big">Score <strong id="ws-score">{{score .Score}}</strong> · {{.Status}}{{with code .ErrorCode}} · code {{.}}{{end}}</p>
<p id="ws-state" data-state="{{.QueueState}}">{{if eq .QueueState "needs_second_review"}}<strong>Needs second review</strong>: {{.Reviewer}} decided {{label .Decision}}. Confirm it or overturn it.{{else}}To review{{end}}</p>
<p><small>ETag <span class="key">{{.ETag}}</span> · completed {{when .CompletedAt}} · held until {{when $c.ExpiresAt}}</small></p>
<p class="ro" id="lost" hidden>Your claim on this item was lost (expired and taken, or decided): take the next item.</p>
{{if readOnly}}<p class="ro">Read-only: no decisions.</p>{{else}}
<form id="decide" method="post" action="/runs/{{.RunID}}/reviews" data-renew="/runs/{{.RunID}}/claims/renew" data-renew-every="{{$.RenewEvery}}">
<input type="hidden" name="o" value="{{ref .Bucket .Key}}"><input type="hidden" name="next" value="1">
<p>{{range $.Decisions}}<button type="submit" name="decision" value="{{.}}" id="ws-{{.}}" data-key="{{.Shortcut}}">{{.Label}} <kbd>{{.Shortcut}}</kbd></button> {{end}}</p>
<p><label>Note<br><textarea name="note" id="ws-note" rows="2" cols="50" maxlength="2000"></textarea></label></p>
</form>
<p><small>Keys: {{range $.Decisions}}<kbd>{{.Shortcut}}</kbd> {{.Label}} · {{end}}(not while typing a note)</small></p>
<form method="post" action="/runs/{{.RunID}}/claims/release"><input type="hidden" name="o" value="{{ref .Bucket .Key}}"><button type="submit" id="ws-release">Give it back and leave</button></form>{{end}}
</div></div>{{end}}
<h2>This object in every run</h2>
<table id="ws-history"><thead><tr><th>Run</th><th>Status</th><th class="num">Score</th><th>ETag</th><th>Completed</th></tr></thead><tbody>
{{range $.History}}<tr><td>{{.RunName}}</td><td>{{.Status}}</td><td class="num">{{score .Score}}</td><td class="key">{{.ETag}}</td><td>{{when .CompletedAt}}</td></tr>{{end}}
</tbody></table>
<h2>Decisions</h2>
<table id="ws-reviews"><thead><tr><th>When</th><th>Decision</th><th>State</th><th>Reviewer</th><th class="num">Score then</th><th>Note</th></tr></thead><tbody>
{{range $.Reviews}}<tr><td>{{when .ReviewedAt}}</td><td>{{label .Decision}}</td><td>{{.State}}</td><td>{{.Reviewer}}</td><td class="num">{{score .Score}}</td><td>{{.Note}}</td></tr>
{{else}}<tr><td colspan="6">No decisions yet.</td></tr>{{end}}
</tbody></table>
<script src="{{script}}"></script>
{{else}}
<p id="ws-empty">You hold no item of this run's queue.</p>
{{if not readOnly}}<form method="post" action="/runs/{{.Run.Run.ID}}/claims"><button type="submit" id="ws-next" autofocus>Take the next item</button></form>{{end}}
{{end}}
{{template "foot"}}{{end}}

{{define "object"}}{{template "head" "Object"}}
{{with .Item}}<p><a href="/runs/{{.RunID}}">← run</a></p>
<h1 class="key">{{key .Bucket .Key}}</h1>
<table style="width:auto"><tbody>
<tr><th>Status</th><td id="item-status">{{.Status}}</td></tr>
<tr><th>Score</th><td>{{score .Score}}</td></tr>
<tr><th>Error code</th><td>{{code .ErrorCode}}</td></tr>
<tr><th>Transaction</th><td class="key">{{.TransactionID}}</td></tr>
<tr><th>Message</th><td>{{.Message}}</td></tr>
<tr><th>Completed</th><td>{{when .CompletedAt}}</td></tr>
</tbody></table>
{{if $.CanSeeImages}}<p><img class="face" id="face" alt="stored image" src="{{imageURL .RunID .Bucket .Key}}"></p>{{else}}<p id="no-image">Your role ({{$.Role}}) may not see images.</p>{{end}}{{end}}

{{if .Saved}}<p class="saved" id="saved">Decision recorded.</p>{{end}}
{{if and (not readOnly) $.CanDecide}}{{with .Item}}
<h2>Decision</h2>
<form id="review" method="post" action="/runs/{{.RunID}}/reviews">
<input type="hidden" name="o" value="{{ref .Bucket .Key}}">
{{range $.Decisions}}<label><input type="radio" name="decision" value="{{.}}" id="decision-{{.}}" required> {{.Label}}</label><br>{{end}}
<p><label>Note<br><textarea name="note" id="note" rows="3" cols="60" maxlength="2000"></textarea></label></p>
<p><button type="submit" id="submit">Record decision as {{$.Reviewer}}</button></p>
</form>{{end}}{{end}}

<h2>History</h2>
<table id="reviews"><thead><tr><th>When</th><th>Decision</th><th>Reviewer</th><th>Note</th></tr></thead><tbody>
{{range .Reviews}}<tr><td>{{when .ReviewedAt}}</td><td>{{label .Decision}}</td><td>{{.Reviewer}}</td><td>{{.Note}}</td></tr>
{{else}}<tr><td colspan="4">No decisions yet.</td></tr>{{end}}
</tbody></table>
{{template "foot"}}{{end}}
`
