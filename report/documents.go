package report

import (
	"math"
	"time"

	"reverify"
	"reverify/campaign"
	"reverify/storage/postgres"
	"reverify/worker/fleet"
)

// The documents below are what the commands print with -o json or yaml:
// field names are snake_case and stable, times RFC 3339 in UTC, durations
// in seconds.

// RunDoc is a run.
type RunDoc struct {
	ID        string             `json:"id"`
	Name      string             `json:"name"`
	Status    reverify.RunStatus `json:"status"`
	Priority  reverify.Priority  `json:"priority"`
	Queue     string             `json:"queue"`
	Labels    map[string]string  `json:"labels"`
	Source    reverify.Source    `json:"source"`
	Total     int64              `json:"total"`
	Threshold ThresholdDoc       `json:"fail_threshold"`
	ReportTo  string             `json:"report_to,omitempty"`
	// Notify are the run's webhooks, each shown as format:scheme://host/…
	// only: a webhook URL is a secret.
	Notify []string `json:"notify,omitempty"`
	// MaxRate is the run's own cap on its API calls per second, a number
	// or a rate schedule ("" = none); MaxInFlight its cap on calls in
	// flight (0 = none).
	MaxRate     string     `json:"max_rate,omitempty"`
	MaxInFlight int        `json:"max_in_flight,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at"`
}

// ThresholdDoc is when a run fails on its own.
type ThresholdDoc struct {
	Percent float64 `json:"percent"`
	MinDone int64   `json:"min_done"`
	Count   int64   `json:"count,omitempty"`
}

// NewRunDoc describes r; redact shows a webhook without its secret parts.
func NewRunDoc(r reverify.Run, redact func(string) string) RunDoc {
	d := RunDoc{
		ID: r.ID, Name: r.Name, Status: r.Status, Priority: r.Priority, Queue: r.Queue, Labels: r.Labels,
		Source: r.Source, Total: r.Total, ReportTo: r.ReportTo,
		Threshold: ThresholdDoc{Percent: r.Threshold.Percent, MinDone: r.Threshold.MinDone, Count: r.Threshold.Count},
		CreatedAt: r.CreatedAt.UTC(), StartedAt: utc(r.StartedAt), FinishedAt: utc(r.FinishedAt),
		MaxRate: r.Limits.RateText(), MaxInFlight: r.Limits.MaxInFlight,
	}
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	for _, n := range r.Notify {
		d.Notify = append(d.Notify, redact(n))
	}
	return d
}

// RunCountsDoc is a run with its objects counted by status (`runs list`).
type RunCountsDoc struct {
	RunDoc
	Done     int64                     `json:"done"`
	Pending  int64                     `json:"pending"`
	ByStatus map[reverify.Status]int64 `json:"by_status"`
}

// NewRunCountsDoc describes a run and its counts.
func NewRunCountsDoc(c postgres.RunCounts, redact func(string) string) RunCountsDoc {
	by := c.ByStatus
	if by == nil {
		by = map[reverify.Status]int64{}
	}
	return RunCountsDoc{RunDoc: NewRunDoc(c.Run, redact), Done: c.Done, Pending: c.Pending, ByStatus: by}
}

// ProgressDoc is a run as `runs show` prints it.
type ProgressDoc struct {
	RunCountsDoc
	PerSecond       float64       `json:"per_second"`        // since the run was created (until it finished)
	RecentPerSecond float64       `json:"recent_per_second"` // over the last sampling interval
	ETASeconds      *float64      `json:"eta_seconds"`       // null when unknown
	APICalls        int64         `json:"api_calls"`         // calls made to the liveness API for the run, whatever their outcome
	BillableAnswers int64         `json:"billable_answers"`  // answers with a transaction ID: what the vendor bills
	Scores          *ScoresDoc    `json:"scores"`            // null before the first score
	History         []HistoryDoc  `json:"history"`
	Fleet           *FleetDoc     `json:"fleet"` // null when Redis could not be read
	Notifications   []DeliveryDoc `json:"notifications"`
}

// ScoresDoc summarises a run's scores.
type ScoresDoc struct {
	Min float64 `json:"min"`
	Avg float64 `json:"avg"`
	Max float64 `json:"max"`
}

// HistoryDoc is one status change.
type HistoryDoc struct {
	From      string    `json:"from"` // "" for the creation
	To        string    `json:"to"`
	Actor     string    `json:"actor"`
	Reason    string    `json:"reason"`
	ChangedAt time.Time `json:"changed_at"`
}

