package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"reverify"
	"reverify/notify"
	"reverify/storage/postgres"
	"reverify/tasks"
)

// Spec describes a run to create.
type Spec struct {
	Name      string // default: the source, as a person would name it
	Source    reverify.Source
	Filters   tasks.Filters
	Queue     string // base asynq queue; default tasks.DefaultQueue
	Priority  reverify.Priority
	Labels    map[string]string
	Threshold *reverify.Threshold // nil: reverify.DefaultThreshold
	ReportTo  string              // where the completion report goes when the run ends ("" = on demand only)
	// Notify are webhooks told of the run's events ([json:|slack:]URL,
	// see notify.ParseHook), besides the fleet's own.
	Notify []string
	// MaxObjectBytes is the size over which the dry run counts an object as
	// not sent; default reverify.DefaultMaxObjectBytes.
	MaxObjectBytes int64
	// ManifestFormat is how a manifest source is read (auto, csv, lines).
	ManifestFormat tasks.ManifestFormat
	Gate           Gate
	// InFleet lists a prefix source inside the worker fleet (a resumable
	// run:plan task) instead of in the caller.
	InFleet bool
	// TriggerKey makes creation idempotent (a scheduler firing's task ID).
	TriggerKey string
	Actor      reverify.Actor
	// ReuseResults lets an object whose bytes were scored in another run
	// within Filters.NotVerifiedSince take that result, without a call
	// (docs/dedupe.md). It needs NotVerifiedSince.
	ReuseResults bool
	// Limits are the run's own caps on its API calls (docs/rate.md,
	// "Per-run caps").
	Limits reverify.RunLimits
}

// Gate says when a filled run waits for `runs confirm` before any object
// is sent: always (Confirm), or when it has more than Above objects.
type Gate struct {
	Confirm bool  `json:"confirm,omitempty"`
	Above   int64 `json:"confirm_above,omitempty"`
}

func (g Gate) counts() bool { return g.Confirm || g.Above > 0 }

// holds reports whether a run of total objects waits for confirmation.
func (g Gate) holds(total int64) bool { return g.Confirm || (g.Above > 0 && total > g.Above) }

// Options is what runs.options records of a Spec beyond its source.
type Options struct {
	Filters        tasks.Filters        `json:"filters"`
	MaxObjectBytes int64                `json:"max_object_bytes,omitempty"`
	ManifestFormat tasks.ManifestFormat `json:"manifest_format,omitempty"`
	Gate           Gate                 `json:"gate"`
	ReuseResults   bool                 `json:"reuse_results,omitempty"`
}

// OptionsOf decodes a run's options; a run without them has none.
func OptionsOf(run reverify.Run) (Options, error) {
	var o Options
	if len(run.Options) == 0 {
		return o, nil
	}
	if err := json.Unmarshal(run.Options, &o); err != nil {
		return o, fmt.Errorf("run %s: options: %w", run.ID, err)
	}
	return o, nil
}

// ErrInvalidSpec wraps everything Validate refuses.
var ErrInvalidSpec = errors.New("invalid run")

// Validate checks a spec before anything is recorded and fills defaults.
func (sp *Spec) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, args...))
	}
	switch sp.Source.Kind {
	case reverify.SourcePrefix:
		if sp.Source.Bucket == "" {
			return bad("a prefix source needs a bucket")
		}
	case reverify.SourceManifest, reverify.SourceInventory:
		if sp.Source.Manifest == "" {
			return bad("a %s source needs a manifest", sp.Source.Kind)
		}
		if sp.InFleet {
			return bad("only a bucket/prefix can be listed in the worker fleet, not a %s", sp.Source.Kind)
		}
	default:
		return bad("unknown source kind %q", sp.Source.Kind)
	}
	if sp.Queue == "" {
		sp.Queue = tasks.DefaultQueue
	}
	p, err := reverify.ParsePriority(string(sp.Priority))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	sp.Priority = p
	if sp.Threshold != nil {
		if err := sp.Threshold.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
		}
	}
	if err := sp.Filters.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	if sp.ReuseResults && sp.Filters.NotVerifiedSince <= 0 {
		return bad("reusing results of other runs needs not-verified-since: how old a result may be")
	}
	if sp.MaxObjectBytes <= 0 {
		sp.MaxObjectBytes = reverify.DefaultMaxObjectBytes
	}
	if err := sp.Limits.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	if sp.Gate.Above < 0 {
		return bad("the confirmation size must not be negative")
	}
	for i, h := range sp.Notify {
		w, err := notify.ParseHook(h)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
		}
		sp.Notify[i] = notifySpec(w)
	}
	if sp.Name == "" {
		sp.Name = sp.Source.String()
	}
	return nil
}

// notifySpec is how a run stores a webhook: its format made explicit.
func notifySpec(w postgres.Webhook) string { return string(w.Format) + ":" + w.URL }

// Create records a new run in status enqueuing. With InFleet, it also
// queues the run:plan task that lists the source in the worker fleet; the
// caller fills it otherwise (Fill). A second Create with the same
// TriggerKey returns the first run.
func (s *Service) Create(ctx context.Context, sp Spec) (reverify.Run, error) {
	if err := sp.Validate(); err != nil {
		return reverify.Run{}, err
	}
	run, err := s.ledger.CreateRun(ctx, postgres.NewRun{
		Name: sp.Name, Queue: sp.Priority.Queue(sp.Queue), Source: sp.Source, Labels: sp.Labels,
		Options: Options{Filters: sp.Filters, MaxObjectBytes: sp.MaxObjectBytes, ManifestFormat: sp.ManifestFormat, Gate: sp.Gate,
			ReuseResults: sp.ReuseResults},
		Priority: sp.Priority, Threshold: sp.Threshold, ReportTo: sp.ReportTo, Notify: sp.Notify,
		TriggerKey: sp.TriggerKey, Actor: sp.Actor, Limits: sp.Limits,
		ReuseWithin: reuseWithin(sp),
	})
	if err != nil {
		return reverify.Run{}, err
	}
	if sp.InFleet {
		if err := s.queuePlan(ctx, run); err != nil {
			return run, err
		}
	}
	return run, nil
}

// queuePlan queues a run's run:plan task; a task already queued for the
// run is left as it is.
func (s *Service) queuePlan(ctx context.Context, run reverify.Run) error {
	if s.queue == nil {
		return ErrNoQueue
	}
	task, err := tasks.NewPlanTask(run.ID, run.Queue)
	if err != nil {
		return err
	}
	if _, err := s.queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("run %s: queue its run:plan task: %w", run.ID, err)
	}
	return nil
}

// reuseWithin is how old another run's result of the same bytes may be
// for the run to take it; 0 reuses none.
func reuseWithin(sp Spec) time.Duration {
	if !sp.ReuseResults {
		return 0
	}
	return time.Duration(sp.Filters.NotVerifiedSince)
}
