// Package reverify holds the words every part of reverify shares: the
// statuses of a run and of a verification, priorities, source kinds, API
// call outcomes, reviewers' decisions and the reasons a task waits, as typed
// constants, and the nouns passed between packages (a run, an object, who
// acted and why).
//
// Nothing else spells these values as strings: the migrations' CHECK
// constraints and views are kept in step with the lists here by a test in
// storage/postgres.
package reverify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// RunStatus is where a run is in its lifecycle:
// awaiting_confirmation → enqueuing → running → completed | cancelled | failed,
// with paused in between.
type RunStatus string

// Run statuses.
const (
	RunAwaitingConfirmation RunStatus = "awaiting_confirmation"
	RunEnqueuing            RunStatus = "enqueuing"
	RunRunning              RunStatus = "running"
	RunPaused               RunStatus = "paused"
	RunCompleted            RunStatus = "completed"
	RunCancelled            RunStatus = "cancelled"
	RunFailed               RunStatus = "failed"
)

// RunStatuses lists every run status in lifecycle order.
func RunStatuses() []RunStatus {
	return []RunStatus{RunAwaitingConfirmation, RunEnqueuing, RunRunning, RunPaused, RunCompleted, RunCancelled, RunFailed}
}

// Ended reports whether the status can no longer change on its own.
func (s RunStatus) Ended() bool { return s == RunCompleted || s == RunCancelled || s == RunFailed }

// Sending reports whether the run's objects may be sent to the API now.
func (s RunStatus) Sending() bool { return s == RunEnqueuing || s == RunRunning }

// Holding reports whether the run's tasks wait without being sent: it is
// paused or awaits confirmation.
func (s RunStatus) Holding() bool { return s == RunPaused || s == RunAwaitingConfirmation }

// Status is a verification's status: pending until the pipeline records the
// object's single terminal result.
type Status string

// Verification statuses. Every status but pending is terminal.
const (
	StatusPending      Status = "pending"
	StatusScored       Status = "scored"
	StatusRejected     Status = "rejected"      // the API refused the image (1016, 1017, other 4xx)
	StatusInvalidImage Status = "invalid_image" // empty, not an image or too large: never sent
	StatusNotFound     Status = "not_found"     // missing in storage
	StatusFailed       Status = "failed"        // retries exhausted
	StatusCancelled    Status = "cancelled"     // its run was cancelled or failed before it was sent
)

// Statuses lists every verification status in pipeline order.
func Statuses() []Status {
	return []Status{StatusPending, StatusScored, StatusRejected, StatusInvalidImage, StatusNotFound, StatusFailed, StatusCancelled}
}

// Terminal reports whether the status is a result.
func (s Status) Terminal() bool { return s != StatusPending }

// Failure reports whether the status counts against a run's failure
// threshold.
func (s Status) Failure() bool { return s == StatusFailed || s == StatusNotFound }

// Retryable reports whether `runs retry` may re-drive objects in this
// status: every result but a score (pending is not a result).
func (s Status) Retryable() bool { return s != StatusPending && s != StatusScored }

// ParseStatus checks s names a verification status.
func ParseStatus(s string) (Status, error) {
	if st := Status(s); slices.Contains(Statuses(), st) {
		return st, nil
	}
	return "", fmt.Errorf("unknown status %q: want one of %s", s, join(Statuses()))
}

// DefaultMaxObjectBytes is the largest object sent to the API unless a run
// or worker says otherwise.
const DefaultMaxObjectBytes = 15 << 20

// Unsendable says why an object of size bytes never reaches the paid API
// (it is recorded invalid_image without a call), or "" when it may: its
// bytes are then checked once read. A negative size is unknown (a manifest
// entry) and may be sent. The worker and the dry run's cost share this rule.
func Unsendable(size, maxBytes int64) string {
	switch {
	case size == 0:
		return "empty object"
	case size > maxBytes:
		return fmt.Sprintf("object is larger than the %d-byte limit", maxBytes)
	}
	return ""
}

