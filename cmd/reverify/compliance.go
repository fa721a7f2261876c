package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"reverify"
	"reverify/campaign"
	"reverify/storage/postgres"
)

// parseAge reads a duration that may count days: 400d, 36h, 90m, 1d12h.
func parseAge(s string) (time.Duration, error) {
	var days time.Duration
	if d, rest, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q: want a duration such as 400d, 36h or 1d12h", s)
		}
		days, s = time.Duration(n)*24*time.Hour, rest
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a duration such as 400d, 36h or 1d12h", s)
	}
	return days + d, nil
}

// parseInstant reads a point in time: RFC 3339 (2026-11-01T00:00:00Z), a date
// (2026-11-01, UTC) or an age (24h, 7d: that long ago).
func parseInstant(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	d, err := parseAge(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-11-01T08:00:00Z), a date (2026-11-01) or an age (24h, 7d)", s)
	}
	return now.Add(-d), nil
}

func (a *app) auditCommand() *cobra.Command {
	var since, until, action, bucket, key string
	var f postgres.AuditFilter
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log: run actions, image views, review decisions, erasures and prunes",
		Long: `Show the audit log, newest first: who did what, when (UTC) and from where.
Objects are named by bucket and key hash; --object-key is hashed before the
query, so the key itself is never stored or sent. Page back with --before
set to the smallest ID printed.`,
		Example: `  reverify audit --since 24h
  reverify audit --action image.view --actor alice@example.com -o json
  reverify audit --bucket kyc --object-key selfies/123.jpg
  reverify audit --run "$RUN" --since 2026-11-01 --until 2026-12-01T00:00:00Z`,
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		now := time.Now()
		var err error
		if since != "" {
			if f.Since, err = parseInstant(since, now); err != nil {
				return usagef("invalid --since %v", err)
			}
		}
		if until != "" {
			if f.Until, err = parseInstant(until, now); err != nil {
				return usagef("invalid --until %v", err)
			}
		}
		if action != "" {
			if !slices.Contains(reverify.AuditActions(), reverify.AuditAction(action)) {
				return usagef("invalid --action %q: want one of %s", action, joinActions())
			}
			f.Action = reverify.AuditAction(action)
		}
		if key != "" {
			if bucket == "" {
				return usagef("--object-key needs --bucket (the key hash covers both)")
			}
			f.KeyHash = reverify.KeyHash(bucket, key)
		}
		f.Bucket = bucket
		if f.Limit <= 0 {
			return usagef("invalid --limit %d: want at least 1", f.Limit)
		}
		return a.withStore(cmd.Context(), func(s *postgres.Store) error {
			entries, err := s.AuditLog(cmd.Context(), f)
			if err != nil {
				return err
			}
			if out.structured() {
				if entries == nil {
					entries = []postgres.AuditEntry{}
				}
				return writeDoc(a.stdout, out.value, entries)
			}
			return writeAudit(a.stdout, entries)
		})
	}
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "", "entries at or after: RFC 3339, a date (UTC) or an age (24h, 7d)")
	fl.StringVar(&until, "until", "", "entries before: RFC 3339, a date (UTC) or an age")
	fl.StringVar(&f.Actor, "actor", "", "entries of this actor only")
	fl.StringVar(&f.RunID, "run", "", "entries about this run only")
	fl.StringVar(&action, "action", "", "entries of this action only: "+joinActions())
	fl.StringVar(&bucket, "bucket", "", "entries about objects of this bucket")
	fl.StringVar(&key, "object-key", "", "entries about this object (with --bucket; hashed before the query)")
	fl.Int64Var(&f.Before, "before", 0, "entries with a smaller ID only (the next page)")
	fl.IntVar(&f.Limit, "limit", 100, "at most this many entries")
	return cmd
}

func joinActions() string {
	var s []string
	for _, a := range reverify.AuditActions() {
		s = append(s, string(a))
	}
	return strings.Join(s, ", ")
}

