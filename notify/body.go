package notify

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"reverify"
	"reverify/storage/postgres"
)

// Body is the document a json webhook receives: one event.
type Body struct {
	ID        int64          `json:"id"` // the event's: the same at every retry and for every webhook
	Type      reverify.Event `json:"type"`
	CreatedAt time.Time      `json:"created_at"`
	Actor     string         `json:"actor,omitempty"`  // who changed the run (user@host, reverify-worker, …)
	Reason    string         `json:"reason,omitempty"` // why, e.g. the failure threshold crossed
	Run       *RunInfo       `json:"run,omitempty"`    // run events
	Fleet     *FleetInfo     `json:"fleet,omitempty"`  // fleet events
}

// RunInfo is the run of a run event, as it stood at the event.
type RunInfo struct {
	ID       string                    `json:"id"`
	Name     string                    `json:"name"`
	Status   reverify.RunStatus        `json:"status"`
	Priority reverify.Priority         `json:"priority"`
	Labels   map[string]string         `json:"labels"`
	Source   reverify.Source           `json:"source"`
	Total    int64                     `json:"total"`
	ByStatus map[reverify.Status]int64 `json:"by_status"`
}

// FleetInfo is what a fleet event says.
type FleetInfo struct {
	// Circuit is the circuit that opened: auth_circuit_open (the API
	// refused the key) or outage_circuit_open (most calls failed).
	Circuit         reverify.WaitReason `json:"circuit,omitempty"`
	CooldownSeconds float64             `json:"cooldown_seconds,omitempty"` // calls are held this long
	Day             string              `json:"day,omitempty"`              // the UTC day whose budget is spent
	DailyBudget     int64               `json:"daily_budget,omitempty"`
}

// runDetail is what the trigger records of a run's status change.
type runDetail struct {
	Status   reverify.RunStatus        `json:"status"`
	Total    int64                     `json:"total"`
	ByStatus map[reverify.Status]int64 `json:"by_status"`
}

// newBody builds the document of an event.
func newBody(ev postgres.NotificationEvent) ([]byte, error) {
	b := Body{ID: ev.ID, Type: ev.Event, CreatedAt: ev.CreatedAt.UTC(), Actor: ev.Actor, Reason: ev.Reason}
	if ev.Event.RunEvent() {
		var d runDetail
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			return nil, fmt.Errorf("event %d: detail: %w", ev.ID, err)
		}
		r := RunInfo{Status: d.Status, Total: d.Total, ByStatus: d.ByStatus, Labels: map[string]string{}}
		if ev.Run != nil {
			r.ID, r.Name, r.Priority, r.Source = ev.Run.ID, ev.Run.Name, ev.Run.Priority, ev.Run.Source
			if ev.Run.Labels != nil {
				r.Labels = ev.Run.Labels
			}
		}
		if r.ByStatus == nil {
			r.ByStatus = map[reverify.Status]int64{}
		}
		b.Run = &r
	} else {
		var f FleetInfo
		if err := json.Unmarshal(ev.Detail, &f); err != nil {
			return nil, fmt.Errorf("event %d: detail: %w", ev.ID, err)
		}
		b.Fleet = &f
	}
	return json.Marshal(b)
}

// slackBody is the Slack message of a document: {"text": …}.
func slackBody(doc []byte) ([]byte, error) {
	var b Body
	if err := json.Unmarshal(doc, &b); err != nil {
		return nil, fmt.Errorf("read event document: %w", err)
	}
	return json.Marshal(struct {
		Text string `json:"text"`
	}{SlackText(b)})
}

// SlackText says what an event is, in Slack's markup.
func SlackText(b Body) string {
	var s strings.Builder
	if r := b.Run; r != nil {
		run := fmt.Sprintf("Run *%s* (`%s`)", esc(r.Name), r.ID)
		switch b.Type {
		case reverify.EventConfirmationNeeded:
			fmt.Fprintf(&s, ":raised_hand: %s waits for confirmation: %d objects, up to %d API calls. Start it with `reverify runs confirm %s`.",
				run, r.Total, r.Total, r.ID)
		case reverify.EventRunStarted:
			fmt.Fprintf(&s, ":arrow_forward: %s started: %d objects from %s.", run, r.Total, esc(r.Source.String()))
		case reverify.EventRunCompleted:
			fmt.Fprintf(&s, ":white_check_mark: %s completed: %s.", run, counts(r))
		case reverify.EventRunFailed:
			fmt.Fprintf(&s, ":x: %s failed: %s (%s).", run, esc(orElse(b.Reason, "no reason given")), counts(r))
		case reverify.EventRunCancelled:
			fmt.Fprintf(&s, ":no_entry_sign: %s was cancelled by %s", run, esc(orElse(b.Actor, "someone")))
			if b.Reason != "" {
				fmt.Fprintf(&s, ": %s", esc(b.Reason))
			}
			fmt.Fprintf(&s, " (%s).", counts(r))
		default:
			fmt.Fprintf(&s, "%s: %s.", run, b.Type)
		}
		return s.String()
	}
	f := b.Fleet
	if f == nil {
		f = &FleetInfo{}
	}
	hold := (time.Duration(f.CooldownSeconds * float64(time.Second))).Round(time.Second)
	switch {
	case b.Type == reverify.EventCircuitOpened && f.Circuit == reverify.WaitAuthCircuit:
		fmt.Fprintf(&s, ":rotating_light: The liveness API refused the API key (%s): the fleet stops calling it for %s, and again while it refuses. Check REVERIFY_API_KEY and the API's IP allow-list.",
			esc(orElse(b.Reason, "401/403")), hold)
	case b.Type == reverify.EventCircuitOpened:
		fmt.Fprintf(&s, ":rotating_light: The liveness API looks down (most calls fail): the fleet stops calling it for %s, then tries again.", hold)
	case b.Type == reverify.EventBudgetSpent:
		fmt.Fprintf(&s, ":money_with_wings: The fleet's daily API budget (%d calls) is spent for %s (UTC): tasks wait for the next UTC day.", f.DailyBudget, f.Day)
	default:
		fmt.Fprintf(&s, "reverify: %s.", b.Type)
	}
	return s.String()
}

func counts(r *RunInfo) string {
	keys := make([]string, 0, len(r.ByStatus))
	for k, n := range r.ByStatus {
		if n != 0 {
			keys = append(keys, string(k))
		}
	}
	sort.Slice(keys, func(i, j int) bool { return rank(keys[i]) < rank(keys[j]) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, r.ByStatus[reverify.Status(k)])
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%d objects", r.Total)
	}
	return fmt.Sprintf("%d objects: %s", r.Total, strings.Join(parts, ", "))
}

func rank(s string) int {
	for i, st := range reverify.Statuses() {
		if string(st) == s {
			return i
		}
	}
	return len(reverify.Statuses())
}

// esc escapes text for Slack's markup (&, < and > are control characters).
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func orElse(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
