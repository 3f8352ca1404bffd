// Package teams owns teams and their membership: creating a team with its
// owner (the one way, for the dashboard, sign-ups and the first admin),
// the members and the role rules (who may grant which role; a team keeps at
// least one owner), and invitations by link.
package teams

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/errs"
)

// MaxOwned is how many teams a person may own (an instance admin is not
// limited): a signed-in account cannot fill the table.
const MaxOwned = 20

// Errors of the membership rules.
var (
	ErrLastOwner    = errs.New(errs.Invalid, "a team keeps at least one owner: make someone else owner first")
	ErrCannotManage = errs.New(errs.Forbidden, "your role in this team cannot change this member's role (only owners manage owners)")
	ErrCannotGrant  = errs.New(errs.Forbidden, "only owners can make owners")
	ErrBadRole      = errs.Field("role", "role is owner, admin or member")
	ErrTooMany      = errs.New(errs.Invalid, fmt.Sprintf("you own %d teams already", MaxOwned))
	ErrNoMember     = errs.New(errs.NotFound, "not found")
)

// Create makes a team on plan with ownerID as its owner, in tx. A taken
// slug is an errs.Conflict.
func Create(ctx context.Context, tx pgx.Tx, name, slug, plan string, ownerID int64) (accounts.Team, error) {
	t := accounts.Team{Role: accounts.RoleOwner}
	err := tx.QueryRow(ctx, "INSERT INTO teams (name, slug, plan) VALUES ($1, $2, $3) RETURNING id, name, slug, plan",
		name, slug, plan).Scan(&t.ID, &t.Name, &t.Slug, &t.Plan)
	if err != nil {
		return t, errs.Constraint(err, map[string]*errs.Error{
			"teams_slug_key": {Kind: errs.Conflict, Field: "slug", Msg: "the team slug " + slug + " is taken"}})
	}
	_, err = tx.Exec(ctx, "INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, 'owner')", t.ID, ownerID)
	return t, err
}

// CreateOwned is Create for a person creating a team of their own: at most
// MaxOwned unless admin.
func CreateOwned(ctx context.Context, tx pgx.Tx, name, slug, plan string, ownerID int64, admin bool) (accounts.Team, error) {
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM memberships WHERE user_id = $1 AND role = 'owner'", ownerID).Scan(&n); err != nil {
		return accounts.Team{}, err
	}
	if n >= MaxOwned && !admin {
		return accounts.Team{}, ErrTooMany
	}
	return Create(ctx, tx, name, slug, plan, ownerID)
}

// CreateTeam makes a team of a person's own (see CreateOwned) and writes
// its audit record, in one transaction.
func (s *Service) CreateTeam(ctx context.Context, name, slug, plan string, ownerID int64, admin bool, audit accounts.Hook[accounts.Team]) (accounts.Team, error) {
	var t accounts.Team
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		if t, err = CreateOwned(ctx, tx, name, slug, plan, ownerID, admin); err != nil {
			return err
		}
		return audit.Write(ctx, tx, t)
	})
	return t, err
}

// CreatePersonal gives a new account a team it owns, on plan, named after
// the person (name, else the e-mail's local part). Its slug is made from
// the e-mail's local part and a random suffix (slugs are unique across
// teams).
func (s *Service) CreatePersonal(ctx context.Context, userID int64, email, name, plan string, audit accounts.Hook[accounts.Team]) (accounts.Team, error) {
	label := strings.TrimSpace(name)
	if label == "" {
		label, _, _ = strings.Cut(email, "@")
	}
	if len(label) > 80 {
		label = label[:80]
	}
	suffix := make([]byte, 3)
	rand.Read(suffix)
	slug := SlugOf(email) + "-" + hex.EncodeToString(suffix)
	var t accounts.Team
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		if t, err = Create(ctx, tx, label+"'s team", slug, plan, userID); err != nil {
			return err
		}
		return audit.Write(ctx, tx, t)
	})
	return t, err
}

// SlugOf makes the start of a slug from an e-mail's local part: lower
// case letters and digits, other runs become one dash, at most 40
// characters, "team" when nothing is left.
func SlugOf(email string) string {
	local, _, _ := strings.Cut(strings.ToLower(email), "@")
	var b strings.Builder
	dash := false
	for _, r := range local {
		if b.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		return "team"
	}
	return s
}

// Member is a person's place in a team.
type Member struct {
	UserID int64     `json:"user_id"`
	Email  string    `json:"email"`
	Name   string    `json:"name"`
	Role   string    `json:"role"`
	Since  time.Time `json:"since"`
	You    bool      `json:"you"`
}

// CanGrant is whether a caller of role may hand out (or take away) role
// target: owners anything, admins admin and member only.
func CanGrant(role, target string) bool {
	return role == accounts.RoleOwner || (role == accounts.RoleAdmin && target != accounts.RoleOwner)
}

// ValidRole is whether r names a role.
func ValidRole(r string) bool {
	return r == accounts.RoleOwner || r == accounts.RoleAdmin || r == accounts.RoleMember
}