// writeAudit prints entries as a table; times in UTC, marked Z.
func writeAudit(w io.Writer, entries []postgres.AuditEntry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAT (UTC)\tACTOR\tSOURCE\tACTION\tRUN\tOBJECT\tFROM\tDETAIL")
	for _, e := range entries {
		obj := "-"
		if e.KeyHash != "" {
			obj = e.Bucket + " key_hash=" + e.KeyHash
		}
		detail := "-"
		if len(e.Detail) > 0 {
			b, err := json.Marshal(e.Detail)
			if err != nil {
				return fmt.Errorf("encode audit detail: %w", err)
			}
			detail = string(b)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.At.UTC().Format("2006-01-02T15:04:05Z"), e.Actor,
			e.Source, e.Action, orDash(e.RunID), obj, orDash(e.Remote), detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(entries) > 0 {
		_, err := fmt.Fprintf(w, "%d entries; older ones with --before %d\n", len(entries), entries[len(entries)-1].ID)
		return err
	}
	_, err := fmt.Fprintln(w, "no entries")
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) eraseCommand() *cobra.Command {
	var bucket, keysFrom, reason string
	var keys []string
	cmd := &cobra.Command{
		Use:   "erase --bucket B (--key K ... | --keys-from FILE)",
		Short: "Erase data subjects (objects) from every run: results, reviews, queued tasks; API calls keep a key hash",
		Long: `Erase data subjects from every run, e.g. on a GDPR Art. 17 request. For each
object (bucket and key): its verifications rows and reviews are deleted (the
runs' counters follow), its tasks still in Redis are deleted, and the API calls
made for it stay as invoice evidence with the key replaced by its hash. The
erasure is recorded in the audit log by key hash. Completion reports already
written that name a subject are listed: remove them yourself. A task being
processed cannot be deleted: run erase again once it is done (it says so).`,
		Example: `  REVERIFY_ACTOR=dpo@example.com reverify erase --bucket kyc --key selfies/123.jpg --reason "DSR-4711"
  reverify erase --bucket kyc --keys-from subjects.txt -o json`,
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if bucket == "" {
			return usagef("erase needs --bucket")
		}
		if keysFrom != "" {
			more, err := a.readKeys(keysFrom)
			if err != nil {
				return err
			}
			keys = append(keys, more...)
		}
		var subjects []reverify.ObjectRef
		for _, k := range keys {
			if k == "" {
				return usagef("--key must not be empty")
			}
			subjects = append(subjects, reverify.ObjectRef{Bucket: bucket, Key: k})
		}
		if len(subjects) == 0 {
			return usagef("erase needs --key or --keys-from with at least one key")
		}
		return a.withCampaigns(cmd.Context(), needs{ledger: true, tasks: true, mayObjects: true}, func(s *campaign.Service) error {
			e, err := s.Erase(cmd.Context(), subjects, actor(reason))
			if err != nil {
				return err
			}
			if e.Runs == nil {
				e.Runs = []postgres.ErasedRun{}
			}
			if e.Reports == nil {
				e.Reports = []campaign.ReportRef{}
			}
			if out.structured() {
				return writeDoc(a.stdout, out.value, e)
			}
			return writeErased(a.stdout, e)
		})
	}
	fl := cmd.Flags()
	fl.StringVar(&bucket, "bucket", "", "bucket of the objects to erase")
	fl.StringArrayVar(&keys, "key", nil, "key of an object to erase (repeatable)")
	fl.StringVar(&keysFrom, "keys-from", "", "file of keys to erase, one per line (- = standard input)")
	fl.StringVar(&reason, "reason", "", "why (kept in the audit log, e.g. the request's reference)")
	return cmd
}

// readKeys reads one key per line from a file or standard input; blank
// lines are skipped, nothing else is trimmed (keys may hold spaces).
func (a *app) readKeys(name string) ([]string, error) {
	var r io.Reader = a.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("--keys-from: %w", err)
		}
		defer f.Close()
		r = f
	}
	var keys []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		if k := strings.TrimSuffix(sc.Text(), "\r"); k != "" {
			keys = append(keys, k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--keys-from: %w", err)
	}
	return keys, nil
}

func writeErased(w io.Writer, e campaign.Erased) error {
	fmt.Fprintf(w, "erased %d data subjects from %d runs\n", e.Subjects, len(e.Runs))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  verifications deleted\t%d\n", e.Verifications)
	fmt.Fprintf(tw, "  reviews deleted\t%d\n", e.Reviews)
	fmt.Fprintf(tw, "  api_calls kept, key hashed\t%d\n", e.APICallsHashed)
	fmt.Fprintf(tw, "  queued tasks deleted\t%d\n", e.TasksDeleted)
	if e.PlanTokens > 0 {
		fmt.Fprintf(tw, "  listing positions cleared\t%d\n", e.PlanTokens)
	}
	tw.Flush()
	writeRuns(w, e.Runs)
	if e.TasksActive > 0 {
		fmt.Fprintf(w, "warning: %d tasks of these subjects are being processed; run erase again once they are done\n", e.TasksActive)
	}
	return writeReports(w, e.Reports, "completion reports naming these subjects (remove them):")
}

func writeRuns(w io.Writer, runs []postgres.ErasedRun) {
	if len(runs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tNAME\tSTATUS\tVERIFICATIONS\tREVIEWS\tAPI CALLS HASHED")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", r.ID, r.Name, r.Status, r.Verifications, r.Reviews, r.APICallsHashed)
	}
	tw.Flush()
}

