package accounts

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// TokenInfo is an API token as its owner sees it (never the token).
type TokenInfo struct {
	ID         int64      `json:"id"`
	TeamID     int64      `json:"team_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
}

// Tokens lists the user's live API tokens (of teams they still belong
// to).
func (s *Service) Tokens(ctx context.Context, userID int64) ([]TokenInfo, error) {
	rows, err := s.Pool.Query(ctx, `SELECT t.id, t.team_id, t.name, t.prefix, t.scopes, t.expires_at, t.last_used_at, t.created_at
		FROM api_tokens t JOIN memberships m ON m.team_id = t.team_id AND m.user_id = t.user_id
		WHERE t.user_id = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
		ORDER BY t.id DESC`, userID)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TokenInfo, error) {
		var t TokenInfo
		err := r.Scan(&t.ID, &t.TeamID, &t.Name, &t.Prefix, &t.Scopes, &t.ExpiresAt, &t.LastUsedAt, &t.CreatedAt)
		return t, err
	})
	if out == nil {
		out = []TokenInfo{}
	}
	return out, err
}

// RevokeToken revokes one of the user's own API tokens and returns its
// team; ErrForbidden when it is not theirs or already revoked.
func (s *Service) RevokeToken(ctx context.Context, userID, tokenID int64) (int64, error) {
	var team int64
	err := s.Pool.QueryRow(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
		RETURNING team_id`, tokenID, userID).Scan(&team)
	if err == pgx.ErrNoRows {
		return 0, ErrForbidden
	}
	return team, err
}