// Priority says how urgently a run's objects are sent. Each maps to its own
// asynq queue; workers serve them with weights, so an urgent run overtakes
// a bulk one without starving it.
type Priority string

// Priorities.
const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
	PriorityLow    Priority = "low"
)

// Priorities lists every priority, most urgent first.
func Priorities() []Priority { return []Priority{PriorityHigh, PriorityNormal, PriorityLow} }

// ParsePriority reads a priority; "" is normal.
func ParsePriority(s string) (Priority, error) {
	switch p := Priority(s); p {
	case "":
		return PriorityNormal, nil
	case PriorityHigh, PriorityNormal, PriorityLow:
		return p, nil
	}
	return "", fmt.Errorf("unknown priority %q: want %s", s, join(Priorities()))
}

// Weight is the share of a busy worker's fetches the priority's queue gets:
// of every ten tasks, about six come from high, three from normal and one
// from low.
func (p Priority) Weight() int {
	switch p {
	case PriorityHigh:
		return 6
	case PriorityLow:
		return 1
	}
	return 3
}

// Queue returns the asynq queue of a run of this priority whose base queue
// is base: base for normal, base-high and base-low otherwise.
func (p Priority) Queue(base string) string {
	if p == PriorityNormal || p == "" {
		return base
	}
	return base + "-" + string(p)
}

// BaseQueue undoes Queue: the base queue of a priority's queue.
func (p Priority) BaseQueue(queue string) string {
	if p == PriorityNormal || p == "" {
		return queue
	}
	return strings.TrimSuffix(queue, "-"+string(p))
}

// PriorityQueues returns the weighted queues a worker serves for base.
func PriorityQueues(base string) map[string]int {
	out := make(map[string]int, 3)
	for _, p := range Priorities() {
		out[p.Queue(base)] = p.Weight()
	}
	return out
}

// SourceKind is where a run's objects come from.
type SourceKind string

// Source kinds.
const (
	SourcePrefix    SourceKind = "prefix"    // every object under a bucket/prefix, listed
	SourceManifest  SourceKind = "manifest"  // a CSV or one-key-per-line file
	SourceInventory SourceKind = "inventory" // an S3 Inventory report
)

// Source is a run's source, as stored in runs.source.
type Source struct {
	Kind     SourceKind `json:"kind"`
	Bucket   string     `json:"bucket,omitempty"`
	Prefix   string     `json:"prefix,omitempty"`
	Manifest string     `json:"manifest,omitempty"` // a path, "-" (standard input) or s3://bucket/key
}

// String names the source as a person would.
func (s Source) String() string {
	switch s.Kind {
	case SourcePrefix:
		return "s3://" + s.Bucket + "/" + s.Prefix
	case SourceManifest:
		if s.Manifest == "-" {
			return "manifest from standard input"
		}
		return "manifest " + s.Manifest
	case SourceInventory:
		return "inventory " + s.Manifest
	}
	return string(s.Kind)
}

// CallOutcome is how one call to the liveness API ended, as recorded in
// api_calls.outcome.
type CallOutcome string

// Call outcomes.
const (
	OutcomeInFlight    CallOutcome = "in_flight" // sent; no answer recorded (yet)
	OutcomeScored      CallOutcome = "scored"
	OutcomeRejected    CallOutcome = "rejected"     // 400 with 1016/1017, 413, other 4xx
	OutcomeRateLimited CallOutcome = "rate_limited" // 429
	OutcomeAuth        CallOutcome = "auth"         // 401/403
	OutcomeTransient   CallOutcome = "transient"    // 5xx, timeout, network, malformed answer
)

// CallOutcomes lists every call outcome.
func CallOutcomes() []CallOutcome {
	return []CallOutcome{OutcomeInFlight, OutcomeScored, OutcomeRejected, OutcomeRateLimited, OutcomeAuth, OutcomeTransient}
}

// Analysed reports whether the API analysed the image (an answer the vendor
// bills): a score or a refusal of the image.
func (o CallOutcome) Analysed() bool { return o == OutcomeScored || o == OutcomeRejected }

// KeyAccepted reports whether the answer shows the API accepted the key.
func (o CallOutcome) KeyAccepted() bool { return o.Analysed() }