func writeReports(w io.Writer, refs []campaign.ReportRef, title string) error {
	if len(refs) == 0 {
		return nil
	}
	fmt.Fprintln(w, title)
	for _, r := range refs {
		line := "  " + r.Location + " (run " + r.RunID + ")"
		if r.Note != "" {
			line += ": " + r.Note
		}
		fmt.Fprintln(w, line)
	}
	return nil
}

func (a *app) pruneCommand() *cobra.Command {
	var olderThan, reason string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "prune --older-than AGE [--dry-run]",
		Short: "Apply erasure to whole ended runs older than a retention period; API calls keep key hashes",
		Long: `Prune every ended run (completed, cancelled, failed) that finished more than
--older-than ago: its objects (verifications rows), reviews and tasks left in
Redis are removed, its API calls stay as invoice evidence with keys replaced by
their hashes, and the run itself stays (status history, counts of calls) marked
pruned. Each pruned run is recorded in the audit log. Completion reports written
for the runs are listed: remove them yourself. --dry-run only lists.`,
		Example: `  reverify prune --older-than 400d --dry-run
  REVERIFY_ACTOR=retention-job reverify prune --older-than 400d -o json`,
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if olderThan == "" {
			return usagef("prune needs --older-than (e.g. 400d)")
		}
		age, err := parseAge(olderThan)
		if err != nil {
			return usagef("invalid --older-than %v", err)
		}
		if age <= 0 {
			return usagef("invalid --older-than %q: want a positive age", olderThan)
		}
		n := needs{ledger: true, mayObjects: true, tasks: !dryRun}
		return a.withCampaigns(cmd.Context(), n, func(s *campaign.Service) error {
			p, err := s.Prune(cmd.Context(), age, dryRun, actor(reason))
			if err != nil {
				return err
			}
			if p.Runs == nil {
				p.Runs = []postgres.ErasedRun{}
			}
			if p.Reports == nil {
				p.Reports = []campaign.ReportRef{}
			}
			if out.structured() {
				return writeDoc(a.stdout, out.value, p)
			}
			verb := "pruned"
			if dryRun {
				verb = "would prune (dry run)"
			}
			var objs, revs, calls int64
			for _, r := range p.Runs {
				objs, revs, calls = objs+r.Verifications, revs+r.Reviews, calls+r.APICallsHashed
			}
			fmt.Fprintf(a.stdout, "%s %d runs that finished before %s: %d verifications, %d reviews deleted; %d api_calls kept with keys hashed; %d queued tasks deleted\n",
				verb, len(p.Runs), p.Before.UTC().Format(time.RFC3339), objs, revs, calls, p.TasksDeleted)
			writeRuns(a.stdout, p.Runs)
			return writeReports(a.stdout, p.Reports, "completion reports of these runs (remove them):")
		})
	}
	fl := cmd.Flags()
	fl.StringVar(&olderThan, "older-than", "", "prune runs that finished more than this long ago: 400d, 36h, 1d12h")
	fl.BoolVar(&dryRun, "dry-run", false, "list what would be pruned and change nothing")
	fl.StringVar(&reason, "reason", "", "why (kept in the audit log)")
	return cmd
}
