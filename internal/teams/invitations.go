package teams

// Invitations: one-time links an owner or admin copies from the dashboard
// and sends however they like (no mail server is needed). Whoever opens
// the link signs in (or creates the account of the invited address) and
// joins the team with the invited role.

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/mail"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/errs"
)

// TokenPrefix starts every invitation token.
const TokenPrefix = "whi_"

// TTL is how long an invitation link works.
const TTL = 7 * 24 * time.Hour

// Invitation is a pending (or used) invitation; the token is never stored.
type Invitation struct {
	ID        int64     `json:"id"`
	TeamID    int64     `json:"team_id"`
	TeamName  string    `json:"team_name"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// AcceptedBy is the account that used the invitation (Join, SignUp).
	AcceptedBy int64 `json:"-"`
}

// Errors for the person (errs kinds).
var (
	ErrNotFound = errs.New(errs.NotFound, "this invitation link is unknown, used or expired")
	ErrWrongFor = errs.New(errs.Forbidden, "this invitation is for another e-mail address: sign in with the invited address")
	ErrMember   = errs.New(errs.Conflict, "already a member of this team")
)

// Service keeps teams, memberships and invitations in Postgres.
type Service struct {
	Pool *pgxpool.Pool
	// Accounts creates the account of an invited address (SignUp).
	Accounts *accounts.Service
	Now      func() time.Time // tests; default time.Now
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Invite makes an invitation of email into team with role and returns its
// one-time token (shown once). A caller of callerRole must be allowed to
// grant the role (default member).
func (s *Service) Invite(ctx context.Context, teamID, inviterID int64, callerRole, email, role string, audit accounts.Hook[Invitation]) (Invitation, string, error) {
	if role == "" {
		role = accounts.RoleMember
	}
	if err := checkGrant(callerRole, role); err != nil {
		return Invitation{}, "", err
	}
	var inv Invitation
	var token string
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		if inv, token, err = s.create(ctx, tx, teamID, inviterID, email, role); err != nil {
			return err
		}
		return audit.Write(ctx, tx, inv)
	})
	return inv, token, err
}

func (s *Service) create(ctx context.Context, q pgx.Tx, teamID, inviterID int64, email, role string) (Invitation, string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	if a, err := mail.ParseAddress(e); err != nil || a.Address != e || len(e) > 254 {
		return Invitation{}, "", errs.Invalidf("invalid invitation: %q is not an e-mail address", email)
	}
	var member bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.team_id = $1 AND lower(u.email) = $2)`, teamID, e).Scan(&member); err != nil {
		return Invitation{}, "", err
	}
	if member {
		return Invitation{}, "", errs.Conflictf("%s is already a member of this team", e)
	}
	token := TokenPrefix + auth.RandomToken(32)
	inv := Invitation{TeamID: teamID, Email: e, Role: role}
	err := q.QueryRow(ctx, `INSERT INTO team_invitations (team_id, email, role, token_hash, invited_by, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, created_at, expires_at, (SELECT name FROM teams WHERE id = $1)`,
		teamID, e, role, hashToken(token), inviterID, s.now().Add(TTL)).Scan(&inv.ID, &inv.CreatedAt, &inv.ExpiresAt, &inv.TeamName)
	return inv, token, err
}

// Pending lists a team's invitations that can still be used (never nil).
func (s *Service) Pending(ctx context.Context, teamID int64) ([]Invitation, error) {
	rows, err := s.Pool.Query(ctx, `SELECT i.id, i.team_id, t.name, i.email, i.role, i.created_at, i.expires_at
		FROM team_invitations i JOIN teams t ON t.id = i.team_id
		WHERE i.team_id = $1 AND i.accepted_at IS NULL AND i.expires_at > $2 ORDER BY i.id`, teamID, s.now())
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Invitation, error) {
		var i Invitation
		err := r.Scan(&i.ID, &i.TeamID, &i.TeamName, &i.Email, &i.Role, &i.CreatedAt, &i.ExpiresAt)
		return i, err
	})
	if out == nil {
		out = []Invitation{}
	}
	return out, err
}