// Decision is what a reviewer decided about an object.
type Decision string

// Decisions, as stored in reviews.decision.
const (
	DecisionConfirmedLive  Decision = "confirmed_live"  // a real person
	DecisionSuspectedSpoof Decision = "suspected_spoof" // presentation attack: photo, screen, mask
	DecisionNeedsRecheck   Decision = "needs_recheck"   // cannot tell; verify again or escalate
)

// Decisions lists every decision in the order the review form offers them.
func Decisions() []Decision {
	return []Decision{DecisionConfirmedLive, DecisionSuspectedSpoof, DecisionNeedsRecheck}
}

// Label is the decision as the review form shows it.
func (d Decision) Label() string {
	switch d {
	case DecisionConfirmedLive:
		return "Confirmed live"
	case DecisionSuspectedSpoof:
		return "Suspected spoof"
	case DecisionNeedsRecheck:
		return "Needs recheck"
	}
	return string(d)
}

// Shortcut is the key that records the decision in the review workspace.
func (d Decision) Shortcut() string {
	switch d {
	case DecisionConfirmedLive:
		return "l"
	case DecisionSuspectedSpoof:
		return "s"
	case DecisionNeedsRecheck:
		return "r"
	}
	return ""
}

// ReviewState is whether a recorded decision stands, as stored in
// reviews.state.
type ReviewState string

// Review states.
const (
	ReviewFinal ReviewState = "final"
	// ReviewAwaitingSecond: a suspected spoof under the four-eyes rule,
	// pending until a second, different reviewer decides.
	ReviewAwaitingSecond ReviewState = "awaiting_second"
)

// ReviewStates lists every review state.
func ReviewStates() []ReviewState { return []ReviewState{ReviewFinal, ReviewAwaitingSecond} }

// QueueState is where an object of a run's review queue stands, as the
// review_queue view's queue_state says.
type QueueState string

// Queue states.
const (
	QueueToReview          QueueState = "to_review"
	QueueNeedsSecondReview QueueState = "needs_second_review"
	QueueDecided           QueueState = "decided"
)

// WaitReason says why a task was put back without counting as a failure.
type WaitReason string

// Wait reasons, as reported in metrics and logs.
const (
	WaitRateLimited      WaitReason = "rate_limited"        // the API answered 429
	WaitAuthCircuit      WaitReason = "auth_circuit_open"   // the API refused the key; the fleet holds calls
	WaitOutageCircuit    WaitReason = "outage_circuit_open" // the API looks down; the fleet holds calls
	WaitFleetBusy        WaitReason = "fleet_concurrency"   // the fleet's in-flight cap is reached
	WaitFleetRate        WaitReason = "fleet_rate"          // the fleet's request rate is reached
	WaitBudget           WaitReason = "daily_budget_spent"  // the fleet's daily budget is spent
	WaitFleetUnavailable WaitReason = "fleet_unavailable"   // Redis could not admit the call
	WaitLedger           WaitReason = "ledger_unavailable"  // PostgreSQL could not be written
	WaitRunHeld          WaitReason = "run_paused"          // the run is paused or awaits confirmation
	WaitCallInFlight     WaitReason = "call_in_flight"      // an earlier call for the object has no answer yet
	WaitStash            WaitReason = "stash_unavailable"   // the stash of unrecorded answers could not be read
	WaitBucketDenied     WaitReason = "s3_access_denied"    // the bucket refuses the worker's credentials
	WaitContentOwner     WaitReason = "content_owner_busy"  // another object with the same bytes is being analysed
	WaitRunCap           WaitReason = "run_cap"             // the run's own --max-rate or --max-in-flight is reached
)

// Event is something a run or the fleet did that webhooks are told of
// (reverify notifications; see docs/operations.md).
type Event string

