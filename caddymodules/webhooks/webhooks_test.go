package webhooks_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/webhooks"
)

// An event of the control plane reaches a team's endpoint, signed.
func TestEventDeliveredThroughTheApp(t *testing.T) {
	got := make(chan *http.Request, 1)
	bodies := make(chan []byte, 1)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
	}))
	defer rcv.Close()
	db := pgtest.New(t)
	cptest.Start(t, db, cptest.Options{Apps: map[string]any{"wisehosting_webhooks": map[string]any{"allow_networks": []string{"127.0.0.1/32"}}}})
	a, _ := caddy.ActiveContext().App(core.AppName)
	wh := a.(*core.App)
	ctx := context.Background()
	var team, app int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'a', 'a') RETURNING id", team).Scan(&app)
	svc := &webhooks.Service{Pool: db.Pool, Keyring: wh.Keyring()}
	_, secret, err := svc.Create(ctx, team, 0, rcv.URL, []string{events.DeploymentFailed})
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Emit(ctx, db.Pool, events.Event{Kind: events.DeploymentFailed, AppID: app, Data: map[string]any{"error": "health check failed"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		body := <-bodies
		ts, _ := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
		if !webhooks.Verify(secret, r.Header.Get("webhook-id"), ts, body, r.Header.Get("webhook-signature")) {
			t.Fatal("bad signature")
		}
		if !strings.Contains(string(body), "health check failed") || !strings.Contains(string(body), `"type": "deployment.failed"`) {
			t.Fatalf("body %s", body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event never delivered")
	}
}

func TestCaddyfile(t *testing.T) {
	out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte("{\n\twisehosting_webhooks {\n\t\tmax_attempts 5\n\t\ttimeout 10s\n\t\tallow_networks 10.60.0.0/24\n\t}\n}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"apps":{"wisehosting_webhooks":{"max_attempts":5,"timeout":10000000000,"allow_networks":["10.60.0.0/24"]}}}`; string(out) != want {
		t.Fatalf("got %s", out)
	}
}