// Revoke deletes a pending invitation of the team.
func (s *Service) Revoke(ctx context.Context, teamID, id int64, audit accounts.Hook[Invitation]) (Invitation, error) {
	var i Invitation
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		if i, err = s.revoke(ctx, tx, teamID, id); err != nil {
			return err
		}
		return audit.Write(ctx, tx, i)
	})
	return i, err
}

func (s *Service) revoke(ctx context.Context, q pgx.Tx, teamID, id int64) (Invitation, error) {
	var i Invitation
	err := q.QueryRow(ctx, `DELETE FROM team_invitations WHERE id = $1 AND team_id = $2 AND accepted_at IS NULL
		RETURNING id, team_id, email, role, created_at, expires_at`, id, teamID).Scan(&i.ID, &i.TeamID, &i.Email, &i.Role, &i.CreatedAt, &i.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return i, ErrNotFound
	}
	return i, err
}

// Show finds the usable invitation of a token, for the page the link
// opens, and whether the invited address has an account (sign in) or not
// (choose a password).
func (s *Service) Show(ctx context.Context, token string) (Invitation, bool, error) {
	var inv Invitation
	var hasAccount bool
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		if inv, err = s.lookup(ctx, tx, token); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = $1)", inv.Email).Scan(&hasAccount)
	})
	return inv, hasAccount, err
}

// Join makes userID (whose e-mail must be the invited one) a member with
// the invited role and uses the invitation up.
func (s *Service) Join(ctx context.Context, token string, userID int64, userEmail string, audit accounts.Hook[Invitation]) (Invitation, error) {
	var inv Invitation
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		if inv, err = s.accept(ctx, tx, token, userID, userEmail); err != nil {
			return err
		}
		return audit.Write(ctx, tx, inv)
	})
	return inv, err
}

// SignUp creates the invited address's account with name and password
// and makes it a member, in one transaction; the new account is the
// invitation's AcceptedBy.
func (s *Service) SignUp(ctx context.Context, token, name, password string, audit accounts.Hook[Invitation]) (Invitation, error) {
	var inv Invitation
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		if inv, err = s.lookup(ctx, tx, token); err != nil {
			return err
		}
		uid, err := s.Accounts.CreateInvited(ctx, tx, inv.Email, name, password)
		if err != nil {
			return err
		}
		if inv, err = s.accept(ctx, tx, token, uid, inv.Email); err != nil {
			return err
		}
		return audit.Write(ctx, tx, inv)
	})
	return inv, err
}

// lookup finds the usable invitation of a token, locking it for the
// transaction that uses it.
func (s *Service) lookup(ctx context.Context, q pgx.Tx, token string) (Invitation, error) {
	var i Invitation
	if !strings.HasPrefix(token, TokenPrefix) || len(token) > 100 {
		return i, ErrNotFound
	}
	err := q.QueryRow(ctx, `SELECT i.id, i.team_id, t.name, i.email, i.role, i.created_at, i.expires_at
		FROM team_invitations i JOIN teams t ON t.id = i.team_id
		WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.expires_at > $2 FOR UPDATE OF i`, hashToken(token), s.now()).
		Scan(&i.ID, &i.TeamID, &i.TeamName, &i.Email, &i.Role, &i.CreatedAt, &i.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return i, ErrNotFound
	}
	return i, err
}

func (s *Service) accept(ctx context.Context, q pgx.Tx, token string, userID int64, userEmail string) (Invitation, error) {
	i, err := s.lookup(ctx, q, token)
	if err != nil {
		return i, err
	}
	if !strings.EqualFold(strings.TrimSpace(userEmail), i.Email) {
		return i, ErrWrongFor
	}
	tag, err := q.Exec(ctx, `INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, i.TeamID, userID, i.Role)
	if err != nil {
		return i, err
	}
	if tag.RowsAffected() == 0 {
		return i, ErrMember
	}
	_, err = q.Exec(ctx, `UPDATE team_invitations SET accepted_at = $2, accepted_by = $3 WHERE id = $1`, i.ID, s.now(), userID)
	i.AcceptedBy = userID
	return i, err
}
