package teams

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

func user(t *testing.T, db *pgtest.DB, email string) int64 {
	t.Helper()
	var id int64
	if err := db.Pool.QueryRow(context.Background(), "INSERT INTO users (email, name, password_hash) VALUES ($1, $1, 'x') RETURNING id", email).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestCreateAndRoleRules: a team is created with its owner, a taken slug
// is a conflict, and the membership rules hold: admins cannot touch
// owners, the last owner can neither leave nor be demoted.
func TestCreateAndRoleRules(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	s := &Service{Pool: db.Pool}
	owner, admin := user(t, db, "o@x.test"), user(t, db, "a@x.test")
	var team accounts.Team
	if err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) (err error) {
		team, err = Create(ctx, tx, "T", "t", "free", owner)
		return err
	}); err != nil || team.Role != accounts.RoleOwner {
		t.Fatalf("%+v %v", team, err)
	}
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { _, err := Create(ctx, tx, "T2", "t", "free", admin); return err })
	if e, ok := errs.As(err); !ok || e.Kind != errs.Conflict || e.Field != "slug" {
		t.Fatalf("taken slug: %v", err)
	}
	if _, err := s.Add(ctx, team.ID, accounts.RoleOwner, "A@x.test", accounts.RoleAdmin, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, team.ID, accounts.RoleOwner, "a@x.test", "", nil); !errs.Is(err, errs.Conflict) {
		t.Fatalf("adding a member twice: %v", err)
	}
	if _, err := s.Add(ctx, team.ID, accounts.RoleAdmin, "nobody@x.test", accounts.RoleOwner, nil); err != ErrCannotGrant {
		t.Fatalf("an admin making an owner: %v", err)
	}
	if _, err := s.SetRole(ctx, team.ID, accounts.RoleAdmin, owner, accounts.RoleMember, nil); err != ErrCannotManage {
		t.Fatalf("an admin demoting an owner: %v", err)
	}
	if _, err := s.SetRole(ctx, team.ID, accounts.RoleOwner, owner, accounts.RoleAdmin, nil); err != ErrLastOwner {
		t.Fatalf("demoting the last owner: %v", err)
	}
	if _, err := s.Remove(ctx, team.ID, owner, accounts.RoleOwner, owner, nil); err != ErrLastOwner {
		t.Fatalf("the last owner leaving: %v", err)
	}
	if _, err := s.SetRole(ctx, team.ID, accounts.RoleOwner, admin, accounts.RoleOwner, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(ctx, team.ID, owner, accounts.RoleOwner, owner, nil); err != nil {
		t.Fatalf("an owner leaving with another owner: %v", err)
	}
	ms, err := s.Members(ctx, team.ID, admin)
	if err != nil || len(ms) != 1 || ms[0].UserID != admin || !ms[0].You || ms[0].Role != accounts.RoleOwner {
		t.Fatalf("members %+v %v", ms, err)
	}
}
