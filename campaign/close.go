package campaign

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"reverify"
)

// FailRunsOverThreshold fails every active run whose failures passed its
// threshold (its pending objects become cancelled) and returns their IDs.
// Each worker calls it every few seconds.
func (s *Service) FailRunsOverThreshold(ctx context.Context) ([]string, error) {
	ids, err := s.ledger.FailRunsOverThreshold(ctx)
	for _, id := range ids {
		s.log.WarnContext(ctx, "run failed: failure threshold crossed", "run_id", id)
		s.ended(ctx, id, reverify.RunFailed)
	}
	return ids, err
}

// CompleteFinishedRuns completes every running run with no pending object
// left and returns their IDs. Each worker calls it every few seconds.
func (s *Service) CompleteFinishedRuns(ctx context.Context) ([]string, error) {
	ids, err := s.ledger.CompleteFinishedRuns(ctx)
	for _, id := range ids {
		s.log.InfoContext(ctx, "run completed", "run_id", id)
		s.ended(ctx, id, reverify.RunCompleted)
	}
	return ids, err
}

// ended writes the completion report of a run that just ended, when the run
// asked for one (report_to). A report that cannot be written is logged: the
// run has ended all the same, and `reverify runs report` writes it later.
func (s *Service) ended(ctx context.Context, id string, status reverify.RunStatus) {
	if s.reports == nil {
		return
	}
	run, err := s.ledger.Run(ctx, id)
	if err != nil || run.ReportTo == "" {
		return
	}
	where, err := s.reports.Write(ctx, run.ID, run.ReportTo)
	if err != nil {
		s.log.ErrorContext(ctx, "completion report not written; write it with `reverify runs report`", "run_id", run.ID, "err", err)
		return
	}
	s.log.InfoContext(ctx, "completion report written", "run_id", run.ID, "status", status, "report", where)
}

// DefaultReportDir is where `runs report` writes when neither the command
// nor the run names a destination.
const DefaultReportDir = "reports"

// ErrNoReports means the Service was built without a Reporter.
var ErrNoReports = errors.New("campaign: no completion report writer configured")

// WriteReport writes a run's completion report to dest; "" means the run's
// report_to, else DefaultReportDir. It returns where results.csv went, which
// the audit log records (erasure lists the reports naming a subject).
func (s *Service) WriteReport(ctx context.Context, id, dest string, who reverify.Actor) (string, error) {
	if s.reports == nil {
		return "", ErrNoReports
	}
	run, err := s.ledger.Run(ctx, id)
	if err != nil {
		return "", err
	}
	dest = strings.TrimSpace(dest)
	if dest == "" {
		dest = run.ReportTo
	}
	if dest == "" {
		dest = DefaultReportDir
	}
	where, err := s.reports.Write(ctx, run.ID, dest)
	if err != nil {
		return "", fmt.Errorf("completion report of run %s: %w", run.ID, err)
	}
	if who.Source != "" {
		loc := where
		if abs, err := filepath.Abs(where); err == nil && !strings.HasPrefix(where, "s3://") {
			loc = abs // found again from any directory
		}
		if err := s.ledger.Audit(ctx, who, reverify.AuditReportWrite, run.ID, nil, map[string]any{"location": loc}); err != nil {
			return where, err
		}
	}
	return where, nil
}
