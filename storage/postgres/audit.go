package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"reverify"
)

// AuditEntry is one row of audit_log.
type AuditEntry struct {
	ID      int64                `json:"id"`
	At      time.Time            `json:"at"`
	Actor   string               `json:"actor"`
	Source  reverify.AuditSource `json:"source"`
	Action  reverify.AuditAction `json:"action"`
	RunID   string               `json:"run_id,omitempty"`
	Bucket  string               `json:"bucket,omitempty"`
	KeyHash string               `json:"key_hash,omitempty"`
	Detail  map[string]any       `json:"detail,omitempty"`
	Remote  string               `json:"remote,omitempty"`
}

// audit appends an entry for what a did, in q's transaction, when a says
// where a person or the scheduler acted from; the system's own actions
// (a.Source "") are in the runs' status history only. obj may be nil; its
// key is stored as its hash, never as it is.
func audit(ctx context.Context, q execer, a reverify.Actor, action reverify.AuditAction, runID string,
	obj *reverify.ObjectRef, detail map[string]any) error {
	if a.Source == "" {
		return nil
	}
	if detail == nil {
		detail = map[string]any{}
	}
	if a.Why != "" {
		detail["reason"] = a.Why
	}
	d, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("encode audit detail: %w", err)
	}
	var bucket, hash string
	if obj != nil {
		bucket, hash = obj.Bucket, reverify.KeyHash(obj.Bucket, obj.Key)
	}
	who := a.Who
	if who == "" {
		who = "unknown"
	}
	_, err = q.Exec(ctx, `INSERT INTO audit_log (actor, source, action, run_id, bucket, key_hash, detail, remote)
		VALUES ($1, $2, $3, nullif($4, '')::uuid, nullif($5, ''), nullif($6, ''), $7, $8)`,
		who, a.Source, action, runID, bucket, hash, d, a.From)
	if err != nil {
		return fmt.Errorf("record %s in the audit log: %w", action, err)
	}
	return nil
}

// Audit appends an entry to the audit log for what a did (an image view, a
// report written); a.Source must be set.
func (s *Store) Audit(ctx context.Context, a reverify.Actor, action reverify.AuditAction, runID string,
	obj *reverify.ObjectRef, detail map[string]any) error {
	if a.Source == "" {
		return fmt.Errorf("audit %s: no source", action)
	}
	if runID != "" {
		if err := checkRunID(runID); err != nil {
			return err
		}
	}
	return classify(audit(ctx, s.pool, a, action, runID, obj, detail))
}

// AuditFilter selects audit entries; zero fields select everything.
type AuditFilter struct {
	Since, Until time.Time
	Actor        string
	RunID        string
	Action       reverify.AuditAction
	Bucket       string // with KeyHash: one object
	KeyHash      string
	Before       int64 // only entries with a smaller ID (paging: the last ID of the previous page)
	Limit        int   // default 100
}

// AuditLog returns audit entries matching f, newest first.
func (s *Store) AuditLog(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if f.RunID != "" {
		if err := checkRunID(f.RunID); err != nil {
			return nil, err
		}
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if !f.Since.IsZero() {
		add("at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("at < $%d", f.Until)
	}
	if f.Actor != "" {
		add("actor = $%d", f.Actor)
	}
	if f.RunID != "" {
		add("run_id = $%d::uuid", f.RunID)
	}
	if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if f.Bucket != "" {
		add("bucket = $%d", f.Bucket)
	}
	if f.KeyHash != "" {
		add("key_hash = $%d", f.KeyHash)
	}
	if f.Before > 0 {
		add("id < $%d", f.Before)
	}
	q := `SELECT id, at, actor, source, action, coalesce(run_id::text, '') AS run_id, coalesce(bucket, '') AS bucket,
		coalesce(key_hash, '') AS key_hash, detail, remote FROM audit_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit)
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, classify(fmt.Errorf("read the audit log: %w", err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Source, &e.Action, &e.RunID, &e.Bucket, &e.KeyHash, &e.Detail, &e.Remote)
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, classify(fmt.Errorf("read the audit log: %w", err))
	}
	return out, nil
}
