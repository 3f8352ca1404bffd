package alerts_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// A crashed app with a crashloop rule fires an alert event through the
// running app.
func TestAlertEventPublished(t *testing.T) {
	db := pgtest.New(t)
	cptest.Start(t, db, cptest.Options{Apps: map[string]any{"wisehosting_alerts": map[string]any{"interval": "100ms"}}})
	ctx := context.Background()
	a, _ := caddy.ActiveContext().App(core.AppName)
	fired := make(chan events.Event, 4)
	cancel := a.(*core.App).Events().Subscribe(func(e events.Event) {
		if e.Kind == events.AlertFired {
			fired <- e
		}
	})
	defer cancel()
	var team, app int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name, status) VALUES ($1, 'a', 'a', 'crashed') RETURNING id", team).Scan(&app)
	db.Pool.Exec(ctx, "INSERT INTO alert_rules (app_id, kind, sustain_s) VALUES ($1, 'crashloop', 0)", app)
	select {
	case e := <-fired:
		if e.AppID != app || e.Data["kind"] != "crashloop" {
			t.Fatalf("%+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alert fired")
	}
}
