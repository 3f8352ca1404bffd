package webhooks

import (
	"context"
	"errors"
	"testing"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/httpx"
)

// SSRF regression: internal literals and localhost names are refused when
// a webhook is saved, unless the operator allowed the network.
func TestCheckTargetRefusesInternalAddresses(t *testing.T) {
	for _, c := range []struct {
		url   string
		guard httpx.GuardOptions
		ok    bool
	}{
		{"https://hooks.example.com/x", httpx.GuardOptions{}, true},
		{"https://93.184.215.14/x", httpx.GuardOptions{}, true},
		{"http://169.254.169.254/latest/meta-data", httpx.GuardOptions{}, false},
		{"http://127.0.0.1:8080/", httpx.GuardOptions{}, false},
		{"http://[::1]/", httpx.GuardOptions{}, false},
		{"http://[::ffff:10.0.0.1]/", httpx.GuardOptions{}, false},
		{"http://localhost/", httpx.GuardOptions{}, false},
		{"http://api.localhost./", httpx.GuardOptions{}, false},
		{"http://127.0.0.1:8080/", loopbackOnly, true},
		{"ftp://hooks.example.com/", httpx.GuardOptions{}, false},
		{"https://u:p@hooks.example.com/", httpx.GuardOptions{}, false},
	} {
		err := CheckTarget(c.url, c.guard)
		if (err == nil) != c.ok || (err != nil && !errs.Is(err, errs.Invalid)) {
			t.Errorf("%s: %v", c.url, err)
		}
	}
}

func TestUpdateDeliveriesAndTestAreTeamScoped(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	w, _, _ := f.svc.Create(ctx, f.teamA, 0, "https://hooks.example.com/a", nil)
	off := false
	if _, err := f.svc.Update(ctx, f.teamB, w.ID, &off, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("update from another team: %v", err)
	}
	if _, err := EnqueueTest(ctx, f.db.Pool, f.teamB, w.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("test from another team: %v", err)
	}
	got, err := f.svc.Update(ctx, f.teamA, w.ID, &off, []string{"deployment.failed"})
	if err != nil || got.Enabled || len(got.Events) != 1 || got.Kind != "http" || got.URL != "https://hooks.example.com/a" {
		t.Fatalf("update: %+v %v", got, err)
	}
	if got, _ = f.svc.Update(ctx, f.teamA, w.ID, nil, nil); got.Enabled || got.Events[0] != "deployment.failed" {
		t.Fatalf("empty update changed things: %+v", got)
	}
	// A disabled webhook still takes test deliveries.
	id, err := EnqueueTest(ctx, f.db.Pool, f.teamA, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := f.svc.Deliveries(ctx, f.teamB, w.ID, 10); len(l) != 0 {
		t.Fatalf("deliveries leaked: %+v", l)
	}
	l, err := f.svc.Deliveries(ctx, f.teamA, w.ID, 10)
	if err != nil || len(l) != 1 || l[0].ID != id || l[0].Event != TestEvent || l[0].State != "pending" {
		t.Fatalf("deliveries %+v %v", l, err)
	}
}