// checkGrant is whether a caller of callerRole may hand out role.
func checkGrant(callerRole, role string) error {
	switch {
	case !ValidRole(role):
		return ErrBadRole
	case !CanGrant(callerRole, role):
		return ErrCannotGrant
	}
	return nil
}

// Members lists the team's members, owners first; me marks the caller.
func (s *Service) Members(ctx context.Context, teamID, me int64) ([]Member, error) {
	rows, err := s.Pool.Query(ctx, `SELECT u.id, u.email, u.name, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.team_id = $1 ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, lower(u.email)`, teamID)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Member, error) {
		var m Member
		err := row.Scan(&m.UserID, &m.Email, &m.Name, &m.Role, &m.Since)
		m.You = m.UserID == me
		return m, err
	})
	if out == nil {
		out = []Member{}
	}
	return out, err
}

// Add makes the existing account of email a member with role, which a
// caller of callerRole must be allowed to grant.
func (s *Service) Add(ctx context.Context, teamID int64, callerRole, email, role string, audit accounts.Hook[Member]) (Member, error) {
	if role == "" {
		role = accounts.RoleMember
	}
	if err := checkGrant(callerRole, role); err != nil {
		return Member{}, err
	}
	email = strings.ToLower(strings.TrimSpace(email))
	var m Member
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, "SELECT id, email, name FROM users WHERE lower(email) = $1", email).Scan(&m.UserID, &m.Email, &m.Name)
		if errors.Is(err, pgx.ErrNoRows) {
			return errs.Field("email", "no account has this e-mail address: invite it by link instead (Invite by link, below)")
		}
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING RETURNING role, created_at`, teamID, m.UserID, role).Scan(&m.Role, &m.Since)
		if errors.Is(err, pgx.ErrNoRows) {
			return errs.Conflictf("%s is a member already", m.Email)
		}
		if err != nil {
			return err
		}
		return audit.Write(ctx, tx, m)
	})
	return m, err
}

// SetRole changes userID's role to role. Admins manage admins and members;
// only owners touch owners; the last owner stays an owner.
func (s *Service) SetRole(ctx context.Context, teamID int64, callerRole string, userID int64, role string, audit accounts.Hook[Member]) (Member, error) {
	if !ValidRole(role) {
		return Member{}, ErrBadRole
	}
	return s.change(ctx, teamID, userID, func(tx pgx.Tx, target Member, owners int) error {
		if !CanGrant(callerRole, role) || !CanGrant(callerRole, target.Role) {
			return ErrCannotManage
		}
		if target.Role == accounts.RoleOwner && role != accounts.RoleOwner && owners <= 1 {
			return ErrLastOwner
		}
		_, err := tx.Exec(ctx, "UPDATE memberships SET role = $3 WHERE team_id = $1 AND user_id = $2", teamID, target.UserID, role)
		return err
	}, audit)
}

// Remove takes userID out of the team (admins: admins and members;
// owners: anyone); anyone may leave (userID == callerID). The last owner
// stays. The member's API tokens of the team are revoked with it.
func (s *Service) Remove(ctx context.Context, teamID, callerID int64, callerRole string, userID int64, audit accounts.Hook[Member]) (Member, error) {
	return s.change(ctx, teamID, userID, func(tx pgx.Tx, target Member, owners int) error {
		self := target.UserID == callerID
		if !self && (!accounts.AtLeast(callerRole, accounts.RoleAdmin) || !CanGrant(callerRole, target.Role)) {
			return ErrCannotManage
		}
		if target.Role == accounts.RoleOwner && owners <= 1 {
			return ErrLastOwner
		}
		if _, err := tx.Exec(ctx, "DELETE FROM memberships WHERE team_id = $1 AND user_id = $2", teamID, target.UserID); err != nil {
			return err
		}
		// API tokens belong to a member's place in the team: they go with it.
		_, err := tx.Exec(ctx, "UPDATE api_tokens SET revoked_at = now() WHERE team_id = $1 AND user_id = $2 AND revoked_at IS NULL",
			teamID, target.UserID)
		return err
	}, audit)
}

// change applies fn to userID's membership under a lock on the team's
// memberships, so two changes cannot both take away the last owner.
func (s *Service) change(ctx context.Context, teamID, userID int64, fn func(tx pgx.Tx, target Member, owners int) error, audit accounts.Hook[Member]) (Member, error) {
	var target Member
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT m.user_id, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id
			WHERE m.team_id = $1 FOR UPDATE OF m`, teamID)
		if err != nil {
			return err
		}
		all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Member, error) {
			var m Member
			err := row.Scan(&m.UserID, &m.Email, &m.Role)
			return m, err
		})
		if err != nil {
			return err
		}
		owners, found := 0, false
		for _, m := range all {
			if m.Role == accounts.RoleOwner {
				owners++
			}
			if m.UserID == userID {
				target, found = m, true
			}
		}
		if !found {
			return ErrNoMember
		}
		if err := fn(tx, target, owners); err != nil {
			return err
		}
		return audit.Write(ctx, tx, target)
	})
	return target, err
}
