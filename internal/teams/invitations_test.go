package teams

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// TestInvitationFlow: an admin cannot invite an owner; an invitation is
// shown to its holder, taken only by the invited address, used once; a
// sign-up creates the account and the membership; every change writes its
// audit record in its transaction.
func TestInvitationFlow(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	s := &Service{Pool: db.Pool, Accounts: accounts.New(db.Pool)}
	owner := user(t, db, "o@x.test")
	other := user(t, db, "other@x.test")
	team, err := s.CreateTeam(ctx, "T", "t", "free", owner, false, func(t accounts.Team) accounts.Entry {
		return accounts.Entry{TeamID: t.ID, UserID: owner, Action: "team.create", Target: t.Slug}
	})
	if err != nil {
		t.Fatal(err)
	}
	audit := func(action string) accounts.Hook[Invitation] {
		return func(inv Invitation) accounts.Entry {
			return accounts.Entry{TeamID: inv.TeamID, UserID: inv.AcceptedBy, Action: action, Target: inv.Email}
		}
	}
	if _, _, err := s.Invite(ctx, team.ID, owner, accounts.RoleAdmin, "new@x.test", accounts.RoleOwner, nil); err != ErrCannotGrant {
		t.Fatalf("an admin inviting an owner: %v", err)
	}
	if _, _, err := s.Invite(ctx, team.ID, owner, accounts.RoleOwner, "o@x.test", "", nil); !errs.Is(err, errs.Conflict) {
		t.Fatalf("inviting a member: %v", err)
	}
	inv, token, err := s.Invite(ctx, team.ID, owner, accounts.RoleOwner, "Other@x.test", "", audit("invitation.create"))
	if err != nil || inv.Role != accounts.RoleMember || inv.Email != "other@x.test" {
		t.Fatalf("%+v %v", inv, err)
	}
	if got, has, err := s.Show(ctx, token); err != nil || !has || got.ID != inv.ID || got.TeamName != "T" {
		t.Fatalf("show %+v %v %v", got, has, err)
	}
	if _, err := s.Join(ctx, token, owner, "o@x.test", nil); err != ErrWrongFor {
		t.Fatalf("another address taking it: %v", err)
	}
	if got, err := s.Join(ctx, token, other, "other@x.test", audit("invitation.accept")); err != nil || got.AcceptedBy != other {
		t.Fatalf("join %+v %v", got, err)
	}
	if _, err := s.Join(ctx, token, other, "other@x.test", nil); err != ErrNotFound {
		t.Fatalf("a used link: %v", err)
	}

	_, token, err = s.Invite(ctx, team.ID, owner, accounts.RoleOwner, "fresh@x.test", accounts.RoleAdmin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, has, err := s.Show(ctx, token); err != nil || has {
		t.Fatalf("a new address has an account: %v %v", has, err)
	}
	got, err := s.SignUp(ctx, token, "Fresh", "a long enough password", audit("invitation.signup"))
	if err != nil || got.AcceptedBy == 0 {
		t.Fatalf("sign-up %+v %v", got, err)
	}
	ms, err := s.Members(ctx, team.ID, owner)
	if err != nil || len(ms) != 3 {
		t.Fatalf("members %+v %v", ms, err)
	}

	revoked, token, err := s.Invite(ctx, team.ID, owner, accounts.RoleOwner, "gone@x.test", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(ctx, team.ID+1, revoked.ID, nil); err != ErrNotFound {
		t.Fatalf("revoking another team's invitation: %v", err)
	}
	if _, err := s.Revoke(ctx, team.ID, revoked.ID, audit("invitation.revoke")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Show(ctx, token); err != ErrNotFound {
		t.Fatalf("a revoked link: %v", err)
	}
	rows, _ := db.Pool.Query(ctx, "SELECT action FROM audit_events WHERE team_id = $1 ORDER BY id", team.ID)
	actions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	want := []string{"team.create", "invitation.create", "invitation.accept", "invitation.signup", "invitation.revoke"}
	if err != nil || len(actions) != len(want) {
		t.Fatalf("audit %v %v", actions, err)
	}
	for i := range want {
		if actions[i] != want[i] {
			t.Fatalf("audit %v, want %v", actions, want)
		}
	}
}

// TestPersonalTeam: a new account's team is named after the person and
// has a slug from the address with a random suffix.
func TestPersonalTeam(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	s := &Service{Pool: db.Pool}
	uid := user(t, db, "New.Person@x.test")
	team, err := s.CreatePersonal(ctx, uid, "New.Person@x.test", "", "free", nil)
	if err != nil || team.Name != "New.Person's team" || len(team.Slug) != len("new-person-")+6 || team.Role != accounts.RoleOwner {
		t.Fatalf("%+v %v", team, err)
	}
}
