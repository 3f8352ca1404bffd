package errs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/pgtest"
)

func TestKinds(t *testing.T) {
	nf := New(NotFound, "domain not found")
	for _, c := range []struct {
		err    error
		kind   Kind
		status int
	}{
		{Invalidf("bad %s", "x"), Invalid, http.StatusUnprocessableEntity},
		{fmt.Errorf("loading: %w", nf), NotFound, http.StatusNotFound},
		{Forbiddenf("no"), Forbidden, http.StatusForbidden},
		{Conflictf("taken"), Conflict, http.StatusConflict},
		{New(Unauthorized, "sign in"), Unauthorized, http.StatusUnauthorized},
		{fmt.Errorf("scan: %w", pgx.ErrNoRows), NotFound, http.StatusNotFound},
		{errors.New("boom"), Internal, http.StatusInternalServerError},
	} {
		if k := KindOf(c.err); k != c.kind || k.Status() != c.status {
			t.Errorf("%v: kind %v status %d, want %v %d", c.err, k, k.Status(), c.kind, c.status)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", nf), nf) {
		t.Fatal("a sentinel *Error is found by errors.Is")
	}
	if f, ok := As(Field("port", "port is 1-65535")); !ok || f.Field != "port" {
		t.Fatalf("Field: %+v", f)
	}
}

// TestConstraint maps a real unique violation by its constraint's name,
// and leaves other errors (and other constraints) alone.
func TestConstraint(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, "INSERT INTO teams (name, slug) VALUES ('a', 'a')"); err != nil {
		t.Fatal(err)
	}
	_, err := db.Pool.Exec(ctx, "INSERT INTO teams (name, slug) VALUES ('b', 'a')")
	taken := &Error{Kind: Conflict, Field: "slug", Msg: "that slug is taken"}
	got := Constraint(err, map[string]*Error{"teams_slug_key": taken})
	if e, ok := As(got); !ok || e.Kind != Conflict || e.Field != "slug" || e.Err != err {
		t.Fatalf("Constraint(unique) = %#v", got)
	}
	if other := Constraint(err, map[string]*Error{"apps_slug_key": taken}); other != err {
		t.Fatalf("another constraint's error: %v", other)
	}
	plain := errors.New("x")
	if Constraint(plain, map[string]*Error{"teams_slug_key": taken}) != plain {
		t.Fatal("a non-database error is returned unchanged")
	}
}