// Events, as stored in notification_events.event and sent as the type of
// a webhook's body.
const (
	EventConfirmationNeeded Event = "run.confirmation_needed" // the run waits for `runs confirm`
	EventRunStarted         Event = "run.started"             // its objects are being sent, for the first time
	EventRunCompleted       Event = "run.completed"
	EventRunFailed          Event = "run.failed" // its failure threshold was crossed, or it could not go on
	EventRunCancelled       Event = "run.cancelled"
	EventCircuitOpened      Event = "fleet.circuit_opened" // the fleet stopped calling the API: key refused or API down
	EventBudgetSpent        Event = "fleet.budget_spent"   // the fleet's daily API budget is used up
)

// Events lists every event.
func Events() []Event {
	return []Event{EventConfirmationNeeded, EventRunStarted, EventRunCompleted, EventRunFailed, EventRunCancelled,
		EventCircuitOpened, EventBudgetSpent}
}

// RunEvent reports whether the event is about one run (else the fleet).
func (e Event) RunEvent() bool { return strings.HasPrefix(string(e), "run.") }

// WebhookFormat is the body a webhook is sent.
type WebhookFormat string

// Webhook formats, as stored in notification_deliveries.format.
const (
	WebhookJSON  WebhookFormat = "json"  // reverify's event document, signed with HMAC-SHA256
	WebhookSlack WebhookFormat = "slack" // a Slack incoming webhook's {"text": ...}
)

// WebhookFormats lists every webhook format.
func WebhookFormats() []WebhookFormat { return []WebhookFormat{WebhookJSON, WebhookSlack} }

// Duration is a time.Duration that writes JSON as "36h" and reads that or
// integer nanoseconds.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON reads a JSON string such as "36h", or integer nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		return d.UnmarshalText([]byte(s))
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string such as \"250ms\" or integer nanoseconds, got %s", b)
	}
	*d = Duration(n)
	return nil
}

// String implements fmt.Stringer.
func (d Duration) String() string { return time.Duration(d).String() }

// ObjectRef names one stored object.
type ObjectRef struct {
	Bucket  string
	Key     string
	Version string // "" = latest
}

// String names the object by its bucket and key hash, never its key, so an
// object printed in a log line or an error names no person.
func (o ObjectRef) String() string { return o.Bucket + " key_hash=" + KeyHash(o.Bucket, o.Key) }

// KeyHash names an object in logs, errors and masked views without its
// key, which can name a person: the first 8 bytes of sha256(bucket/key),
// hex encoded.
func KeyHash(bucket, key string) string {
	sum := sha256.Sum256([]byte(bucket + "/" + key))
	return hex.EncodeToString(sum[:8])
}

// Actor is who changed something and why; it lands in a run's status
// history, and in the audit log when Source says where a person (or the
// scheduler) acted from.
type Actor struct {
	Who    string
	Why    string
	Source AuditSource // "" = the system itself (workers, planner): not audited
	From   string      // where from: the client's address, or the CLI's host
}

// AuditSource is where an audited action came from, as stored in
// audit_log.source.
type AuditSource string

// Audit sources.
const (
	AuditFromCLI       AuditSource = "cli"
	AuditFromDashboard AuditSource = "dashboard"
	AuditFromScheduler AuditSource = "scheduler"
)

// AuditAction is what an audit log entry records, as stored in
// audit_log.action.
type AuditAction string

// Audited actions.
const (
	AuditRunCreate   AuditAction = "run.create"
	AuditRunConfirm  AuditAction = "run.confirm"
	AuditRunPause    AuditAction = "run.pause"
	AuditRunResume   AuditAction = "run.resume"
	AuditRunCancel   AuditAction = "run.cancel"
	AuditRunFail     AuditAction = "run.fail"
	AuditRunRetry    AuditAction = "run.retry"
	AuditRunPriority AuditAction = "run.priority"
	AuditRunDelete   AuditAction = "run.delete"
	AuditImageView   AuditAction = "image.view"
	AuditReview      AuditAction = "review.decide"
	AuditReportWrite AuditAction = "report.write"
	AuditErase       AuditAction = "subject.erase"
	AuditPrune       AuditAction = "run.prune"
	// AuditMonitorWrite is a change made through the dashboard's asynqmon
	// (tasks deleted, archived or run, queues paused): detail holds the
	// method and path, whose task IDs name objects by hash only.
	AuditMonitorWrite AuditAction = "monitor.write"
	AuditRunLimits    AuditAction = "run.limits"
)

