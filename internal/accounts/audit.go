package accounts

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Entry is one audit record: a person (UserID, from IP; 0 for none) did
// Action to Target, in a team (TeamID; 0 for none).
type Entry struct {
	TeamID  int64
	UserID  int64
	IP      string
	Action  string
	Target  string
	Details map[string]any
}

// Write records e in q (the change's transaction when q is one).
func (e Entry) Write(ctx context.Context, q Execer) error {
	return Audit(ctx, q, e.TeamID, e.UserID, e.Action, e.Target, e.IP, e.Details)
}

// Hook gives the audit record of a change once the service making it
// knows the change's result; the service writes the record in the
// change's transaction. A nil hook records nothing.
type Hook[T any] func(T) Entry

// Write records the hook's entry for v in q (nothing for a nil hook).
func (h Hook[T]) Write(ctx context.Context, q Execer, v T) error {
	if h == nil {
		return nil
	}
	return h(v).Write(ctx, q)
}

// Change runs op in a transaction of pool and writes the audit record of
// its result (audit's) in the same transaction.
func Change[T any](ctx context.Context, pool *pgxpool.Pool, audit Hook[T], op func(tx pgx.Tx) (T, error)) (T, error) {
	var v T
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		if v, err = op(tx); err != nil {
			return err
		}
		return audit.Write(ctx, tx, v)
	})
	return v, err
}

// Record writes e on its own, after a change that has no transaction of
// its own to record it in.
func (s *Service) Record(ctx context.Context, e Entry) error { return e.Write(ctx, s.Pool) }

// AuditEvent is an audit record as a team's admins read it.
type AuditEvent struct {
	ID      int64          `json:"id"`
	Action  string         `json:"action"`
	Target  string         `json:"target"`
	Details map[string]any `json:"details"`
	IP      string         `json:"ip"`
	At      time.Time      `json:"at"`
	User    string         `json:"user"`
}

// AuditLog is the team's newest 200 audit records, newest first.
func (s *Service) AuditLog(ctx context.Context, teamID int64) ([]AuditEvent, error) {
	rows, err := s.Pool.Query(ctx, `SELECT e.id, e.action, e.target, e.details, e.ip, e.created_at, COALESCE(u.email, '')
		FROM audit_events e LEFT JOIN users u ON u.id = e.user_id WHERE e.team_id = $1 ORDER BY e.id DESC LIMIT 200`, teamID)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEvent, error) {
		var e AuditEvent
		err := row.Scan(&e.ID, &e.Action, &e.Target, &e.Details, &e.IP, &e.At, &e.User)
		return e, err
	})
	if out == nil {
		out = []AuditEvent{}
	}
	return out, err
}
