package webhooks

import (
	"context"
	"testing"

	"github.com/wisehosting/wisehosting/internal/errs"
)

// TestAddRules: the event list is checked, a webhook is bound only to an
// app of its team, the kind is http or shoutrrr, a team has at most
// MaxPerTeam, and a change keeps at least one event.
func TestAddRules(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	var appB int64
	f.db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'b', 'b') RETURNING id", f.teamB).Scan(&appB)
	url := "https://hooks.example.com/x"
	if _, _, err := f.svc.Add(ctx, f.teamA, New{URL: url, Events: []string{"no.such"}}, loopbackOnly); !errs.Is(err, errs.Invalid) {
		t.Fatalf("an unknown event: %v", err)
	}
	if _, _, err := f.svc.Add(ctx, f.teamA, New{URL: url, AppID: appB}, loopbackOnly); !errs.Is(err, errs.NotFound) {
		t.Fatalf("another team's app: %v", err)
	}
	if _, _, err := f.svc.Add(ctx, f.teamA, New{URL: url, Kind: "ftp"}, loopbackOnly); !errs.Is(err, errs.Invalid) {
		t.Fatalf("an unknown kind: %v", err)
	}
	if _, _, err := f.svc.Add(ctx, f.teamA, New{URL: "http://127.0.0.2/x"}, loopbackOnly); !errs.Is(err, errs.Invalid) {
		t.Fatalf("an internal address: %v", err)
	}
	w, secret, err := f.svc.Add(ctx, f.teamB, New{URL: url, AppID: appB, Events: []string{"deployment.failed"}}, loopbackOnly)
	if err != nil || secret == "" || w.AppID != appB {
		t.Fatalf("add %+v %v", w, err)
	}
	if _, err := f.svc.Change(ctx, f.teamB, w.ID, nil, []string{}); !errs.Is(err, errs.Invalid) {
		t.Fatalf("no events: %v", err)
	}
	if _, _, err := f.svc.Rotate(ctx, f.teamA, w.ID); !errs.Is(err, errs.NotFound) {
		t.Fatalf("rotating another team's webhook: %v", err)
	}
	for i := 1; i < MaxPerTeam; i++ {
		if _, _, err := f.svc.Add(ctx, f.teamB, New{URL: url}, loopbackOnly); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := f.svc.Add(ctx, f.teamB, New{URL: url}, loopbackOnly); !errs.Is(err, errs.Invalid) {
		t.Fatalf("webhook %d: %v", MaxPerTeam+1, err)
	}
	if got, err := f.svc.Remove(ctx, f.teamB, w.ID); err != nil || got.ID != w.ID {
		t.Fatalf("remove %+v %v", got, err)
	}
	if _, err := f.svc.History(ctx, f.teamB, w.ID, 10); !errs.Is(err, errs.NotFound) {
		t.Fatalf("history of a removed webhook: %v", err)
	}
}