// AuditActions lists every audited action.
func AuditActions() []AuditAction {
	return []AuditAction{AuditRunCreate, AuditRunConfirm, AuditRunPause, AuditRunResume, AuditRunCancel, AuditRunFail,
		AuditRunRetry, AuditRunPriority, AuditRunDelete, AuditImageView, AuditReview, AuditReportWrite, AuditErase, AuditPrune,
		AuditMonitorWrite,
		AuditRunLimits}
}

// Role is what a dashboard identity may do; each role may do what the
// roles before it may.
type Role string

// Dashboard roles, least first.
const (
	RoleViewer   Role = "viewer"   // pages and figures; images only where the dashboard allows viewers them
	RoleReviewer Role = "reviewer" // images and review decisions
	RoleOperator Role = "operator" // asynqmon writes and run actions too
)

// Roles lists the roles, least first.
func Roles() []Role { return []Role{RoleViewer, RoleReviewer, RoleOperator} }

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return slices.Contains(Roles(), r) }

// Allows reports whether r may do what need may; an unknown role allows
// nothing.
func (r Role) Allows(need Role) bool {
	have, want := slices.Index(Roles(), r), slices.Index(Roles(), need)
	return have >= 0 && want >= 0 && have >= want
}

// TimeLayout is how people are shown a time: UTC, marked as such.
const TimeLayout = "2006-01-02 15:04:05 UTC"

// FormatTime shows t in UTC with the zone marked, never in the local zone
// of whoever runs the command.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// Run is one campaign.
type Run struct {
	ID         string
	Name       string
	Status     RunStatus
	Queue      string
	Source     Source
	Options    json.RawMessage
	Total      int64
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time

	Labels          map[string]string
	Priority        Priority
	Threshold       Threshold
	ReportTo        string   // "" = no automatic completion report
	Notify          []string // webhooks told of the run's events ([slack:|json:]URL; secrets: never print them whole)
	PlanToken       string   // continuation token of the next page a run:plan task lists
	PlannedAt       *time.Time
	StatusChangedAt time.Time
	Limits          RunLimits // the run's own caps on its API calls
}

// Threshold is when a run fails on its own: more than Percent of its
// finished objects failed once MinDone are finished, or Count failed (when
// Count > 0). Failed means a status whose Failure is true.
type Threshold struct {
	Percent float64
	MinDone int64
	Count   int64
}

// DefaultThreshold is S3 Batch Operations' rule: more than 50% failed once
// at least 1,000 tasks have run.
func DefaultThreshold() Threshold { return Threshold{Percent: 50, MinDone: 1000} }

// Validate reports a threshold that cannot be met or read.
func (t Threshold) Validate() error {
	if t.Percent < 0 || t.Percent > 100 || t.MinDone < 0 || t.Count < 0 {
		return fmt.Errorf("failure threshold: percent must be 0-100; minimum done and count must not be negative")
	}
	return nil
}

// MayCross reports whether failed objects could pass the threshold for
// some count of finished objects (never fewer than failed or MinDone).
func (t Threshold) MayCross(failed int64) bool {
	if t.Count > 0 && failed >= t.Count {
		return true
	}
	return float64(failed)*100 > t.Percent*float64(max(t.MinDone, failed, 1))
}

// Crossed says why failed of done finished objects pass the threshold, or
// "" when they do not.
func (t Threshold) Crossed(failed, done int64) string {
	if t.Count > 0 && failed >= t.Count {
		return fmt.Sprintf("failure threshold crossed: %d objects failed (limit %d)", failed, t.Count)
	}
	if done > 0 && done >= t.MinDone && float64(failed)*100 > t.Percent*float64(done) {
		return fmt.Sprintf("failure threshold crossed: %d of %d finished objects failed (%.1f%% > %g%%)",
			failed, done, 100*float64(failed)/float64(done), t.Percent)
	}
	return ""
}

func join[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}
