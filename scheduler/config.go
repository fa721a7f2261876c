// Package scheduler fires nightly (or any cron) campaigns. Schedules come
// from a config file; asynq's Scheduler enqueues a schedule:fire task at
// each firing, and the worker fleet turns it into a run whose name says which
// schedule fired and when, listed by a run:plan task. A Redis lock with a TTL
// lets exactly one of several scheduler processes act at a time.
package scheduler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reverify"
	"time"

	"github.com/robfig/cron/v3"

	"reverify/tasks"
)

// Schedule is one recurring campaign.
type Schedule struct {
	Name     string `json:"name"`
	Cron     string `json:"cron"`     // standard 5-field spec, e.g. "0 2 * * *"
	TimeZone string `json:"timezone"` // IANA name, default UTC
	Bucket   string `json:"bucket"`
	Prefix   string `json:"prefix"`
	// ModifiedWithin keeps objects modified within this long before the
	// firing, e.g. "24h" for "what changed yesterday".
	ModifiedWithin reverify.Duration `json:"modified_within,omitempty"`
	Filters        tasks.Filters     `json:"filters"`
	Priority       reverify.Priority `json:"priority,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Queue          string            `json:"queue,omitempty"` // base queue, default tasks.DefaultQueue
	ReportTo       string            `json:"report_to,omitempty"`
	// MaxRate and MaxInFlight are each run's own caps (enqueue --max-rate
	// --max-in-flight): calls per second ("20") or a rate schedule
	// ("TZ=Europe/Berlin Mon-Fri 08:00-20:00=5"), and calls in flight.
	MaxRate     string `json:"max_rate,omitempty"`
	MaxInFlight int    `json:"max_in_flight,omitempty"`
}

// Limits are the caps of the schedule's runs.
func (s Schedule) Limits() (reverify.RunLimits, error) {
	lim := reverify.RunLimits{MaxInFlight: s.MaxInFlight}
	if err := lim.ParseMaxRate(s.MaxRate); err != nil {
		return lim, err
	}
	return lim, lim.Validate()
}

// File is the scheduler's config file.
type File struct {
	Schedules []Schedule `json:"schedules"`
}

// Spec is the cron spec with its time zone, as asynq's scheduler reads it.
func (s Schedule) Spec() string {
	tz := s.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	return "CRON_TZ=" + tz + " " + s.Cron
}

// Load reads and checks a config file (JSON).
func Load(r io.Reader) (File, error) {
	var f File
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("schedule config: %w", err)
	}
	seen := map[string]bool{}
	var errs []error
	for i, s := range f.Schedules {
		if s.Name == "" || seen[s.Name] {
			errs = append(errs, fmt.Errorf("schedule %d: name missing or repeated", i+1))
		}
		seen[s.Name] = true
		if _, err := time.LoadLocation(s.TimeZone); err != nil {
			errs = append(errs, fmt.Errorf("schedule %q: timezone: %w", s.Name, err))
		}
		if _, err := cron.ParseStandard(s.Spec()); err != nil {
			errs = append(errs, fmt.Errorf("schedule %q: cron %q: %w", s.Name, s.Cron, err))
		}
		if s.Bucket == "" {
			errs = append(errs, fmt.Errorf("schedule %q: bucket missing", s.Name))
		}
		if _, err := reverify.ParsePriority(string(s.Priority)); err != nil {
			errs = append(errs, fmt.Errorf("schedule %q: %w", s.Name, err))
		}
		if err := s.Filters.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("schedule %q: %w", s.Name, err))
		}
		if _, err := s.Limits(); err != nil {
			errs = append(errs, fmt.Errorf("schedule %q: %w", s.Name, err))
		}
	}
	if len(f.Schedules) == 0 {
		errs = append(errs, errors.New("schedule config has no schedules"))
	}
	return f, errors.Join(errs...)
}
