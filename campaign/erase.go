package campaign

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"reverify"
	"reverify/storage/objects"
	"reverify/storage/postgres"
	"reverify/tasks"
)

// Tasks finds and deletes tasks in the queue; *asynq.Inspector satisfies
// it. Erasure needs it: a task's payload carries its object's key.
type Tasks interface {
	ListPendingTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListScheduledTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListRetryTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListArchivedTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListCompletedTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListActiveTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	DeleteTask(queue, id string) error
}

// ErrNoTasks means erasure was asked of a Service built without Tasks.
var ErrNoTasks = errors.New("campaign: no task inspector configured")

// ReportRef is a completion report already written that names a data
// subject (erase) or a pruned run (prune): the operator removes it.
type ReportRef struct {
	RunID    string `json:"run_id"`
	Location string `json:"location"`
	Subjects int    `json:"subjects,omitempty"` // erase: how many of the subjects it names
	Note     string `json:"note,omitempty"`     // why it could not be read, if so
}

// Erased is what Erase changed.
type Erased struct {
	postgres.Erasure
	TasksDeleted int64 `json:"tasks_deleted"`
	// TasksActive are tasks of the subjects being processed: they cannot
	// be deleted; erase again once they are done.
	TasksActive int64       `json:"tasks_active"`
	Reports     []ReportRef `json:"reports"`
}

// Erase removes data subjects from every run: their tasks still in the
// queue (before and after the ledger, so a task the feeder sent meanwhile
// goes too), their rows and reviews in the ledger, the keys of their API
// calls (replaced by their hashes), and lists the completion reports
// already written that name them. The erasure is in the audit log.
func (s *Service) Erase(ctx context.Context, subjects []reverify.ObjectRef, who reverify.Actor) (Erased, error) {
	if s.tasks == nil {
		return Erased{}, ErrNoTasks
	}
	want := map[[2]string]bool{}
	for _, o := range subjects {
		if o.Bucket == "" || o.Key == "" {
			return Erased{}, fmt.Errorf("%w: every data subject needs a bucket and a key", ErrInvalidSpec)
		}
		want[[2]string{o.Bucket, o.Key}] = true
	}
	if len(want) == 0 {
		return Erased{}, fmt.Errorf("%w: no data subject given", ErrInvalidSpec)
	}
	runs, err := s.ledger.SubjectRuns(ctx, subjects)
	if err != nil {
		return Erased{}, err
	}
	match := func(p tasks.VerifyPayload) bool { return want[[2]string{p.Bucket, p.Key}] }
	var out Erased
	if err := s.removeTasks(ctx, queuesOf(runs), match, &out); err != nil {
		return out, err
	}
	e, err := s.ledger.EraseObjects(ctx, subjects, who)
	if err != nil {
		return out, err
	}
	out.Erasure = e
	out.TasksActive = 0 // counted again by the second pass
	if err := s.removeTasks(ctx, queuesOf(e.Runs), match, &out); err != nil {
		return out, err
	}
	for _, r := range e.Runs {
		refs, err := s.reportsOf(ctx, r)
		if err != nil {
			return out, err
		}
		for _, ref := range refs {
			n, err := s.reportNames(ctx, ref.Location, want)
			switch {
			case errors.Is(err, objects.ErrNotFound) || errors.Is(err, os.ErrNotExist):
				continue // removed already
			case err != nil:
				ref.Note = "could not be read: " + err.Error()
			case n == 0:
				continue
			}
			ref.Subjects = n
			out.Reports = append(out.Reports, ref)
		}
	}
	return out, nil
}

// Pruned is what Prune did, or would do with DryRun.
type Pruned struct {
	Before       time.Time            `json:"finished_before"`
	DryRun       bool                 `json:"dry_run"`
	Runs         []postgres.ErasedRun `json:"runs"`
	TasksDeleted int64                `json:"tasks_deleted"`
	Reports      []ReportRef          `json:"reports"`
}

// Prune applies erasure to whole runs: every ended run that finished more
// than olderThan ago loses its objects, reviews and queued tasks; its API
// calls stay as invoice evidence with keys hashed; the completion reports
// written for it are listed. dryRun only says which runs and how much.
func (s *Service) Prune(ctx context.Context, olderThan time.Duration, dryRun bool, who reverify.Actor) (Pruned, error) {
	if olderThan <= 0 {
		return Pruned{}, fmt.Errorf("%w: prune needs a positive age (--older-than)", ErrInvalidSpec)
	}
	out := Pruned{Before: s.now().Add(-olderThan).UTC(), DryRun: dryRun}
	runs, err := s.ledger.PrunableRuns(ctx, out.Before)
	if err != nil {
		return out, err
	}
	if !dryRun && s.tasks == nil {
		return out, ErrNoTasks
	}
	for _, r := range runs {
		if !dryRun {
			var e Erased
			id := r.ID
			if err := s.removeTasks(ctx, queuesOf([]postgres.ErasedRun{r}), func(p tasks.VerifyPayload) bool { return p.RunID == id }, &e); err != nil {
				return out, err
			}
			out.TasksDeleted += e.TasksDeleted
			if r, err = s.ledger.PruneRun(ctx, r.ID, who); err != nil {
				return out, err
			}
		}
		out.Runs = append(out.Runs, r)
		refs, err := s.reportsOf(ctx, r)
		if err != nil {
			return out, err
		}
		for _, ref := range refs {
			if err := s.reportExists(ctx, ref.Location); err == nil {
				out.Reports = append(out.Reports, ref)
			} else if !errors.Is(err, objects.ErrNotFound) && !errors.Is(err, os.ErrNotExist) {
				ref.Note = "could not be read: " + err.Error()
				out.Reports = append(out.Reports, ref)
			}
		}
	}
	return out, nil
}

