// Package campaign owns a run's lifecycle: create it from a typed source and
// settings, fill it with the source's objects, hold it for confirmation,
// start it, pause, resume, cancel or retry it, put back tasks Redis lost,
// close it when it is done or fails its threshold, and trigger its
// completion report.
//
// The command line, the scheduler and the worker fleet call a *Service; none
// of them holds a lifecycle rule of its own. PostgreSQL (the Ledger) is the
// record of every run and object; the task queue only carries work.
package campaign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"reverify"
	"reverify/storage/objects"
	"reverify/storage/postgres"
)

// Ledger is the record of runs and objects; *postgres.Store satisfies it.
type Ledger interface {
	CreateRun(ctx context.Context, nr postgres.NewRun) (reverify.Run, error)
	Run(ctx context.Context, id string) (reverify.Run, error)

	AddObjects(ctx context.Context, runID string, objs []reverify.ObjectRef) (int64, error)
	RecentlyScored(ctx context.Context, objs []reverify.ObjectRef, since time.Time) (map[reverify.ObjectRef]bool, error)
	SavePlanToken(ctx context.Context, id, token string) error
	FinishPlan(ctx context.Context, id string) error

	StartRun(ctx context.Context, id string) error
	HoldForConfirmation(ctx context.Context, id string, a reverify.Actor) (reverify.Run, error)
	ConfirmRun(ctx context.Context, id string, a reverify.Actor) (reverify.Run, error)
	PauseRun(ctx context.Context, id string, a reverify.Actor) (reverify.Run, error)
	ResumeRun(ctx context.Context, id string, a reverify.Actor) (reverify.Run, error)
	CancelRun(ctx context.Context, id string, a reverify.Actor) (reverify.Run, int64, error)
	FailRun(ctx context.Context, id string, a reverify.Actor) (reverify.Run, int64, error)
	RetryObjects(ctx context.Context, id string, statuses []reverify.Status, a reverify.Actor) (reverify.Run, int64, error)
	SetPriority(ctx context.Context, id string, p reverify.Priority, queue string, a reverify.Actor) (reverify.Run, error)
	SetLimits(ctx context.Context, id string, lim reverify.RunLimits, a reverify.Actor) (reverify.Run, error)
	DeleteRun(ctx context.Context, id string, a reverify.Actor) (int64, error)
	CompleteFinishedRuns(ctx context.Context) ([]string, error)
	FailRunsOverThreshold(ctx context.Context) ([]string, error)

	DispatchedSeq(ctx context.Context, runID string) (int64, error)
	Dispatched(ctx context.Context, runID string, upTo int64) ([]postgres.Pending, error)

	Audit(ctx context.Context, a reverify.Actor, action reverify.AuditAction, runID string, obj *reverify.ObjectRef, detail map[string]any) error
	SubjectRuns(ctx context.Context, objs []reverify.ObjectRef) ([]postgres.ErasedRun, error)
	EraseObjects(ctx context.Context, objs []reverify.ObjectRef, a reverify.Actor) (postgres.Erasure, error)
	PrunableRuns(ctx context.Context, before time.Time) ([]postgres.ErasedRun, error)
	PruneRun(ctx context.Context, id string, a reverify.Actor) (postgres.ErasedRun, error)
	ReportsWritten(ctx context.Context, runID string) ([]string, error)
}

// Queue takes tasks; *asynq.Client satisfies it.
type Queue interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Objects lists and reads the storage a run's source lives in;
// *objects.Store satisfies it.
type Objects interface {
	List(ctx context.Context, bucket, prefix string, fn func(objects.Object) error) error
	ListPages(ctx context.Context, bucket, prefix, token string, fn func(page []objects.Object, next string) error) error
	CheckBucket(ctx context.Context, bucket string) error
	Open(ctx context.Context, bucket, key string) (io.ReadCloser, error)
}

// Reporter writes a run's completion report to dest (a directory or
// s3://bucket/prefix) and says where results.csv went; *report.Writer
// satisfies it.
type Reporter interface {
	Write(ctx context.Context, runID, dest string) (string, error)
}

// Deps are the Service's dependencies. Ledger is required by every method
// but Estimate; Queue by those that put tasks in the queue (in-fleet
// listing, Reconcile); Objects by sources that list or read storage;
// Reports is optional; Tasks is needed by Erase and Prune.
type Deps struct {
	Ledger  Ledger
	Queue   Queue
	Objects Objects
	Reports Reporter // nil: no completion reports
	Tasks   Tasks
	Logger  *slog.Logger
}

// Service runs campaigns. It is safe for concurrent use. It records runs
// and their objects; the Feeder dispatches them to the task queue.
type Service struct {
	ledger  Ledger
	queue   Queue
	objects Objects
	reports Reporter
	tasks   Tasks
	log     *slog.Logger
	now     func() time.Time
}

// New returns a Service over its dependencies.
func New(d Deps) *Service {
	s := &Service{ledger: d.Ledger, queue: d.Queue, objects: d.Objects, reports: d.Reports, tasks: d.Tasks, log: d.Logger, now: time.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// ErrNoQueue means a method that puts tasks in the queue was called on a
// Service built without a Queue.
var ErrNoQueue = errors.New("campaign: no task queue configured")

// Run returns one run.
func (s *Service) Run(ctx context.Context, id string) (reverify.Run, error) {
	return s.ledger.Run(ctx, id)
}

// interrupted explains how to finish an enqueue that stopped part way.
func interrupted(run reverify.Run, recorded int64, err error) error {
	return fmt.Errorf("run %s interrupted after %d objects (finish it with `reverify enqueue --run %s` and the same source): %w",
		run.ID, recorded, run.ID, err)
}
