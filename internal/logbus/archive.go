package logbus

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Archive reads apps' stored runtime log lines.
type Archive struct {
	Pool *pgxpool.Pool
}

// Search selects stored lines of one app of a team.
type Search struct {
	TeamID, AppID int64
	// Query keeps lines containing it, case-insensitively ("": all);
	// % and _ mean themselves.
	Query string
	// Since and Until bound the lines' times (nil: open).
	Since, Until *time.Time
	// Stream is stdout or stderr ("": both).
	Stream string
	// Before continues after a page: lines with a smaller id (0: latest).
	Before int64
	// Limit is the page size (at most 1000; 0: 200).
	Limit int
}

// StoredLine is a stored log line with its id.
type StoredLine struct {
	ID     int64     `json:"id"`
	TS     time.Time `json:"ts"`
	Stream string    `json:"stream"`
	Line   string    `json:"line"`
}

// Search returns the lines q selects, newest first (never nil).
func (a *Archive) Search(ctx context.Context, q Search) ([]StoredLine, error) {
	if q.Limit <= 0 || q.Limit > 1000 {
		q.Limit = 200
	}
	rows, err := a.Pool.Query(ctx, `SELECT l.id, l.ts, l.stream, l.line FROM runtime_logs l JOIN apps a ON a.id = l.app_id
		WHERE a.team_id = $1 AND l.app_id = $2
			AND ($3 = '' OR strpos(lower(l.line), lower($3)) > 0)
			AND ($4::timestamptz IS NULL OR l.ts >= $4) AND ($5::timestamptz IS NULL OR l.ts < $5)
			AND ($6 = '' OR l.stream = $6) AND ($7 = 0 OR l.id < $7)
		ORDER BY l.id DESC LIMIT $8`, q.TeamID, q.AppID, q.Query, q.Since, q.Until, q.Stream, q.Before, q.Limit)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StoredLine, error) {
		var l StoredLine
		err := row.Scan(&l.ID, &l.TS, &l.Stream, &l.Line)
		return l, err
	})
	if out == nil {
		out = []StoredLine{}
	}
	return out, err
}