// queuesOf returns every queue the runs' tasks may be in: each priority's
// queue of each run's base queue (a change of priority leaves tasks
// behind in the old one).
func queuesOf(runs []postgres.ErasedRun) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range runs {
		base := r.Priority.BaseQueue(r.Queue)
		for _, p := range reverify.Priorities() {
			if q := p.Queue(base); !seen[q] {
				seen[q] = true
				out = append(out, q)
			}
		}
	}
	return out
}

// taskPage is how many tasks one listing call returns.
const taskPage = 1000

// removeTasks deletes the verify tasks in queues whose payload matches,
// in every state a task can be deleted from; active ones are counted.
func (s *Service) removeTasks(ctx context.Context, queues []string, match func(tasks.VerifyPayload) bool, out *Erased) error {
	for _, q := range queues {
		listers := []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			s.tasks.ListPendingTasks, s.tasks.ListScheduledTasks, s.tasks.ListRetryTasks,
			s.tasks.ListArchivedTasks, s.tasks.ListCompletedTasks, s.tasks.ListActiveTasks,
		}
		for li, list := range listers {
			active := li == len(listers)-1
			var ids []string
			for page := 1; ; page++ {
				if err := ctx.Err(); err != nil {
					return err
				}
				infos, err := list(q, asynq.PageSize(taskPage), asynq.Page(page))
				if errors.Is(err, asynq.ErrQueueNotFound) {
					break
				}
				if err != nil {
					return fmt.Errorf("list tasks of queue %s: %w", q, err)
				}
				for _, ti := range infos {
					if ti.Type != tasks.TypeVerify {
						continue
					}
					p, err := tasks.ParseVerifyPayload(ti.Payload)
					if err == nil && match(p) {
						ids = append(ids, ti.ID)
					}
				}
				if len(infos) < taskPage {
					break
				}
			}
			if active {
				out.TasksActive += int64(len(ids))
				continue
			}
			for _, id := range ids {
				err := s.tasks.DeleteTask(q, id)
				if errors.Is(err, asynq.ErrTaskNotFound) {
					continue // done meanwhile
				}
				if err != nil {
					return fmt.Errorf("delete task %s: %w", id, err)
				}
				out.TasksDeleted++
			}
		}
	}
	return nil
}

// reportsOf returns where the completion reports of a run may have been
// written: under the run's report_to (when it ended) and wherever the
// audit log says `runs report` wrote one.
func (s *Service) reportsOf(ctx context.Context, r postgres.ErasedRun) ([]ReportRef, error) {
	var locs []string
	if r.ReportTo != "" {
		locs = append(locs, ReportLocation(r.ReportTo, r.ID))
	}
	written, err := s.ledger.ReportsWritten(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	for _, l := range written {
		if len(locs) == 0 || locs[0] != l {
			locs = append(locs, l)
		}
	}
	out := make([]ReportRef, len(locs))
	for i, l := range locs {
		out[i] = ReportRef{RunID: r.ID, Location: l}
	}
	return out, nil
}

// ReportLocation is where a completion report written under dest puts the
// run's results.csv (what report.Writer.Write returns).
func ReportLocation(dest, runID string) string {
	if rest, ok := strings.CutPrefix(dest, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		return "s3://" + bucket + "/" + path.Join(prefix, runID, "results.csv")
	}
	return filepath.Join(dest, runID, "results.csv")
}

func (s *Service) openReport(ctx context.Context, loc string) (io.ReadCloser, error) {
	if rest, ok := strings.CutPrefix(loc, "s3://"); ok {
		if s.objects == nil {
			return nil, errors.New("no S3 client configured")
		}
		bucket, key, _ := strings.Cut(rest, "/")
		return s.objects.Open(ctx, bucket, key)
	}
	return os.Open(loc)
}

func (s *Service) reportExists(ctx context.Context, loc string) error {
	rc, err := s.openReport(ctx, loc)
	if err != nil {
		return err
	}
	return rc.Close()
}

// reportNames counts the subjects a results.csv names.
func (s *Service) reportNames(ctx context.Context, loc string, want map[[2]string]bool) (int, error) {
	rc, err := s.openReport(ctx, loc)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	r := csv.NewReader(rc)
	r.FieldsPerRecord = -1
	found := map[[2]string]bool{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return len(found), fmt.Errorf("read %s: %w", loc, err)
		}
		if len(rec) >= 2 && want[[2]string{rec[0], rec[1]}] {
			found[[2]string{rec[0], rec[1]}] = true
		}
	}
	return len(found), nil
}