// FleetDoc is why runs may not be moving.
type FleetDoc struct {
	AuthCircuitOpenSeconds   float64 `json:"auth_circuit_open_seconds"` // 0 when closed
	AuthReason               string  `json:"auth_reason,omitempty"`
	OutageCircuitOpenSeconds float64 `json:"outage_circuit_open_seconds"`
	CallsToday               int64   `json:"calls_today"` // admitted today (UTC) by the whole fleet
	DailyBudget              int64   `json:"daily_budget"`
	BudgetSpent              bool    `json:"budget_spent"`
	// APIRate is the fleet's rate of API calls per second now (0 with a
	// fixed rate: no limit; 0 with an adaptive one: not started);
	// RateMode fixed or adaptive; RateReason why (docs/rate.md).
	APIRate    float64 `json:"api_rate"`
	RateMode   string  `json:"rate_mode"`
	RateReason string  `json:"rate_reason,omitempty"`
	// RateSchedule is the rate schedule the fleet follows ("" = none) and
	// RateChangesAt when its rate changes next.
	RateSchedule  string     `json:"rate_schedule,omitempty"`
	RateChangesAt *time.Time `json:"rate_changes_at,omitempty"`
}

// NewFleetDoc describes the fleet's state.
func NewFleetDoc(st fleet.Status) *FleetDoc {
	return &FleetDoc{
		AuthCircuitOpenSeconds: st.AuthOpenFor.Seconds(), AuthReason: st.AuthReason,
		OutageCircuitOpenSeconds: st.OutageOpenFor.Seconds(), CallsToday: st.BudgetUsed,
		DailyBudget: st.DailyBudget, BudgetSpent: st.BudgetSpent(),
		APIRate: math.Round(st.Rate*10) / 10, RateMode: rateMode(st), RateReason: string(st.RateReason),
		RateSchedule: st.Schedule.String(), RateChangesAt: utcTime(st.RateChangesAt),
	}
}

func utcTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func rateMode(st fleet.Status) string {
	if st.Adaptive {
		return "adaptive"
	}
	return "fixed"
}

// DeliveryDoc is one webhook delivery of a run's event.
type DeliveryDoc struct {
	Event       reverify.Event `json:"event"`
	Destination string         `json:"destination"` // format:scheme://host/… only: a webhook URL is a secret
	Attempts    int            `json:"attempts"`
	State       string         `json:"state"` // pending, retrying, delivered, given_up
	LastStatus  int            `json:"last_status,omitempty"`
	LastError   string         `json:"last_error,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
	DeliveredAt *time.Time     `json:"delivered_at"`
}

// NewProgressDoc describes a run's progress at now.
func NewProgressDoc(p postgres.Progress, hist []postgres.StatusChange, now time.Time, redact func(string) string) ProgressDoc {
	d := ProgressDoc{
		RunCountsDoc: NewRunCountsDoc(p.RunCounts, redact),
		PerSecond:    Throughput(p, now), RecentPerSecond: p.RecentPerSecond, APICalls: p.APICalls, BillableAnswers: p.BillableAnswers,
		History: make([]HistoryDoc, len(hist)), Notifications: []DeliveryDoc{},
	}
	if p.Pending > 0 && p.RecentPerSecond > 0 {
		eta := float64(p.Pending) / p.RecentPerSecond
		d.ETASeconds = &eta
	}
	if p.ByStatus[reverify.StatusScored] > 0 {
		d.Scores = &ScoresDoc{Min: p.ScoreMin, Avg: p.ScoreAvg, Max: p.ScoreMax}
	}
	for i, h := range hist {
		d.History[i] = HistoryDoc{From: h.From, To: h.To, Actor: h.Actor, Reason: h.Reason, ChangedAt: h.ChangedAt.UTC()}
	}
	return d
}

// EstimateDoc is a dry run's count.
type EstimateDoc struct {
	Matched        int64 `json:"matched"`         // objects the filters keep
	WouldSend      int64 `json:"would_send"`      // objects that would reach the API
	DistinctImages int64 `json:"distinct_images"` // of those, about how many distinct images (ETag+size): the calls a deduplicating run pays
	Empty          int64 `json:"empty"`           // not sent: empty
	TooLarge       int64 `json:"too_large"`       // not sent: over max_object_bytes
	SizeUnknown    int64 `json:"size_unknown"`    // manifest entries counted as sent without checking S3
	Bytes          int64 `json:"bytes"`           // of the objects of known size that would be sent
	RecentlyScored int64 `json:"recently_scored"` // left out by --not-verified-since
	MaxObjectBytes int64 `json:"max_object_bytes"`
}

// NewEstimateDoc describes a dry run's count.
func NewEstimateDoc(e campaign.Estimate) EstimateDoc {
	return EstimateDoc{Matched: e.Matched, WouldSend: e.Send, DistinctImages: e.Distinct, Empty: e.Empty, TooLarge: e.Large, SizeUnknown: e.Unknown,
		Bytes: e.Bytes, RecentlyScored: e.Recent, MaxObjectBytes: e.MaxObjectBytes}
}

// TableDoc is one reporting view as a list of rows, each a column -> value
// object (numerics as numbers, UUIDs as strings, times RFC 3339).
func TableDoc(t postgres.Table) []map[string]any {
	out := make([]map[string]any, 0, len(t.Rows))
	for _, row := range t.Rows {
		out = append(out, rowMap(t.Columns, row))
	}
	return out
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
